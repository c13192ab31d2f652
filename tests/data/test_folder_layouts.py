"""What real photo folders hold besides class folders of images: hidden and system folders, a collection kept
inside the folder, links, odd extensions, nested and same-named class folders. None of it may become a class of
its own without the user being told."""
from __future__ import annotations

import os
import shutil
import tarfile

import pytest

from hashseek.data.datasets import FolderDataset, archive_stem, folder_label_notes
from hashseek.data.sources import check_source, open_source
from hashseek.data.splits import split_lines, split_source


@pytest.fixture
def messy(tmp_path, image_set):
    """Two class folders of the shipped images (mixed-case extensions, a linked file), plus what a real
    photo folder carries: a thumbnail cache, a git folder, a NAS's @eaDir, a Mac __MACOSX, a hashseek
    collection's thumbnails, junk files, a linked folder, a hidden file."""
    dataset, ids = image_set
    root = tmp_path / "photos"
    circles = [i for i in ids if i.startswith("circles/")][:4]
    stripes = [i for i in ids if i.startswith("stripes/")][:4]
    (root / "circles").mkdir(parents=True)
    (root / "Stripes à l'été").mkdir()
    for n, (image_id, ext) in enumerate(zip(circles, (".JPG", ".Jpeg", ".jpg", ".JPEG"))):
        (root / "circles" / f"c{n}{ext}").write_bytes(dataset.read_bytes(image_id))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for n, image_id in enumerate(stripes):
        target = root / "Stripes à l'été" / f"s {n}.jpg"
        if n == 0:   # a linked file is the user's photo: read through the link
            (outside / "s0.jpg").write_bytes(dataset.read_bytes(image_id))
            os.symlink(outside / "s0.jpg", target)
        else:
            target.write_bytes(dataset.read_bytes(image_id))
    some = dataset.read_bytes(circles[0])
    for junk in (".thumbnails", ".git/objects", "@eaDir/c0.JPG", "__MACOSX/circles", "photos.hs/thumbnails"):
        (root / "circles" / junk).mkdir(parents=True)
        (root / "circles" / junk / "t.jpg").write_bytes(some)
    (root / "circles" / "photos.hs" / "collection.json").write_text("{}")
    (root / "circles" / ".hidden.jpg").write_bytes(some)
    for name, data in (("Thumbs.db", b"\xd0\xcf\x11\xe0"), (".DS_Store", b"\0\0\0\1Bud1"), ("notes.txt", b"x")):
        (root / "circles" / name).write_bytes(data)
    os.symlink(root / "circles", root / "Stripes à l'été" / "loop")   # a linked folder: not followed
    return root


def test_only_the_users_photos_are_classes(messy):
    dataset = FolderDataset(messy)
    assert dataset.classes == ["Stripes à l'été", "circles"]
    assert sorted(dataset.ids) == sorted([f"circles/c{n}{e}" for n, e in enumerate((".JPG", ".Jpeg", ".jpg", ".JPEG"))]
                                         + [f"Stripes à l'été/s {n}.jpg" for n in range(4)])
    check = check_source(dataset, progress=False)
    assert check.unreadable == {} and check.class_counts() == {"Stripes à l'été": 4, "circles": 4}
    assert dataset.ignored == {".db": 1, ".txt": 1}   # counted for the report (.DS_Store is hidden: not)


def test_names_that_are_not_utf8_are_left_out_with_the_reason(messy):
    shutil.copy(messy / "circles" / "c0.JPG", os.fsencode(messy / "circles") + b"/caf\xe9.jpg")   # Latin-1 bytes
    os.mkdir(os.fsencode(messy) + b"/\xe9t\xe9")
    shutil.copy(messy / "circles" / "c0.JPG", os.fsencode(messy) + b"/\xe9t\xe9/x.jpg")
    dataset = open_source(messy)
    assert dataset.classes == ["Stripes à l'été", "circles"] and len(dataset) == 8
    check = check_source(dataset, progress=False)
    assert sorted(check.unreadable) == ["\\xe9t\\xe9/", "circles/caf\\xe9.jpg"]
    assert "rename it" in check.unreadable["circles/caf\\xe9.jpg"]
    assert "circles/caf\\xe9.jpg: its name is not UTF-8" in "\n".join(split_lines(split_source(
        dataset, excluded=check.excluded), dataset))


def test_an_archive_of_the_folder_skips_the_same_folders_and_lists_links_it_cannot_follow(messy, tmp_path):
    shutil.rmtree(messy / "circles" / "photos.hs")   # an archive holds no collection: the marker is a folder's
    os.symlink("c1.Jpeg", messy / "circles" / "alias.jpg")   # a link to a member: read through it
    packed = tmp_path / "photos.tar"
    with tarfile.open(packed, "w") as tar:   # members named ./circles/...: the leading ./ is no hidden folder
        tar.add(messy, arcname=".")
    archive = open_source(packed)
    assert archive.classes == ["Stripes à l'été", "circles"]
    assert len([i for i in archive.ids if i.startswith("circles/")]) == 5
    assert archive.read_bytes("circles/alias.jpg") == (messy / "circles" / "c1.Jpeg").read_bytes()
    check = check_source(archive, progress=False)   # `s 0.jpg` links out of the archive: listed, not dropped
    assert list(check.unreadable) == ["Stripes à l'été/s 0.jpg"] and "does not hold" in check.unreadable[
        "Stripes à l'été/s 0.jpg"]
    assert check.class_counts() == {"Stripes à l'été": 3, "circles": 5}
    assert archive_stem(packed) == "photos" and archive_stem("x/Photos.TAR.GZ") == "Photos"   # eval-photos/


def test_nested_and_same_named_class_folders_are_reported_by_the_split(messy):
    (messy / "circles" / "2019").mkdir()
    for n in range(3):
        shutil.copy(messy / "circles" / "c2.jpg", messy / "circles" / "2019" / f"x{n}.jpg")
    dataset = open_source(messy)
    assert "2019" in dataset.classes   # the folder that holds an image names its class
    text = "\n".join(split_lines(split_source(dataset), dataset))
    assert "1 class folder(s) inside another class folder are classes of their own" in text
    assert "circles/2019" in text
    assert "2 file(s) not read, not images by their names (.db 1, .txt 1)" in text   # e.g. a phone's .heic
    notes = folder_label_notes(["train/cat/1.jpg", "test/cat/2.jpg", "test/dog/3.jpg", "train/dog/4.jpg"])
    assert notes == ["2 class(es) gather folders of the same name from different places: "
                     "cat (test/cat, train/cat); dog (test/dog, train/dog)"]
    assert folder_label_notes(["a/1.jpg", "b/2.jpg"]) == []
