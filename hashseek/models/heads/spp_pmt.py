"""``spp_pmt``: spatial pyramid pooling + power mean transform, from the aurora image retrieval paper."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hashseek.models.heads import HEADS
from hashseek.models.heads.base import HeadParts, SigmoidHead, code_classifier

PYRAMID = (4, 2, 1)        # grids of the max-pooling pyramid: 16 + 4 + 1 = 21 cells per channel
B_EPS = 1e-3               # floor on b so ln(x + b) stays finite on zero activations


def grid_max_pool(x: torch.Tensor, grid: int) -> torch.Tensor:
    """``adaptive_max_pool2d(x, grid).flatten(1)``, written as slices so that it exports to ONNX
    (the exporter refuses adaptive max pooling once the map's size is symbolic)."""
    h, w = (int(n) for n in x.shape[-2:])
    rows = [(i * h // grid, -(-(i + 1) * h // grid)) for i in range(grid)]
    cols = [(j * w // grid, -(-(j + 1) * w // grid)) for j in range(grid)]
    cells = [x[:, :, r0:r1, c0:c1].amax(dim=(2, 3)) for r0, r1 in rows for c0, c1 in cols]
    return torch.stack(cells, dim=2).flatten(1)


@HEADS.register("spp_pmt", has_classifier=True)
class SPPPMTHead(SigmoidHead):
    """SPP (4x4, 2x2, 1x1 max) -> PMT [ln(x+b), ln^2(x+b)] -> L2 norm -> fc + ReLU -> sigmoid hash layer -> classifier.

    b is learnable and kept positive as softplus(raw) + 1e-3; inputs are clamped
    at 0 (ReLU maps) so x + b > 0 always. The embedding is the fc output.
    """

    def __init__(
        self,
        in_channels: int,
        n_bits: int,
        n_classes: int | None = None,
        hidden: int = 1024,
        b_init: float = 1.0,
    ):
        super().__init__(in_channels, n_bits, n_classes)
        if b_init <= B_EPS:
            raise ValueError(f"b_init must exceed {B_EPS}, got {b_init}")
        # softplus^-1(b_init - eps) = ln(exp(b_init - eps) - 1)
        self.b_raw = nn.Parameter(torch.tensor([math.log(math.expm1(b_init - B_EPS))]))
        pyramid_features = in_channels * sum(g * g for g in PYRAMID)
        self.fc = nn.Sequential(nn.Linear(2 * pyramid_features, hidden), nn.ReLU(inplace=True))
        self.hash_layer = nn.Linear(hidden, n_bits)
        self.classifier = code_classifier(n_bits, n_classes)
        self.embedding_dim = hidden

    @property
    def b(self) -> torch.Tensor:
        return F.softplus(self.b_raw) + B_EPS

    def head_forward(self, feature_map: torch.Tensor) -> HeadParts:
        x = feature_map.clamp(min=0)
        pooled = torch.cat([grid_max_pool(x, grid) for grid in PYRAMID], dim=1)
        log = torch.log(pooled + self.b)
        # L2-normalised, as bilinear features are: with 2 x 21 x C inputs (53,760 for C = 1280), raw PMT
        # values let Adam's first steps move the fc outputs by tens and saturate the sigmoid codes
        embedding = self.fc(F.normalize(torch.cat([log, log * log], dim=1), dim=1))
        codes = self.activate(self.hash_layer(embedding))
        logits = self.classifier(codes) if self.classifier is not None else None
        return codes, logits, embedding
