"""A small real split of cars-bmw13 for the selection, resume and recipe tests: 4 models x 12 photos."""
from __future__ import annotations

import pytest

CLASSES = ("BMW_1_Series_Convertible_2012", "BMW_3_Series_Wagon_2012", "BMW_X5_SUV_2007", "BMW_M3_Coupe_2012")


@pytest.fixture(scope="session")
def cars_split(cars_bmw13):
    """(dataset, train, validation, test): 6 training, 3 validation and 3 test photos per model."""
    train, validation, test = [], [], []
    for cls in CLASSES:
        ids = [i for i in cars_bmw13.ids if i.startswith(cls + "/")][:12]
        assert len(ids) == 12, cls
        train += ids[:6]
        validation += ids[6:9]
        test += ids[9:]
    return cars_bmw13, train, validation, test


class WatchedDataset:
    """A dataset that records every id it is asked about (read, labelled or fingerprinted)."""

    def __init__(self, base):
        self._base = base
        self.touched: set[str] = set()

    def __getattr__(self, name):
        return getattr(self._base, name)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._base

    def read_bytes(self, image_id: str) -> bytes:
        self.touched.add(image_id)
        return self._base.read_bytes(image_id)

    def labels(self, ids=None):
        ids = self._base.ids if ids is None else list(ids)
        self.touched.update(ids)
        return self._base.labels(ids)

    def fingerprint(self, ids=None) -> str:
        ids = self._base.ids if ids is None else list(ids)
        self.touched.update(ids)
        return self._base.fingerprint(ids)


@pytest.fixture
def watch():
    """Wraps a dataset so a test can see which ids it was asked about."""
    return WatchedDataset
