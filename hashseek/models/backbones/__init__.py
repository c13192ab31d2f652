"""Backbone registry: ``create_backbone(name, pretrained=True, weights=None)``."""
from __future__ import annotations

from pathlib import Path

from hashseek.models.backbones.base import Backbone, load_state_dict_file
from hashseek.core.registry import Registry

BACKBONES: Registry[Backbone] = Registry("backbone")

# Each family registers itself on import.
from hashseek.models.backbones import efficientnet_lite, mobilenet_v2, alexnet, vgg  # noqa: E402,F401


def create_backbone(name: str, pretrained: bool = True, weights: str | Path | None = None) -> Backbone:
    """Build a backbone by name.

    ``pretrained`` loads the weights bundled with an installed package where the
    family has them; ``weights`` names a local file that replaces them. Families
    without bundled weights (AlexNet, VGG) need ``weights`` or ``pretrained=False``.
    Nothing is ever downloaded.
    """
    return BACKBONES.create(name, pretrained=pretrained, weights=weights)


def list_backbones() -> list[str]:
    return BACKBONES.names()


__all__ = ["BACKBONES", "Backbone", "create_backbone", "list_backbones", "load_state_dict_file"]
