"""``multitask``: classification + contrastive loss of the aurora image retrieval paper."""
from __future__ import annotations

import torch

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, classification_loss, require_logits
from hashseek.losses.dsh import DSHLoss
from hashseek.models.heads.base import HeadOutput


@LOSSES.register("multitask", needs_logits=True, needs_classes=True)
class MultitaskLoss(HashLoss):
    """mu * cross-entropy(logits) + lam * DSH-style contrastive loss on the relaxed codes.

    ``margin`` (per bit) and ``alpha`` are the contrastive term's, as in ``dsh``. Its margin is
    2k, so the term grows with the code length k; ``lam`` defaults to 1/k to keep it on the
    cross-entropy's scale (with lam = 1 it swamped the classification: spp_pmt at 48 bits on
    cars-bmw13 trained 20 epochs gave top-8 vote 0.146, with 1/48 0.291, cross-entropy alone 0.335).
    Needs a head with a classifier (built with n_classes).
    """

    def __init__(
        self,
        n_bits: int,
        n_classes: int | None = None,
        mu: float = 1.0,
        lam: float | None = None,
        margin: float = 2.0,
        alpha: float = 0.01,
    ):
        super().__init__(n_bits, n_classes)
        self.mu = mu
        self.lam = 1.0 / n_bits if lam is None else lam
        self.contrastive = DSHLoss(n_bits, n_classes, margin=margin, alpha=alpha)

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        logits = require_logits(output, "multitask")
        return self.mu * classification_loss(logits, labels) + self.lam * self.contrastive(output, labels)
