"""Random-hyperplane LSH (Charikar 2002): the data-independent baseline every learned hasher must beat."""
from __future__ import annotations

import numpy as np

from hashseek.hashers.base import HASHERS, Hasher


@HASHERS.register("lsh")
class LSHHasher(Hasher):
    """Signs of Gaussian random projections of centred data.

    Centring matters: raw CNN features are non-negative, so hyperplanes through the
    origin would put almost every item on the same side.
    """

    name = "lsh"
    state_keys = ("mean_", "weights_")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        rng = np.random.default_rng(self.seed)
        self.mean_ = X.mean(axis=0)
        self.weights_ = rng.standard_normal((X.shape[1], self.n_bits))

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.weights_
