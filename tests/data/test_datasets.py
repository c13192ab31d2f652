import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from hashseek.data.datasets import ArchiveDataset, FolderDataset, open_images
from hashseek.data.images import load_image


def _jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, "JPEG")
    return buf.getvalue()


def _make_folder(root, image_set):
    """Two classes of the shipped images (16 files) copied into ``root``."""
    dataset, ids = image_set
    for image_id in ids[:16]:
        (root / image_id).parent.mkdir(parents=True, exist_ok=True)
        (root / image_id).write_bytes(dataset.read_bytes(image_id))
    return ids[:16]


def test_named_archives_have_the_documented_sizes(caltech101, cars_bmw13):
    assert (len(caltech101), len(caltech101.classes)) == (8677, 101)
    assert (len(cars_bmw13), len(cars_bmw13.classes)) == (531, 13)
    assert caltech101.ids[0] == "Faces/image_0001.jpg"
    assert caltech101.classes[caltech101.records[0].label] == "Faces"


def test_uncompressed_tar_reads_by_offset_identically(caltech101, tmp_path):
    image_id = "watch/image_0001.jpg"
    with tarfile.open(caltech101.path) as tar:
        expected = tar.extractfile("101_ObjectCategories/" + image_id).read()
    assert caltech101.read_bytes(image_id) == expected
    assert load_image(caltech101.read_bytes(image_id)).mode == "RGB"


def test_folder_and_gz_archive_give_the_same_records(image_set, tmp_path):
    ids = _make_folder(tmp_path / "photos", image_set)
    folder = FolderDataset(tmp_path / "photos")
    archive_path = tmp_path / "photos.tar.gz"
    with tarfile.open(archive_path, "w:gz") as tar:
        tar.add(tmp_path / "photos", arcname="photos")
    archive = open_images(archive_path)
    assert isinstance(archive, ArchiveDataset)
    assert folder.ids == archive.ids == sorted(ids)
    assert folder.classes == archive.classes == ["checks", "circles"]
    np.testing.assert_array_equal(folder.labels(), archive.labels())
    assert folder.read_bytes(ids[3]) == archive.read_bytes(ids[3])
    assert folder.fingerprint() != archive.fingerprint()
    assert folder.fingerprint(ids[:5]) != folder.fingerprint(ids[:6])


def test_root_files_are_unlabelled_and_non_images_ignored(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.jpg").write_bytes(_jpeg("red"))
    (tmp_path / "b.png").write_bytes(_jpeg("blue"))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "cats" / ".hidden.jpg").write_bytes(b"")
    ds = FolderDataset(tmp_path)
    assert ds.ids == ["b.png", "cats/a.jpg"]
    assert ds.labels().tolist() == [-1, 0]


def test_bad_paths_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        FolderDataset(tmp_path / "missing")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(ValueError, match="neither a folder nor a tar archive"):
        open_images(tmp_path / "x.zip")


def test_named_dataset_errors_name_the_variable(tmp_path, monkeypatch):
    from hashseek.core.errors import NotFoundError
    from hashseek.data.named import load_dataset

    monkeypatch.setenv("HASHSEEK_DATA", str(tmp_path))
    with pytest.raises(NotFoundError, match="HASHSEEK_DATA"):
        load_dataset("cifar10")
    with pytest.raises(NotFoundError, match="neither a named dataset"):
        load_dataset("no-such-set")
