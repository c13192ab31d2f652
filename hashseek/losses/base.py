"""Pieces every hashing loss shares: label similarity, pair selection, quantisation, classification."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hashseek.models.heads.base import HeadOutput


class HashLoss(nn.Module):
    """``loss(output, labels) -> scalar``; labels are int class ids (N,) or multi-hot (N, L).

    Losses read ``output.signed_codes()``, codes in [-1, 1], so any loss composes
    with tanh and sigmoid heads alike. A loss with ``needs_index`` also takes ``index``,
    each item's position in the training set (the trainer passes it; see ``memory_bank``).
    """

    needs_index = False

    def __init__(self, n_bits: int, n_classes: int | None = None):
        super().__init__()
        self.n_bits = n_bits
        self.n_classes = n_classes

    def forward(self, output: HeadOutput, labels: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        n = output.codes.shape[0]
        if labels.dim() not in (1, 2) or labels.shape[0] != n:
            raise ValueError(f"labels must be (N,) class ids or (N, L) multi-hot with N={n}, got {tuple(labels.shape)}")
        return self.compute(output, labels) if index is None else self.compute(output, labels, index=index)

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        """The loss on a batch whose labels have been checked."""
        raise NotImplementedError

    def class_centres(self) -> torch.Tensor | None:
        """(n_classes, n_bits) ±1 codes each class is trained towards, for losses that fix them (CSQ):
        the trained model classifies by them (``HashModel.attach_centres``). None for the others."""
        return None


def similarity(labels: torch.Tensor) -> torch.Tensor:
    """(N, N) float {0, 1}: 1 where two items share a label (equal ids, or overlapping multi-hot)."""
    if labels.dim() == 1:
        return (labels[:, None] == labels[None, :]).float()
    labels = labels.float()
    return (labels @ labels.t() > 0).float()


def upper_pairs(matrix: torch.Tensor) -> torch.Tensor:
    """The entries of an (N, N) pairwise matrix for each unordered pair i < j once (no self-pairs)."""
    n = matrix.shape[0]
    if n < 2:
        raise ValueError("pairwise losses need at least 2 items in a batch")
    i, j = torch.triu_indices(n, n, offset=1, device=matrix.device)
    return matrix[i, j]


def squared_distances(u: torch.Tensor) -> torch.Tensor:
    """(N, N) squared Euclidean distances between rows, smooth everywhere (unlike ``cdist`` at 0)."""
    norms = (u * u).sum(dim=1)
    return (norms[:, None] + norms[None, :] - 2.0 * (u @ u.t())).clamp(min=0)


def quantization_loss(u: torch.Tensor, p: int = 2) -> torch.Tensor:
    """Mean over items and bits of | |u| - 1 |^p: how far relaxed codes are from ±1.

    p=2 equals ||u - sign(u)||^2 (DPSH, CSQ); p=1 is DSH's L1 regulariser.
    """
    return (u.abs() - 1.0).abs().pow(p).mean()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for class ids; binary cross-entropy with logits for multi-hot labels."""
    if labels.dim() == 1:
        return F.cross_entropy(logits, labels.long())
    return F.binary_cross_entropy_with_logits(logits, labels.float())


def require_logits(output: HeadOutput, loss_name: str) -> torch.Tensor:
    """The head's logits, or a clear error when the head was built without a classifier."""
    if output.logits is None:
        raise ValueError(
            f"loss {loss_name!r} needs class logits but the head has none; "
            "build the head with n_classes (and a head that has a classifier)"
        )
    return output.logits
