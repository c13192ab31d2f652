"""``dsh``: contrastive loss of DSH (Liu et al. 2016, "Deep Supervised Hashing for Fast Image Retrieval")."""
from __future__ import annotations

import torch

from hashseek.losses import LOSSES
from hashseek.losses.base import quantization_loss
from hashseek.losses.memory_bank import BankPairLoss


def cross_squared_distances(u: torch.Tensor, bank_codes: torch.Tensor) -> torch.Tensor:
    """(N, M) squared Euclidean distances, smooth everywhere (unlike ``cdist`` at 0)."""
    return ((u * u).sum(1)[:, None] + (bank_codes * bank_codes).sum(1)[None, :]
            - 2.0 * (u @ bank_codes.t())).clamp(min=0)


@LOSSES.register("dsh", memory_bank=True)
class DSHLoss(BankPairLoss):
    """Mean over pairs (in the batch, or batch against bank with ``bank=True``) of 0.5 D (similar) or 0.5 max(m - D, 0) (dissimilar),
    D = ||u_i - U_j||^2, m = margin * k (DSH: m = 2k), + alpha * || |u| - 1 ||_1 (mean).

    alpha = 0.01 as in the DSH paper (DeepHash-pytorch uses 0.1). The paper's pairs are the batch's own;
    ``bank=True`` is DeepHash-pytorch's; ``balance=True`` weights pairs by class balance as HashNet
    does (not in DSH's references).
    """

    def __init__(self, n_bits: int, n_classes: int | None = None, margin: float = 2.0, alpha: float = 0.01,
                 bank: bool = False, balance: bool = False):
        super().__init__(n_bits, n_classes, bank, balance)
        self.margin = margin * n_bits
        self.alpha = alpha

    def pair_values(self, u: torch.Tensor, bank_codes: torch.Tensor) -> torch.Tensor:
        return cross_squared_distances(u, bank_codes)

    def pair_terms(self, d: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return 0.5 * (s * d + (1.0 - s) * (self.margin - d).clamp(min=0))

    def regulariser(self, u: torch.Tensor) -> torch.Tensor:
        return self.alpha * quantization_loss(u, p=1)
