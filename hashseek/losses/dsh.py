"""``dsh``: contrastive loss of DSH (Liu et al. 2016, "Deep Supervised Hashing for Fast Image Retrieval")."""
from __future__ import annotations

import torch

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, quantization_loss, similarity, squared_distances, upper_pairs
from hashseek.models.heads.base import HeadOutput


def contrastive_loss(u: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over pairs of 0.5 D (similar) or 0.5 max(margin - D, 0) (dissimilar), D = ||u_i - u_j||^2."""
    s = upper_pairs(similarity(labels))
    d = upper_pairs(squared_distances(u))
    return 0.5 * (s * d + (1.0 - s) * (margin - d).clamp(min=0)).mean()


@LOSSES.register("dsh")
class DSHLoss(HashLoss):
    """Contrastive loss with margin m = margin * k (DSH: m = 2k) + alpha * || |u| - 1 ||_1 (mean over items and bits)."""

    def __init__(self, n_bits: int, n_classes: int | None = None, margin: float = 2.0, alpha: float = 0.01):
        super().__init__(n_bits, n_classes)
        self.margin = margin * n_bits
        self.alpha = alpha

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        u = output.signed_codes()
        return contrastive_loss(u, labels, self.margin) + self.alpha * quantization_loss(u, p=1)
