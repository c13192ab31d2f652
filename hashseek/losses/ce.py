"""``ce``: plain cross-entropy on the head's logits, the training signal of Lin et al. 2015's latent layer."""
from __future__ import annotations

import torch

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, classification_loss, require_logits
from hashseek.models.heads.base import HeadOutput


@LOSSES.register("ce", needs_logits=True, needs_classes=True)
class CrossEntropyLoss(HashLoss):
    """Cross-entropy for class ids, binary cross-entropy with logits for multi-hot labels; codes unused."""

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        return classification_loss(require_logits(output, "ce"), labels)
