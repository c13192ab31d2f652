"""What every hash head returns and declares, so losses and binarisation need no special cases."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

CodeRange = Literal["tanh", "sigmoid"]
HeadParts = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # codes, logits, embedding


@dataclass
class HeadOutput:
    """One forward pass of a head.

    ``codes``: (N, n_bits) relaxed codes in (-1, 1) for tanh heads, (0, 1) for sigmoid heads.
    ``logits``: (N, n_classes) class scores, or None when the head has no classifier.
    ``embedding``: (N, embedding_dim) float feature the head computes before its hash
    layer, kept for fine re-ranking.
    ``code_range`` / ``code_threshold``: copied from the head; a bit is 1 where
    ``codes >= code_threshold``.
    """

    codes: torch.Tensor
    logits: torch.Tensor | None
    embedding: torch.Tensor
    code_range: CodeRange
    code_threshold: float

    def signed_codes(self) -> torch.Tensor:
        """Codes in [-1, 1] whatever the head (u = 2c - 1 for sigmoid heads), for the losses."""
        return 2.0 * self.codes - 1.0 if self.code_range == "sigmoid" else self.codes

    def bits(self) -> torch.Tensor:
        """(N, n_bits) uint8 {0, 1}: 1 where ``codes >= code_threshold``."""
        return (self.codes >= self.code_threshold).to(torch.uint8)


class HashHead(nn.Module):
    """A small module on top of a backbone's last conv map (N, C, h, w) -> ``HeadOutput``.

    Subclasses build their layers, set ``embedding_dim`` and implement ``head_forward``
    on a validated 4-d map; ``activate`` turns hash-layer pre-activations into codes.
    A map of (N, C, 1, 1) (cached pooled features) is always accepted, and so is an
    (N, C) vector, read as such a map. A head without a classifier of its own may be given
    ``centre_classifier`` (``heads.centres``): it then scores its codes against its hash centres.
    """

    code_range: ClassVar[CodeRange]
    code_threshold: ClassVar[float]

    def __init__(self, in_channels: int, n_bits: int, n_classes: int | None = None):
        super().__init__()
        if in_channels < 1 or n_bits < 1:
            raise ValueError(f"in_channels and n_bits must be positive, got {in_channels}, {n_bits}")
        if n_classes is not None and n_classes < 1:
            raise ValueError(f"n_classes must be positive or None, got {n_classes}")
        self.in_channels = in_channels
        self.n_bits = n_bits
        self.n_classes = n_classes
        self.embedding_dim = 0
        self.centre_classifier: nn.Module | None = None

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head_forward(self, feature_map: torch.Tensor) -> HeadParts:
        """(N, C, h, w) -> (codes, logits or None, embedding)."""
        raise NotImplementedError

    def forward(self, feature_map: torch.Tensor) -> HeadOutput:
        if feature_map.dim() == 2:
            feature_map = feature_map[:, :, None, None]
        if feature_map.dim() != 4 or feature_map.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects (N, {self.in_channels}, h, w) feature maps, "
                f"got {tuple(feature_map.shape)}"
            )
        codes, logits, embedding = self.head_forward(feature_map)
        if logits is None and self.centre_classifier is not None:
            logits = self.centre_classifier(codes)
        return HeadOutput(codes, logits, embedding, self.code_range, self.code_threshold)


class TanhHead(HashHead):
    """Codes tanh(beta * z); the trainer raises ``beta`` for continuation (HashNet, Cao et al. 2017)."""

    code_range = "tanh"
    code_threshold = 0.0

    def __init__(self, in_channels: int, n_bits: int, n_classes: int | None = None):
        super().__init__(in_channels, n_bits, n_classes)
        self.beta = 1.0

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.beta * z)


class SigmoidHead(HashHead):
    """Codes sigmoid(z) in (0, 1); a bit is 1 where the code is >= 0.5."""

    code_range = "sigmoid"
    code_threshold = 0.5

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z)


def global_average(feature_map: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, C)."""
    return feature_map.mean(dim=(2, 3))


def code_classifier(n_bits: int, n_classes: int | None) -> nn.Linear | None:
    """The optional classifier on the codes, present when ``n_classes`` is given."""
    return nn.Linear(n_bits, n_classes) if n_classes is not None else None
