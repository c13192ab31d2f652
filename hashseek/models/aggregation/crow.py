"""CroW (Kalantidis, Mellina & Osindero 2016): cross-dimensional weighting and sum pooling."""
from __future__ import annotations

import torch
from torch import nn

from hashseek.models.aggregation.base import POOLINGS


@POOLINGS.register("crow", description="CroW: spatial weights from the summed map, channel weights from sparsity")
class CroWPooling(nn.Module):
    """Spatial weight: the channel-summed map, normalised by its (a)-norm, to the power 1/b (a = b = 2);
    channel weight: log(Σ q / q_k), q_k the fraction of non-zero positions of channel k (idf-like)."""

    def __init__(self, channels: int, a: float = 2.0, b: float = 2.0, eps: float = 1e-6):
        super().__init__()
        self.output_dim, self.a, self.b, self.eps = channels, a, b, eps

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        summed = maps.sum(dim=1, keepdim=True)
        norm = summed.pow(self.a).sum(dim=(2, 3), keepdim=True).pow(1.0 / self.a)
        spatial = (summed / (norm + self.eps)).pow(1.0 / self.b)
        pooled = (maps * spatial).sum(dim=(2, 3))
        nonzero = (maps > 0).float().mean(dim=(2, 3))
        channel = torch.log(nonzero.sum(dim=1, keepdim=True) / (nonzero + self.eps) + self.eps)
        return nn.functional.normalize(pooled * channel, dim=1)
