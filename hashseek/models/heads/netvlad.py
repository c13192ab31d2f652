"""``netvlad``: the NetVLAD layer (Arandjelović et al. 2016) trained as a hash head on a backbone's conv map.

The aggregation module's trainable layer (K soft-assigned residual centres) followed by a hash layer; its
centres start from k-means on the training maps' vectors (``init_from_maps``, called by the trainer before
the first epoch, as the registry's ``map_init`` says), then train with any pairwise or triplet loss.
"""
from __future__ import annotations

import torch
from torch import nn

from hashseek.models.aggregation.netvlad import NetVLADPooling
from hashseek.models.heads import HEADS
from hashseek.models.heads.base import HeadParts, TanhHead, code_classifier

KMEANS_VECTORS = 50_000   # map vectors k-means sees: enough for 16-64 centres, seconds on two cores


@HEADS.register("netvlad", map_init=True)
class NetVLADHead(TanhHead):
    """NetVLAD (K x C intra- and L2-normalised residuals) -> hash layer -> tanh(beta z).

    The embedding is the NetVLAD vector; the optional classifier reads the codes.
    """

    def __init__(self, in_channels: int, n_bits: int, n_classes: int | None = None, clusters: int = 16):
        super().__init__(in_channels, n_bits, n_classes)
        self.vlad = NetVLADPooling(in_channels, clusters)
        self.hash_layer = nn.Linear(self.vlad.output_dim, n_bits)
        self.classifier = code_classifier(n_bits, n_classes)
        self.embedding_dim = self.vlad.output_dim

    def init_from_maps(self, maps: torch.Tensor, seed: int = 0) -> "NetVLADHead":
        """k-means centres from a seeded sample of the (N, C, h, w) maps' spatial vectors."""
        vectors = maps.float().permute(0, 2, 3, 1).reshape(-1, self.in_channels)
        generator = torch.Generator().manual_seed(seed)
        if len(vectors) > KMEANS_VECTORS:
            vectors = vectors[torch.randperm(len(vectors), generator=generator)[:KMEANS_VECTORS]]
        self.vlad.init_from(vectors.numpy(), seed=seed)
        return self

    def head_forward(self, feature_map: torch.Tensor) -> HeadParts:
        embedding = self.vlad(feature_map)
        codes = self.activate(self.hash_layer(embedding))
        logits = self.classifier(codes) if self.classifier is not None else None
        return codes, logits, embedding
