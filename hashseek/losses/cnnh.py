"""``cnnh``: Convolutional Neural Network Hashing (Xia, Pan, Lai, Liu & Yan, AAAI 2014), two stages.

Stage 1 learns target codes H ∈ {-1, 1}^(n×k) from the similarity matrix alone, minimising
||S - H Hᵀ / k||², with S = +1 for similar pairs and -1 otherwise. Stage 2 trains the network to
predict those codes. With single-label classes every image of a class has the same row of S, so
stage 1 runs on the class-level (c × c) matrix weighted by class sizes and gives one target code per
class; stage 2 is the trainer's usual loop with this loss (squared error to the item's target code).
"""
from __future__ import annotations

import numpy as np
import torch

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, quantization_loss
from hashseek.models.heads.base import HeadOutput


def cnnh_target_codes(n_classes: int, n_bits: int, class_sizes: np.ndarray | None = None, seed: int = 0,
                      sweeps: int = 50) -> np.ndarray:
    """Stage 1: (n_classes, n_bits) ±1 codes minimising Σ w_i w_j (S_ij - h_i·h_j / k)², S = 2·[i = j] - 1.

    Coordinate descent on the relaxed codes in [-1, 1] (each entry's quartic minimised on a grid of
    candidates, as every other entry is held), then signs; the seeded start is random."""
    rng = np.random.default_rng(seed)
    S = 2.0 * np.eye(n_classes) - 1.0
    w = np.ones(n_classes) if class_sizes is None else np.asarray(class_sizes, dtype=np.float64)
    W = np.outer(w, w)
    H = rng.uniform(-1, 1, (n_classes, n_bits))
    grid = np.linspace(-1.0, 1.0, 41)
    for _ in range(sweeps):
        before = H.copy()
        for i in range(n_classes):
            for b in range(n_bits):
                H[i, b] = 0.0
                base = H @ H[i] / n_bits                              # (c,) inner products without bit b
                # entry x changes row i's products by x·H[j, b]/k (j ≠ i) and its own by x²/k
                products = base[:, None] + np.outer(H[:, b], grid) / n_bits
                products[i] = base[i] + grid ** 2 / n_bits
                cost = (W[i][:, None] * (S[i][:, None] - products) ** 2).sum(axis=0)
                H[i, b] = grid[np.argmin(cost)]
        if np.array_equal(before, H):
            break
    return np.where(H >= 0, 1.0, -1.0)


@LOSSES.register("cnnh", needs_classes=True)
class CNNHLoss(HashLoss):
    """Squared error between the relaxed codes and each item's stage-1 target code (+ quantisation)."""

    def __init__(self, n_bits: int, n_classes: int | None = None, lam: float = 1e-2, seed: int = 0,
                 class_sizes: list[int] | None = None):
        super().__init__(n_bits, n_classes)
        if n_classes is None:
            raise ValueError("cnnh needs n_classes: its target codes are learnt per class")
        self.lam = lam
        targets = cnnh_target_codes(n_classes, n_bits, None if class_sizes is None else np.array(class_sizes), seed)
        self.register_buffer("targets", torch.from_numpy(targets).float())

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        if labels.dim() != 1:
            raise ValueError("cnnh's target codes are per class: give (N,) class ids")
        u = output.signed_codes()
        return ((u - self.targets[labels.long()]) ** 2).mean() + self.lam * quantization_loss(u, p=2)
