"""Supervised Discrete Hashing (Shen, Shen, Liu & Shen, CVPR 2015).

Learns codes that linearly predict the labels while keeping the ±1 constraint
during optimisation (discrete cyclic coordinate descent) instead of relaxing it,
then a kernel projection that reproduces those codes for unseen features.
"""
from __future__ import annotations

import numpy as np

from hashseek.hashers.base import HASHERS, Hasher


def _label_matrix(y: np.ndarray | None, n: int, method: str = "sdh") -> np.ndarray:
    """Int labels (n,) -> one-hot, or multi-hot (n, c) as given -> (n, c) float."""
    if y is None:
        raise ValueError(f"{method} is supervised: fit(X, y) needs labels (int class ids or a multi-hot matrix)")
    y = np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"got {y.shape[0]} labels for {n} samples")
    if y.ndim == 1:
        _, ids = np.unique(y, return_inverse=True)
        return np.eye(ids.max() + 1)[ids]
    if y.ndim == 2:
        return y.astype(np.float64)
    raise ValueError(f"labels must be (n,) class ids or (n, c) multi-hot, got shape {y.shape}")


@HASHERS.register("sdh", supervised=True)
class SDHHasher(Hasher):
    """min ||Y - BW||² + lam||W||² + nu||B - φ(X)P||² over B ∈ {±1}, W, P.

    φ is an RBF map onto ``n_anchors`` training samples (drawn with ``seed``; all samples
    when there are fewer) plus a bias, with sigma the mean sample-anchor distance.
    ``ridge`` regularises the projection P, which is all ``transform`` needs.
    """

    name = "sdh"
    state_keys = ("anchors_", "sigma_", "projection_")
    hyper_params = ("n_anchors", "lam", "nu", "ridge", "n_iter", "dcc_passes")

    def __init__(self, n_bits: int, seed: int = 0, n_anchors: int = 1000, lam: float = 1.0,
                 nu: float = 1e-5, ridge: float = 1e-2, n_iter: int = 5, dcc_passes: int = 5):
        super().__init__(n_bits, seed)
        self.n_anchors, self.lam, self.nu, self.ridge = int(n_anchors), float(lam), float(nu), float(ridge)
        self.n_iter, self.dcc_passes = int(n_iter), int(dcc_passes)

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        Y = _label_matrix(y, X.shape[0])
        rng = np.random.default_rng(self.seed)
        m = min(self.n_anchors, X.shape[0])
        self.anchors_ = X[np.sort(rng.choice(X.shape[0], m, replace=False))]
        sq = _sq_distances(X, self.anchors_)
        self.sigma_ = float(np.sqrt(sq).mean())
        Phi = self._rbf(sq)

        B = np.where(rng.standard_normal((X.shape[0], self.n_bits)) >= 0, 1.0, -1.0)
        P = self._fit_projection(Phi, B)
        for _ in range(self.n_iter):
            W = np.linalg.solve(B.T @ B + self.lam * np.eye(self.n_bits), B.T @ Y)
            B = self._discrete_step(B, W, Y @ W.T + self.nu * (Phi @ P))
            P = self._fit_projection(Phi, B)
        self.projection_ = P

    def _discrete_step(self, B: np.ndarray, W: np.ndarray, Q: np.ndarray) -> np.ndarray:
        """DCC: min ||BW||² - 2 tr(BᵀQ) one bit-column at a time, each solved exactly by a sign."""
        B = B.copy()
        BW = B @ W
        for _ in range(self.dcc_passes):
            changed = False
            for bit in range(self.n_bits):
                BW -= np.outer(B[:, bit], W[bit])
                z = np.where(Q[:, bit] - BW @ W[bit] >= 0, 1.0, -1.0)
                changed |= bool(np.any(z != B[:, bit]))
                B[:, bit] = z
                BW += np.outer(z, W[bit])
            if not changed:
                break
        return B

    def _fit_projection(self, Phi: np.ndarray, B: np.ndarray) -> np.ndarray:
        gram = Phi.T @ Phi + self.ridge * np.eye(Phi.shape[1])
        return np.linalg.solve(gram, Phi.T @ B)

    def _rbf(self, sq: np.ndarray) -> np.ndarray:
        Phi = np.exp(-sq / (2.0 * float(self.sigma_) ** 2))
        return np.hstack([Phi, np.ones((Phi.shape[0], 1))])

    def _project(self, X: np.ndarray) -> np.ndarray:
        return self._rbf(_sq_distances(X, self.anchors_)) @ self.projection_


def _sq_distances(X: np.ndarray, A: np.ndarray) -> np.ndarray:
    sq = (X**2).sum(1)[:, None] + (A**2).sum(1)[None, :] - 2.0 * X @ A.T
    return np.maximum(sq, 0.0)
