"""GeM, generalised-mean pooling (Radenović, Tolias & Chum 2018): p = 1 is average, p -> ∞ is max."""
from __future__ import annotations

import torch
from torch import nn

from hashseek.models.aggregation.base import POOLINGS


@POOLINGS.register("gem", trainable=True, description="GeM: (mean of x^p)^(1/p), p fixed or learnt (3 by default)")
class GeMPooling(nn.Module):
    def __init__(self, channels: int, p: float = 3.0, learn_p: bool = False, eps: float = 1e-6):
        super().__init__()
        self.output_dim, self.eps = channels, eps
        p = torch.tensor(float(p))
        if learn_p:
            self.p = nn.Parameter(p)
        else:
            self.register_buffer("p", p)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        pooled = maps.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
        return nn.functional.normalize(pooled, dim=1)
