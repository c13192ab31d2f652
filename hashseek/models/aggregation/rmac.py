"""R-MAC (Tolias, Sicre & Jégou 2016): max-pooled square regions at several scales, each L2-normalised,
PCA-whitened (once ``fit_whitening`` has seen a collection's maps) and re-normalised, summed and
normalised again."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hashseek.models.aggregation.base import POOLINGS


def rmac_regions(h: int, w: int, levels: int = 3) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of the regions: at level l, squares of side 2·min(h, w)/(l + 1),
    spread with about 40% overlap along the longer side (the paper's layout)."""
    regions = []
    short = min(h, w)
    for level in range(1, levels + 1):
        side = max(1, round(2 * short / (level + 1)))
        rows = _starts(h, side, level + (1 if h > w else 0))
        cols = _starts(w, side, level + (1 if w > h else 0))
        regions += [(top, left, side, side) for top in rows for left in cols]
    return list(dict.fromkeys(regions))


def _starts(length: int, side: int, count: int) -> list[int]:
    if side >= length or count <= 1:
        return [max(0, (length - side) // 2)]
    step = (length - side) / (count - 1)
    return sorted({round(i * step) for i in range(count)})


@POOLINGS.register("rmac", description="R-MAC: regional max pooling at several scales, whitened, summed")
class RMACPooling(nn.Module):
    """The regions are fixed by the map size at export, so the ONNX graph is a set of slices."""

    def __init__(self, channels: int, levels: int = 3):
        super().__init__()
        self.output_dim, self.levels = channels, levels
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("whitening", torch.eye(channels))

    def regions(self, maps: torch.Tensor) -> list[torch.Tensor]:
        h, w = int(maps.shape[-2]), int(maps.shape[-1])
        return [nn.functional.normalize(maps[:, :, top:top + height, left:left + width].amax(dim=(2, 3)), dim=1)
                for top, left, height, width in rmac_regions(h, w, self.levels)]

    @torch.no_grad()
    def fit_whitening(self, maps: torch.Tensor, eps: float = 1e-5) -> "RMACPooling":
        """PCA whitening learnt on the region vectors of a collection's (or a training set's) maps."""
        vectors = torch.cat(self.regions(maps)).double().numpy()
        mean = vectors.mean(axis=0)
        values, vecs = np.linalg.eigh(np.cov(vectors - mean, rowvar=False))
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.whitening = torch.as_tensor(vecs / np.sqrt(np.maximum(values, 0) + eps), dtype=torch.float32)
        return self

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        total = 0
        for region in self.regions(maps):
            total = total + nn.functional.normalize((region - self.mean) @ self.whitening, dim=1)
        return nn.functional.normalize(total, dim=1)
