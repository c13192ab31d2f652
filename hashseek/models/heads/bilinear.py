"""``bilinear``: Bilinear-HashNet, symmetric bilinear pooling (Lin et al. 2015, B-CNN) under a HashNet hash layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hashseek.models.heads import HEADS
from hashseek.models.heads.base import HeadParts, TanhHead, global_average

DEFAULT_REDUCED_CHANNELS = 256


@HEADS.register("bilinear", has_classifier=True)
class BilinearHead(TanhHead):
    """[1x1 conv + ReLU reduction] -> bilinear pooling -> signed sqrt -> L2 norm -> hash layer -> tanh(beta z).

    The bilinear feature has d^2 entries for a d-channel map, so wide maps are first
    reduced by a 1x1 conv: ``reduced_channels=None`` means 256 when C > 256 (512^2 or
    1280^2 features would make the hash layer and classifier huge) and no reduction
    otherwise; an explicit d reduces to d channels (d == C: no reduction).
    The classifier reads the bilinear feature, not the codes, for the 3-stage
    schedule exposed by ``stage_parameters``. The embedding (the re-rank feature a
    collection stores) is the reduced map's channel average, d non-negative floats:
    the d^2-float bilinear feature would cost 128 KB an image in float16.
    """

    def __init__(
        self,
        in_channels: int,
        n_bits: int,
        n_classes: int | None = None,
        reduced_channels: int | None = None,
    ):
        super().__init__(in_channels, n_bits, n_classes)
        if reduced_channels is None:
            reduced_channels = DEFAULT_REDUCED_CHANNELS if in_channels > DEFAULT_REDUCED_CHANNELS else in_channels
        self.reduction = (
            nn.Sequential(nn.Conv2d(in_channels, reduced_channels, kernel_size=1), nn.ReLU(inplace=True))
            if reduced_channels != in_channels
            else None
        )
        self.embedding_dim = reduced_channels
        self.bilinear_dim = reduced_channels**2
        self.hash_layer = nn.Linear(self.bilinear_dim, n_bits)
        self.classifier = nn.Linear(self.bilinear_dim, n_classes) if n_classes is not None else None

    def reduce(self, feature_map: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, d, h, w), the map the bilinear pooling reads."""
        return feature_map if self.reduction is None else self.reduction(feature_map)

    @staticmethod
    def bilinear_feature(reduced_map: torch.Tensor) -> torch.Tensor:
        """(N, d, h, w) -> (N, d^2): location-averaged outer product, signed sqrt, L2 normalised."""
        x = reduced_map.flatten(2)                                   # (N, d, hw)
        pooled = torch.bmm(x, x.transpose(1, 2)).flatten(1) / x.shape[2]
        # sign(0) = 0 keeps the gradient finite where ReLU maps give exact zeros.
        pooled = torch.sign(pooled) * torch.sqrt(pooled.abs() + 1e-5)
        return F.normalize(pooled, dim=1)

    def head_forward(self, feature_map: torch.Tensor) -> HeadParts:
        reduced = self.reduce(feature_map)
        bilinear = self.bilinear_feature(reduced)
        codes = self.activate(self.hash_layer(bilinear))
        logits = self.classifier(bilinear) if self.classifier is not None else None
        return codes, logits, global_average(reduced)

    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """The head's trainable parameters in each stage of Bilinear-HashNet's schedule.

        1: the classifier on bilinear features (backbone frozen);
        2: the whole bilinear module, reduction + classifier (the trainer also unfreezes the backbone);
        3: the hash layer only.
        """
        if stage in (1, 2) and self.classifier is None:
            raise ValueError(f"stage {stage} trains the classifier; build the bilinear head with n_classes")
        if stage == 1:
            return list(self.classifier.parameters())
        if stage == 2:
            reduction = list(self.reduction.parameters()) if self.reduction is not None else []
            return reduction + list(self.classifier.parameters())
        if stage == 3:
            return list(self.hash_layer.parameters())
        raise ValueError(f"Bilinear-HashNet has stages 1, 2 and 3, got {stage}")
