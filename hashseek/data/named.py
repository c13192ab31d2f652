"""The three public datasets kept in ``HASHSEEK_DATA`` (default ``../shared/datasets``), by name."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hashseek.core.errors import NotFoundError
from hashseek.core.paths import data_root
from hashseek.data.datasets import ImageDataset, open_images

NAMED_DATASETS = {
    "caltech101": "caltech101.tar",
    "cifar10": "cifar10-jpg.tar.gz",
    "cars-bmw13": "cars-bmw13.tar.gz",
}


def load_dataset(name_or_path: str | Path, root: str | Path | None = None) -> ImageDataset:
    """A named dataset (``caltech101``, ``cifar10``, ``cars-bmw13``) or any folder/archive path."""
    key = str(name_or_path)
    if key in NAMED_DATASETS:
        folder = Path(root) if root is not None else data_root()
        path = folder / NAMED_DATASETS[key]
        if not path.is_file():
            raise NotFoundError(
                f"dataset {key!r} expects {path}; set HASHSEEK_DATA to the folder holding {NAMED_DATASETS[key]}"
            )
        return _open_cached(str(path.resolve()), key)
    path = Path(key).expanduser()
    if not path.exists():
        known = ", ".join(NAMED_DATASETS)
        raise NotFoundError(f"{key!r} is neither a named dataset ({known}) nor an existing path")
    return _open_cached(str(path.resolve()), None)


@lru_cache(maxsize=8)
def _open_cached(path: str, name: str | None) -> ImageDataset:
    return open_images(path, name)
