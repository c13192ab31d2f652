"""Labelled folders of real JPEGs from the shared cars-bmw13 archive, as a user would have them."""
from __future__ import annotations

from pathlib import Path

import pytest


def write_folder(dataset, root: Path, classes: list[str], per_class: int) -> Path:
    """``per_class`` JPEG files of each class, one sub-folder per class."""
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for image_id in [i for i in dataset.ids if i.startswith(cls + "/")][:per_class]:
            (root / image_id).write_bytes(dataset.read_bytes(image_id))
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory, cars_bmw13):
    """4 car models x 12 photos."""
    return write_folder(cars_bmw13, tmp_path_factory.mktemp("user") / "photos", cars_bmw13.classes[:4], 12)


@pytest.fixture(scope="module")
def other_photos(tmp_path_factory, cars_bmw13):
    """3 other car models x 8 photos, never trained on."""
    return write_folder(cars_bmw13, tmp_path_factory.mktemp("other") / "others", cars_bmw13.classes[8:11], 8)


@pytest.fixture
def make_photos(tmp_path, cars_bmw13):
    """make_photos(name, classes, per_class) -> a fresh folder (its own feature-cache key)."""
    return lambda name, classes, per_class: write_folder(cars_bmw13, tmp_path / name, classes, per_class)
