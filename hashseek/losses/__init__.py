"""Loss registry: ``create_loss(name, n_bits, n_classes=None, **kw)``."""
from __future__ import annotations

from hashseek.losses.base import HashLoss
from hashseek.core.registry import Registry

# needs_logits: the head must have a classifier; needs_classes: the loss holds per-class state (CSQ's
# centres); memory_bank: it can score batches against a bank of every training item's codes (loss kwarg
# bank=True; the trainer then passes each item's training-set position, see ``memory_bank``);
# supervised: it learns from labels (every loss here does); continuation: its reference trains tanh codes
# tanh(beta z) with beta rising (HashNet's, ``hashnet_beta_schedule``), the others at beta = 1.
LOSSES: Registry[HashLoss] = Registry("loss", defaults={"needs_logits": False, "needs_classes": False,
                                                        "memory_bank": False, "supervised": True,
                                                        "continuation": False})

# Each family registers itself on import.
from hashseek.losses import ce, cnnh, csq, dpsh, dsh, hashnet, multitask, triplet  # noqa: E402,F401
from hashseek.losses.hashnet import hashnet_beta_schedule  # noqa: E402


def create_loss(name: str, n_bits: int, n_classes: int | None = None, **kw) -> HashLoss:
    """Build a loss for ``n_bits`` codes; ``n_classes`` is needed by losses with class-dependent state (csq)."""
    return LOSSES.create(name, n_bits=n_bits, n_classes=n_classes, **kw)


def list_losses() -> list[str]:
    return LOSSES.names()


__all__ = ["LOSSES", "HashLoss", "create_loss", "hashnet_beta_schedule", "list_losses"]
