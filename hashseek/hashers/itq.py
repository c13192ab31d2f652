"""Iterative Quantization (Gong & Lazebnik, CVPR 2011).

PCA spreads variance unevenly over the bits; ITQ rotates the PCA space so that the
binary codes lose as little as possible when the projections are quantised to ±1.
"""
from __future__ import annotations

import numpy as np

from hashseek.hashers.base import HASHERS, Hasher, fit_pca


@HASHERS.register("itq")
class ITQHasher(Hasher):
    """PCA to ``n_bits`` dims, then ``n_iter`` alternating steps minimising ||B - VR||².

    ``loss_history_[t]`` is the quantisation loss before the t-th rotation update; it never increases.
    """

    name = "itq"
    state_keys = ("mean_", "components_", "rotation_", "loss_history_")
    hyper_params = ("n_iter",)

    def __init__(self, n_bits: int, seed: int = 0, n_iter: int = 50):
        super().__init__(n_bits, seed)
        self.n_iter = int(n_iter)

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.mean_, self.components_ = fit_pca(X, self.n_bits)
        V = (X - self.mean_) @ self.components_
        rng = np.random.default_rng(self.seed)
        R, _ = np.linalg.qr(rng.standard_normal((self.n_bits, self.n_bits)))
        losses = []
        for _ in range(self.n_iter):
            VR = V @ R
            B = np.where(VR >= 0, 1.0, -1.0)
            losses.append(float(np.sum((B - VR) ** 2)))
            # Orthogonal Procrustes: R = argmax tr(B^T V R) over orthogonal R.
            U, _, Wt = np.linalg.svd(B.T @ V)
            R = Wt.T @ U.T
        self.rotation_ = R
        self.loss_history_ = np.asarray(losses)

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_ @ self.rotation_
