"""HEIC/HEIF photos (an iPhone's default) are read when pillow-heif is installed (the heif extra, which
scripts/setup.sh installs); without it they are counted as not read, with how to read them."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from hashseek.cli import main
from hashseek.data import datasets
from hashseek.data.datasets import not_read_note, open_images
from hashseek.data.heif import HEIF_READABLE
from hashseek.data.images import load_image
from hashseek.search.collection import Collection
from hashseek.service.media import decode_upload


@pytest.fixture
def heic_folder(tmp_path, cars_bmw13):
    """Two classes of real cars-bmw13 photos re-encoded as .HEIC by pillow-heif's own encoder, plus a video."""
    if not HEIF_READABLE:
        message = "pillow-heif is not installed: pip install 'hashseek[heif]' (scripts/setup.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: fails instead of skipping)", pytrace=False)
        pytest.skip(message)
    root = tmp_path / "iphone"
    for cls in cars_bmw13.classes[:2]:
        (root / cls).mkdir(parents=True)
        for image_id in [i for i in cars_bmw13.ids if i.startswith(cls + "/")][:3]:
            with Image.open(io.BytesIO(cars_bmw13.read_bytes(image_id))) as photo:
                photo.convert("RGB").save(root / cls / (os.path.basename(image_id).rsplit(".", 1)[0] + ".HEIC"),
                                          format="HEIF", quality=80)
    (root / cars_bmw13.classes[0] / "clip.mov").write_bytes(b"not a picture")
    return root


def test_heic_photos_are_listed_labelled_and_decoded(heic_folder, cars_bmw13):
    dataset = open_images(heic_folder)
    assert len(dataset) == 6 and dataset.classes == sorted(cars_bmw13.classes[:2])
    assert dataset.ignored == {".mov": 1}
    image = load_image(dataset.read_bytes(dataset.ids[0]), draft_size=224)
    assert image.mode == "RGB" and min(image.size) >= 224
    upload = decode_upload((heic_folder / dataset.ids[0]).read_bytes(), "IMG_0001.HEIC", 224, 50_000_000)
    assert upload.mode == "RGB" and 224 <= min(upload.size) < 2 * 224


def test_index_adds_heic_photos_and_says_what_it_passed_over(heic_folder, tmp_path, capsys):
    assert main(["index", str(heic_folder), "--collection", str(tmp_path / "C"), "--bits", "16", "-q"]) == 0
    out = capsys.readouterr().out
    assert "added 6," in out and "unreadable 0" in out
    assert "1 file(s) not read, not images by their names (.mov 1)" in out
    with Collection.open(tmp_path / "C", read_only=True) as collection:
        assert len(collection) == 6


def test_without_pillow_heif_the_note_says_how_to_read_heic(monkeypatch):
    monkeypatch.setattr(datasets, "HEIF_READABLE", False)
    note = not_read_note({".heic": 12, ".mov": 1})
    assert note.startswith("13 file(s) not read, not images by their names (.heic 12, .mov 1)")
    assert "pip install 'hashseek[heif]'" in note
    assert "pillow-heif" not in (not_read_note({".mov": 1}) or "") and not_read_note({}) is None
