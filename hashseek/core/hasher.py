"""What a collection needs from whatever turns images into codes: the ``ImageHasher`` protocol.

Two kinds satisfy it: a pretrained backbone whose pooled features a shallow hasher fitted on
the collection's own images turns into codes (zero training, ``search.feature_hasher``), and a
trained deep hashing model (``models.hash_model``). Each saves itself into a folder with a
``hasher.json`` naming its ``type``; ``load_image_hasher`` finds the loader in
``IMAGE_HASHER_LOADERS``, importing the module the type's metadata names on first use, so this
layer never imports the layers that implement it.
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from hashseek.core.errors import DamagedError, InvalidInputError, NotFoundError
from hashseek.core.registry import Registry

HASHER_JSON = "hasher.json"


@runtime_checkable
class ImageHasher(Protocol):
    n_bits: int
    feature_dim: int
    preprocess: Callable             # image (path, bytes, PIL) -> (3, s, s) float32 input
    is_fitted: bool                  # False: features can be stored, codes wait for a fit
    can_refit: bool                  # True: a ``RefittableHasher``, fitted on the collection's own features

    def encode_arrays(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3, s, s) preprocessed images -> (packed codes (n, ceil(n_bits/8)) uint8, float features (n, d) float32)."""

    def describe(self) -> dict:
        """JSON-safe record of how codes are made (backbone, weights digest, method, bits)."""

    def save(self, directory: Path) -> None:
        """Write everything needed to rebuild it, including ``hasher.json`` with its ``type``."""


@runtime_checkable
class RefittableHasher(ImageHasher, Protocol):
    """An ``ImageHasher`` whose codes are a function of stored float features, fitted on the collection
    (zero training): refits and integrity checks recompute codes without decoding an image."""

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """(n, 3, s, s) preprocessed images -> (n, d) float features, before any fit."""

    def fit(self, features: np.ndarray) -> "RefittableHasher":
        """Fit (again) on the collection's stored features."""

    def codes_from_features(self, features: np.ndarray) -> np.ndarray:
        """Stored features -> packed codes."""


IMAGE_HASHER_LOADERS: Registry[Callable[[Path], ImageHasher]] = Registry("image hasher type")
_LOADER_MODULES = {  # type -> the module that registers its loader, imported on first use
    "pretrained+shallow": "hashseek.search.feature_hasher",
    "hash_model": "hashseek.models.hash_model"}


def write_hasher_json(directory: Path, payload: dict) -> None:
    from hashseek.core.atomic import atomic_write_json

    atomic_write_json(Path(directory) / HASHER_JSON, payload)


def load_image_hasher(directory: str | Path) -> ImageHasher:
    """Rebuild any saved ``ImageHasher`` from its folder, dispatching on ``hasher.json``'s ``type``."""
    directory = Path(directory).expanduser()
    spec = directory / HASHER_JSON
    if not spec.is_file():
        raise NotFoundError(f"{directory} holds no saved model or hasher ({HASHER_JSON} is missing)")
    try:
        kind = json.loads(spec.read_text()).get("type")
    except (ValueError, AttributeError) as err:
        raise DamagedError(f"{spec} is not readable JSON ({err})") from None
    if kind not in IMAGE_HASHER_LOADERS and kind in _LOADER_MODULES:
        importlib.import_module(_LOADER_MODULES[kind])   # registers its loader
    if kind not in IMAGE_HASHER_LOADERS:
        raise InvalidInputError(f"{directory}: unknown image hasher type {kind!r} "
                                f"(known: {', '.join(sorted(_LOADER_MODULES))})")
    return IMAGE_HASHER_LOADERS.get(kind)(directory)
