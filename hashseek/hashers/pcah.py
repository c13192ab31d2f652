"""PCA hashing: sign of the top principal components, the simplest data-dependent baseline."""
from __future__ import annotations

import numpy as np

from hashseek.hashers.base import HASHERS, Hasher, fit_pca


@HASHERS.register("pcah")
class PCAHasher(Hasher):
    """Bits are signs of the top-``n_bits`` PCA projections (needs ``n_bits <= d``).

    Deterministic for a given training set; ``seed`` is kept only for a uniform API.
    """

    name = "pcah"
    state_keys = ("mean_", "components_")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.mean_, self.components_ = fit_pca(X, self.n_bits)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_
