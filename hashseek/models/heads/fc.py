"""``fc``: HashNet's head (Cao et al. 2017, "HashNet: Deep Learning to Hash by Continuation")."""
from __future__ import annotations

import torch
from torch import nn

from hashseek.models.heads import HEADS
from hashseek.models.heads.base import HeadParts, TanhHead, code_classifier, global_average


@HEADS.register("fc")
class FCHead(TanhHead):
    """GAP -> two fc+ReLU+dropout layers (the fc6/fc7 role) -> hash layer -> tanh(beta z).

    The embedding is the fc7-role activation; the optional classifier reads the codes.
    """

    def __init__(
        self,
        in_channels: int,
        n_bits: int,
        n_classes: int | None = None,
        hidden: int = 1024,
        dropout: float = 0.5,
    ):
        super().__init__(in_channels, n_bits, n_classes)
        self.fc = nn.Sequential(
            nn.Linear(in_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.hash_layer = nn.Linear(hidden, n_bits)
        self.classifier = code_classifier(n_bits, n_classes)
        self.embedding_dim = hidden

    def head_forward(self, feature_map: torch.Tensor) -> HeadParts:
        embedding = self.fc(global_average(feature_map))
        codes = self.activate(self.hash_layer(embedding))
        logits = self.classifier(codes) if self.classifier is not None else None
        return codes, logits, embedding
