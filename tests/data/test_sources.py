"""A source that cannot train says why; unreadable files are listed, never dropped silently."""
from __future__ import annotations

import tarfile

import pytest

from hashseek.core.errors import InvalidInputError, NotFoundError
from hashseek.data.sources import check_source, is_builtin, open_source


def test_a_folder_and_its_tar_gz_hold_the_same_labelled_images(make_folder, tmp_path):
    root = make_folder({0: 4, 1: 3})
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="photos")
    folder, packed = open_source(root), open_source(archive)
    assert folder.ids == packed.ids and folder.classes == packed.classes and len(folder) == 7
    check = check_source(packed, progress=False)
    assert check.unreadable == {} and list(check.class_counts().values()) == [4, 3]


def test_fewer_than_two_classes_is_refused(make_folder):
    with pytest.raises(InvalidInputError, match="at least two classes.*found 1"):
        check_source(open_source(make_folder({0: 5})), progress=False)


def test_a_class_of_only_unreadable_files_does_not_count(make_folder):
    root = make_folder({0: 5})
    (root / "empty_class").mkdir()
    (root / "empty_class" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match=r"found 1.*1 image\(s\) left out"):
        check_source(open_source(root), progress=False)


def test_images_outside_class_folders_are_refused(make_folder):
    root = make_folder({0: 3, 1: 3})
    some = next((root / open_source(root).classes[0]).iterdir())
    (root / "stray.jpg").write_bytes(some.read_bytes())
    with pytest.raises(InvalidInputError,
                       match=r"1 image\(s\) have no class \(e.g. stray.jpg\).*one sub-folder per class"):
        check_source(open_source(root), progress=False)


def test_unreadable_files_are_listed_with_their_reason(make_folder):
    root = make_folder({0: 3, 1: 3})
    cls = open_source(root).classes[1]
    (root / cls / "cut.jpg").write_bytes(next((root / cls).iterdir()).read_bytes()[:300])
    (root / cls / "text.png").write_text("hello")
    check = check_source(open_source(root), progress=False)
    assert sorted(check.unreadable) == [f"{cls}/cut.jpg", f"{cls}/text.png"]
    assert all(check.unreadable.values()) and sum(check.class_counts().values()) == 6


def test_paths_that_are_not_sources(tmp_path):
    with pytest.raises(NotFoundError, match="not a built-in dataset"):
        open_source(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not a folder or a tar archive"):
        open_source(tmp_path / "notes.txt")
    (tmp_path / "C").mkdir()
    (tmp_path / "C" / "collection.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="is a hashseek collection"):
        open_source(tmp_path / "C")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no images found"):
        check_source(open_source(tmp_path / "empty"))
    assert is_builtin("cars-bmw13") and not is_builtin(str(tmp_path))
