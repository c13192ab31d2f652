"""Shallow hashers on float features: ``create_hasher(name, n_bits, seed=0, **kw)``, ``load_hasher(path)``."""
from __future__ import annotations

from hashseek.hashers.base import HASHERS, Hasher, NotFittedError, create_hasher, load_hasher

# Each method registers itself on import.
from hashseek.hashers.itq import ITQHasher
from hashseek.hashers.ksh import KSHHasher
from hashseek.hashers.lsh import LSHHasher
from hashseek.hashers.pcah import PCAHasher
from hashseek.hashers.sdh import SDHHasher


def list_hashers() -> list[str]:
    return HASHERS.names()


__all__ = [
    "HASHERS", "Hasher", "ITQHasher", "KSHHasher", "LSHHasher", "NotFittedError", "PCAHasher", "SDHHasher",
    "create_hasher", "list_hashers", "load_hasher",
]
