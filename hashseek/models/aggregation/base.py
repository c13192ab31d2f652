"""The pooling registry: each entry a small module over conv maps, with its metadata."""
from __future__ import annotations

from torch import nn

from hashseek.core.registry import Registry

POOLINGS: Registry[nn.Module] = Registry("pooling", defaults={"trainable": False, "description": ""})


def create_pooling(name: str, channels: int, **kwargs) -> nn.Module:
    """A pooling module for maps of ``channels`` channels; its ``output_dim`` says the vector's length."""
    return POOLINGS.create(name, channels=channels, **kwargs)


def list_poolings() -> list[str]:
    return POOLINGS.names()
