"""AlexNet and the vehicle paper's improved AlexNet (``im_alexnet``).

Also holds what AlexNet and VGG share: the torchvision-compatible layout
(``features`` / ``avgpool`` / ``classifier``), the fc6/fc7 builder and the
weights policy. No weights are bundled: pass ``weights=PATH`` (a state dict with torchvision's
keys: ``features.N.weight``, ``classifier.N.weight``, ...) or ``pretrained=False``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from hashseek.core.errors import InvalidInputError
from hashseek.models.backbones import BACKBONES
from hashseek.models.backbones.base import Backbone, load_state_dict_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def fc_layers(in_features: int, hidden: int, dropout_first: bool, num_classes: int = 1000) -> nn.Sequential:
    """fc6, fc7 and the ImageNet classifier, in torchvision's order so ``classifier.N`` keys match.

    AlexNet puts dropout before each of fc6/fc7, VGG after each of their ReLUs.
    """
    fc6 = [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
    fc7 = [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
    if dropout_first:
        layers = [nn.Dropout(0.5), *fc6, nn.Dropout(0.5), *fc7]
    else:
        layers = [*fc6, nn.Dropout(0.5), *fc7, nn.Dropout(0.5)]
    return nn.Sequential(*layers, nn.Linear(hidden, num_classes))


class ClassicBackbone(Backbone):
    """A conv trunk ending in pool5, then fc6/fc7, laid out as torchvision's AlexNet/VGG.

    ``forward_features`` stops before pool5 so heads that pool the map themselves
    (GAP) see the full last conv map; ``pool`` runs pool5 -> adaptive avg pool ->
    fc6 -> fc7 and returns the fc7 activations after their ReLU.
    ``classifier[-1]`` (``classifier.6``), the 1000-way ImageNet layer, is unused by
    ``pool``; it is kept only so torchvision checkpoints load with ``strict=True``.
    Build through ``build`` (the registered factories): it runs ``init_weights`` or loads a file.
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, features: nn.Sequential, pool_size: int, dropout_first: bool):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = fc_layers(self.feature_channels * pool_size**2, self.pooled_dim, dropout_first)
        relus = [i for i, layer in enumerate(self.classifier) if isinstance(layer, nn.ReLU)]
        self.fc7_end = relus[-1] + 1

    def init_weights(self) -> None:
        """Kaiming normal convs, N(0, 0.01) linears, zero biases; reproducible under the caller's seed."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features[:-1](x)

    def stages(self) -> list[nn.Module]:
        """The conv layers cut after each max-pool, then fc6/fc7."""
        cuts = [i + 1 for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        return [self.features[a:b] for a, b in zip([0, *cuts], cuts)] + [self.classifier]

    def pool(self, feature_map: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features[-1](feature_map)), 1)
        return self.classifier[: self.fc7_end](x)


B = TypeVar("B", bound=ClassicBackbone)


def build(cls: type[B], pretrained: bool, weights: str | Path | None) -> B:
    """Construct ``cls`` and load ``weights`` if given; refuse ``pretrained`` without a file.

    Built on the meta device and then allocated, so no init runs twice: PyTorch's
    default init would be overwritten by ``init_weights`` or the file anyway, and
    each pass over VGG's 138M parameters takes seconds.
    """
    if pretrained and weights is None:
        raise InvalidInputError(
            f"backbone {cls.name!r} has no bundled weights: give a local state dict in torchvision's layout "
            "(--backbone-weights FILE; backbone_weights= in TrainConfig, weights= in create_backbone) "
            "or train it from random weights (--random-init; random_init=True, pretrained=False)"
        )
    with torch.device("meta"):
        model = cls()
    model.to_empty(device="cpu")
    if weights is None:
        model.init_weights()
    else:
        load_state_dict_file(model, weights)
    return model


def alexnet_features(conv1_kernel: int, conv1x1: bool) -> nn.Sequential:
    """AlexNet's five convs (torchvision's channel counts), three max pools, the last being pool5.

    ``conv1x1`` puts a channel-preserving 1x1 conv + ReLU in front of conv2..conv5.
    """
    convs = [(64, conv1_kernel, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
    pool_after = {0, 1, 4}
    layers: list[nn.Module] = []
    in_channels = 3
    for i, (out_channels, kernel, stride, padding) in enumerate(convs):
        if conv1x1 and i > 0:
            layers += [nn.Conv2d(in_channels, in_channels, 1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(in_channels, out_channels, kernel, stride, padding), nn.ReLU(inplace=True)]
        if i in pool_after:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        in_channels = out_channels
    return nn.Sequential(*layers)


class AlexNet(ClassicBackbone):
    """torchvision's AlexNet with identical state-dict keys; 256 x 13 x 13 conv5 map at 224 px."""

    name = "alexnet"
    feature_channels = 256
    pooled_dim = 4096
    conv1_kernel = 11
    conv1x1 = False

    def __init__(self):
        super().__init__(alexnet_features(self.conv1_kernel, self.conv1x1), pool_size=6, dropout_first=True)


class ImAlexNet(AlexNet):
    """The vehicle paper's improved AlexNet: 5x5 conv1, 1x1 conv + ReLU before conv2..conv5, 1024-d fc6/fc7.

    conv1 keeps AlexNet's stride 4 and padding 2: the 5x5 kernel still covers every
    pixel, and the maps stay AlexNet's sizes at 224 px (conv1 56, conv2 27,
    conv3..5 13, pool5 6), so fc6 still sees 256 x 6 x 6. The 1x1 convs keep the
    channel count, so conv2..conv5 are unchanged. Not torchvision-compatible;
    ``classifier.6`` is kept so ImageNet-pretrained checkpoints of this layout load strictly.
    """

    name = "im_alexnet"
    pooled_dim = 1024
    conv1_kernel = 5
    conv1x1 = True


@BACKBONES.register("alexnet")
def alexnet(pretrained: bool = True, weights: str | Path | None = None) -> Backbone:
    """AlexNet; ``weights`` may be a torchvision ``alexnet-*.pth`` file."""
    return build(AlexNet, pretrained, weights)


@BACKBONES.register("im_alexnet")
def im_alexnet(pretrained: bool = True, weights: str | Path | None = None) -> Backbone:
    """Improved AlexNet (5x5 conv1, 1x1 convs, 1024-d fc layers)."""
    return build(ImAlexNet, pretrained, weights)
