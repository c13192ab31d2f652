"""``triplet``: in-batch triplet loss on relaxed codes (as in Schroff et al. 2015 / Hermans et al. 2017, applied to hashing)."""
from __future__ import annotations

from typing import Literal

import torch

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, quantization_loss, similarity, squared_distances
from hashseek.models.heads.base import HeadOutput


@LOSSES.register("triplet")
class TripletLoss(HashLoss):
    """max(D(a,p) - D(a,n) + margin * k, 0) on squared distances of codes in [-1, 1], + eta * quantisation.

    ``mining="all"`` (default) uses every valid triplet in the batch (a != p share a
    label, n shares none with a) and averages over the triplets with a positive
    loss, so easy triplets do not dilute the gradient; ``"hard"`` takes, per anchor,
    the farthest positive and nearest negative and averages over anchors.
    ``margin`` is per bit: 0.5 * k in squared distance is k/8 bits of Hamming distance.
    """

    def __init__(
        self,
        n_bits: int,
        n_classes: int | None = None,
        margin: float = 0.5,
        mining: Literal["all", "hard"] = "all",
        eta: float = 0.01,
    ):
        super().__init__(n_bits, n_classes)
        if mining not in ("all", "hard"):
            raise ValueError(f"mining must be 'all' or 'hard', got {mining!r}")
        self.margin = margin * n_bits
        self.mining = mining
        self.eta = eta

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        u = output.signed_codes()
        d = squared_distances(u)
        s = similarity(labels) > 0
        other = ~torch.eye(len(u), dtype=torch.bool, device=u.device)
        positive, negative = s & other, ~s & other      # an unlabelled multi-hot item is no negative of itself
        if self.mining == "all":
            anchor, pos = positive.nonzero(as_tuple=True)       # (P,) pairs; negatives along dim 1
            hinge = (d[anchor, pos][:, None] - d[anchor] + self.margin).clamp(min=0) * negative[anchor]
            triplet = hinge.sum() / (hinge > 0).sum().clamp(min=1)
        else:
            hardest_positive = d.masked_fill(~positive, float("-inf")).amax(dim=1)
            hardest_negative = d.masked_fill(~negative, float("inf")).amin(dim=1)
            valid = positive.any(dim=1) & negative.any(dim=1)
            hinge = (hardest_positive - hardest_negative + self.margin).clamp(min=0)
            triplet = hinge[valid].sum() / valid.sum().clamp(min=1)
        return triplet + self.eta * quantization_loss(u, p=2)
