"""VGG16 and VGG19 without batch norm, with torchvision's state-dict keys.

No weights are bundled: pass ``weights=PATH`` (e.g. torchvision's ``vgg16-*.pth``)
or ``pretrained=False``.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from hashseek.models.backbones import BACKBONES
from hashseek.models.backbones.alexnet import ClassicBackbone, build
from hashseek.models.backbones.base import Backbone

M = "M"  # 2x2 max pool; the last one is pool5


def vgg_features(cfg: tuple[int | str, ...]) -> nn.Sequential:
    """3x3 conv + ReLU per int (its output channels), a max pool per ``M``, in torchvision's order."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in cfg:
        if item == M:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = item
    return nn.Sequential(*layers)


class VGG(ClassicBackbone):
    """VGG trunk; 512 x 14 x 14 conv5 map at 224 px, fc7 activations as the pooled vector."""

    feature_channels = 512
    pooled_dim = 4096
    cfg: tuple[int | str, ...] = ()

    def __init__(self):
        super().__init__(vgg_features(self.cfg), pool_size=7, dropout_first=False)


class VGG16(VGG):
    name = "vgg16"
    cfg = (64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M)


class VGG19(VGG):
    name = "vgg19"
    cfg = (64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M)


@BACKBONES.register("vgg16")
def vgg16(pretrained: bool = True, weights: str | Path | None = None) -> Backbone:
    """VGG16; ``weights`` may be a torchvision ``vgg16-*.pth`` file."""
    return build(VGG16, pretrained, weights)


@BACKBONES.register("vgg19")
def vgg19(pretrained: bool = True, weights: str | Path | None = None) -> Backbone:
    """VGG19; ``weights`` may be a torchvision ``vgg19-*.pth`` file."""
    return build(VGG19, pretrained, weights)
