"""Global pools: average (the default), SPoC's sum with a centre prior, and MAC's max."""
from __future__ import annotations

import torch
from torch import nn

from hashseek.models.aggregation.base import POOLINGS


@POOLINGS.register("avg", description="global average of the map")
class AveragePooling(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.output_dim = channels

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))


@POOLINGS.register("spoc", description="SPoC (Babenko & Lempitsky 2015): sum pooling, optionally centre-weighted")
class SPoCPooling(nn.Module):
    """Sum of the map's vectors weighted by a Gaussian centre prior (sigma = a third of the distance from
    the centre to the nearest border, as in the paper), L2-normalised; ``centre_prior=False`` plain sum."""

    def __init__(self, channels: int, centre_prior: bool = True):
        super().__init__()
        self.output_dim, self.centre_prior = channels, centre_prior

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if self.centre_prior:
            h, w = maps.shape[-2:]
            ys = torch.arange(h, dtype=maps.dtype) - (h - 1) / 2
            xs = torch.arange(w, dtype=maps.dtype) - (w - 1) / 2
            sigma = min(h, w) / 2 / 3
            weights = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2))
            maps = maps * weights
        return nn.functional.normalize(maps.sum(dim=(2, 3)), dim=1)


@POOLINGS.register("mac", description="MAC: the maximum of each channel")
class MACPooling(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.output_dim = channels

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(maps.amax(dim=(2, 3)), dim=1)
