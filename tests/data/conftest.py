"""Labelled folders built from real images of the shared cars-bmw13 archive."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def make_folder(tmp_path, cars_bmw13):
    """make_folder({class index: n images}, name) -> a folder with one sub-folder per class."""

    def make(sizes: dict[int, int], name: str = "photos") -> Path:
        root = tmp_path / name
        for label, n in sizes.items():
            cls = cars_bmw13.classes[label]
            ids = [i for i in cars_bmw13.ids if i.startswith(cls + "/")][:n]
            (root / cls).mkdir(parents=True, exist_ok=True)
            for image_id in ids:
                (root / image_id).write_bytes(cars_bmw13.read_bytes(image_id))
        return root

    return make
