"""``latent``: the sigmoid latent layer of Lin et al. 2015, "Deep learning of binary hash codes for fast image retrieval"."""
from __future__ import annotations

import torch
from torch import nn

from hashseek.models.heads import HEADS
from hashseek.models.heads.base import HeadParts, SigmoidHead, code_classifier, global_average


@HEADS.register("latent", has_classifier=True)
class LatentHead(SigmoidHead):
    """GAP -> sigmoid latent layer of ``n_bits`` units -> classifier, trained by plain cross-entropy.

    The codes are the latent activations (bit = 1 where >= 0.5); the embedding is the
    pooled vector, the stand-in for the fc7 features Lin et al. re-rank with.
    """

    def __init__(self, in_channels: int, n_bits: int, n_classes: int | None = None):
        super().__init__(in_channels, n_bits, n_classes)
        self.hash_layer = nn.Linear(in_channels, n_bits)
        self.classifier = code_classifier(n_bits, n_classes)
        self.embedding_dim = in_channels

    def head_forward(self, feature_map: torch.Tensor) -> HeadParts:
        embedding = global_average(feature_map)
        codes = self.activate(self.hash_layer(embedding))
        logits = self.classifier(codes) if self.classifier is not None else None
        return codes, logits, embedding
