"""``gap``: HashNet-GAP from the vehicle-retrieval paper: no fully connected layer before hashing."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hashseek.models.heads import HEADS
from hashseek.models.heads.base import HeadParts, TanhHead, code_classifier, global_average


@HEADS.register("gap")
class GAPHead(TanhHead):
    """Max pool 2x2/2 (the kept pool5) -> global average pooling -> hash layer -> tanh(beta z).

    The max pool is skipped when the map is smaller than 2x2 (cached pooled features).
    The embedding is the pooled vector; the optional classifier reads the codes.
    """

    def __init__(self, in_channels: int, n_bits: int, n_classes: int | None = None):
        super().__init__(in_channels, n_bits, n_classes)
        self.hash_layer = nn.Linear(in_channels, n_bits)
        self.classifier = code_classifier(n_bits, n_classes)
        self.embedding_dim = in_channels

    def reduce_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The head's parameter-free pooling, (N, C, h, w) -> (N, C, 1, 1): a frozen run applies it once to
        its cached maps, and the head gives the same outputs on the result (epochs 50x cheaper)."""
        if min(feature_map.shape[2:]) >= 2:
            feature_map = F.max_pool2d(feature_map, kernel_size=2, stride=2)
        return global_average(feature_map)[:, :, None, None]

    def head_forward(self, feature_map: torch.Tensor) -> HeadParts:
        embedding = global_average(self.reduce_map(feature_map))
        codes = self.activate(self.hash_layer(embedding))
        logits = self.classifier(codes) if self.classifier is not None else None
        return codes, logits, embedding
