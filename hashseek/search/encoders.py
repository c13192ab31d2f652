"""What a collection needs from whatever turns images into codes: the ``ImageHasher`` protocol.

Two kinds satisfy it: a pretrained backbone whose pooled features a shallow hasher
(ITQ by default) fitted on the collection's own images turns into codes (zero-training
mode), and a trained deep hashing model. Each saves itself into a folder with a
``hasher.json`` naming its ``type``; ``load_image_hasher`` dispatches on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from hashseek.data.loader import Preprocess
from hashseek.registry import Registry


@runtime_checkable
class ImageHasher(Protocol):
    n_bits: int
    feature_dim: int
    preprocess: Preprocess

    def encode_arrays(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3, s, s) preprocessed images -> (packed codes (n, ceil(n_bits/8)) uint8, float features (n, d) float32)."""

    def describe(self) -> dict:
        """JSON-safe record of how codes are made (backbone, weights digest, method, bits)."""

    def save(self, directory: Path) -> None:
        """Write everything needed to rebuild it, including ``hasher.json`` with its ``type``."""


IMAGE_HASHER_LOADERS: Registry[Callable[[Path], ImageHasher]] = Registry("image hasher type")
