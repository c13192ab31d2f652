"""``csq``: Central Similarity Quantization (Yuan et al. 2020, "Central Similarity Quantization for Efficient Image and Video Retrieval")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, quantization_loss
from hashseek.models.heads.base import HeadOutput
from hashseek.models.heads.centres import hash_centres


@LOSSES.register("csq", needs_classes=True)
class CSQLoss(HashLoss):
    """BCE between (u + 1)/2 and each item's centre bits + lam * ||u - sign(u)||^2 (mean).

    One centre per class (a buffer, saved with the model). A multi-hot item's centre
    is the sign of the mean of its labels' centres; bits where they cancel take a
    fixed random ±1 vector, as in the CSQ code.
    """

    def __init__(self, n_bits: int, n_classes: int | None = None, lam: float = 1e-4, seed: int = 0):
        super().__init__(n_bits, n_classes)
        if n_classes is None:
            raise ValueError("csq needs n_classes to place one hash centre per class")
        self.lam = lam
        self.register_buffer("centres", hash_centres(n_classes, n_bits, seed))
        tie = torch.randint(0, 2, (n_bits,), generator=torch.Generator().manual_seed(seed)) * 2.0 - 1.0
        self.register_buffer("tie_centre", tie)

    def class_centres(self) -> torch.Tensor:
        return self.centres

    def item_centres(self, labels: torch.Tensor) -> torch.Tensor:
        """(N, k) ±1 target centre of each item."""
        if labels.dim() == 1:
            return self.centres[labels.long()]
        summed = labels.float() @ self.centres
        return torch.where(summed == 0, self.tie_centre.expand_as(summed), summed.sign())

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        u = output.signed_codes()
        target = (self.item_centres(labels) + 1.0) / 2.0
        centre_loss = F.binary_cross_entropy((u + 1.0) / 2.0, target)
        return centre_loss + self.lam * quantization_loss(u, p=2)
