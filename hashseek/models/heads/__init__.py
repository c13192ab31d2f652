"""Hash-head registry: ``create_head(name, in_channels, n_bits, n_classes=None, **kw)``."""
from __future__ import annotations

from hashseek.models.heads.base import HashHead, HeadOutput, SigmoidHead, TanhHead
from hashseek.core.registry import Registry

# has_classifier: the method trains the head's classifier too, so it is built whenever classes are known.
# map_init: the head sets weights from the training maps (``init_from_maps``) before the first epoch.
HEADS: Registry[HashHead] = Registry("head", defaults={"has_classifier": False, "map_init": False})

# Each family registers itself on import.
from hashseek.models.heads import bilinear, fc, gap, latent, netvlad, spp_pmt  # noqa: E402,F401


def create_head(name: str, in_channels: int, n_bits: int, n_classes: int | None = None, **kw) -> HashHead:
    """Build a head for a backbone whose last conv map has ``in_channels`` channels.

    ``n_classes`` adds the head's classifier (required by heads trained with a
    classification loss); ``kw`` are the family's own options.
    """
    return HEADS.create(name, in_channels=in_channels, n_bits=n_bits, n_classes=n_classes, **kw)


def list_heads() -> list[str]:
    return HEADS.names()


__all__ = ["HEADS", "HashHead", "HeadOutput", "SigmoidHead", "TanhHead", "create_head", "list_heads"]
