"""``dpsh``: pairwise-label likelihood of DPSH (Li et al. 2016, "Feature Learning based Deep Supervised Hashing with Pairwise Labels")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, quantization_loss, similarity, upper_pairs
from hashseek.models.heads.base import HeadOutput


@LOSSES.register("dpsh")
class DPSHLoss(HashLoss):
    """mean over pairs of log(1 + e^theta) - s theta, theta = 0.5 <u_i, u_j>, + eta * ||u - sign(u)||^2 (mean)."""

    def __init__(self, n_bits: int, n_classes: int | None = None, eta: float = 0.1):
        super().__init__(n_bits, n_classes)
        self.eta = eta

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        u = output.signed_codes()
        s = upper_pairs(similarity(labels))
        theta = upper_pairs(0.5 * (u @ u.t()))
        return (F.softplus(theta) - s * theta).mean() + self.eta * quantization_loss(u, p=2)
