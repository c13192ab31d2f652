"""``hashnet``: weighted pairwise likelihood of HashNet (Cao et al. 2017, "HashNet: Deep Learning to Hash by Continuation")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, similarity, upper_pairs
from hashseek.models.heads.base import HeadOutput


@LOSSES.register("hashnet")
class HashNetLoss(HashLoss):
    """-log p(s_ij | u_i, u_j) with p = sigma(alpha <u_i, u_j>), alpha = 10 / k, pairs weighted by class balance.

    In-batch weights are |S|/|S1| for similar and |S|/|S0| for dissimilar pairs, so
    the loss is the mean over similar pairs plus the mean over dissimilar pairs.
    Written as softplus(x) - s x for stability. Continuation is the head's ``beta``.
    """

    def __init__(self, n_bits: int, n_classes: int | None = None):
        super().__init__(n_bits, n_classes)
        self.alpha = 10.0 / n_bits

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        u = output.signed_codes()
        s = upper_pairs(similarity(labels))
        x = upper_pairs(self.alpha * (u @ u.t()))
        nll = F.softplus(x) - s * x
        n_pairs = s.numel()
        n_similar = s.sum()
        weights = torch.where(
            s > 0, n_pairs / n_similar.clamp(min=1), n_pairs / (n_pairs - n_similar).clamp(min=1)
        )
        return (weights * nll).sum() / n_pairs


def hashnet_beta_schedule(step: int, step_size: int = 200, gamma: float = 0.005, power: float = 0.5) -> float:
    """HashNet's continuation: beta = (1 + gamma * t)^power, t = step rounded down to a multiple of step_size."""
    return (1.0 + gamma * (step // step_size * step_size)) ** power
