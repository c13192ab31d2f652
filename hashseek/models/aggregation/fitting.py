"""A pooling fitted on a set of conv maps, and applied to memory-mapped maps a block at a time.

R-MAC learns its PCA whitening from the fit maps' region vectors; NetVLAD (untrained) takes its
centres from k-means on up to ``NETVLAD_DESCRIPTORS`` of their map vectors; the others have
nothing to fit. Shared by the results runner (``hashseek.eval.runner``, fitting on a protocol's
training maps) and ``benchmarks/aggregation.py``.
"""
from __future__ import annotations

import numpy as np
import torch

from hashseek.models.aggregation.base import create_pooling

NETVLAD_DESCRIPTORS = 20_000
BLOCK = 256     # maps pooled at a time: CIFAR-10's 54,000 database maps are 6.8 GB, never read at once


def needs_fit(name: str) -> bool:
    """Whether the pooling learns something from maps before use (its fit maps must be read)."""
    return name in ("rmac", "netvlad")


def fit_pooling(name: str, fit_maps: np.ndarray, seed: int = 0) -> torch.nn.Module:
    """The pooling for maps of ``fit_maps``' channels, fitted on them when it learns anything."""
    channels = fit_maps.shape[1]
    pooling = create_pooling(name, channels).eval()
    if not needs_fit(name):
        return pooling
    with torch.no_grad():
        fit = torch.from_numpy(np.asarray(fit_maps, np.float32))
        if name == "rmac":
            pooling.fit_whitening(fit)
        else:
            descriptors = fit.permute(0, 2, 3, 1).reshape(-1, channels).numpy()
            rng = np.random.default_rng(seed)
            chosen = rng.choice(len(descriptors), min(NETVLAD_DESCRIPTORS, len(descriptors)), replace=False)
            pooling.init_from(descriptors[chosen], seed=seed)
    return pooling


def pool_maps(pooling: torch.nn.Module, maps: np.ndarray) -> np.ndarray:
    """L2-normalised float16 vectors of (memory-mapped) maps, ``BLOCK`` at a time (CIFAR-10's 54,000
    NetVLAD vectors are 2.2 GB in float16)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(maps), BLOCK):
            v = pooling(torch.from_numpy(np.asarray(maps[i:i + BLOCK], np.float32))).numpy()
            out.append((v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)).astype(np.float16))
    return np.concatenate(out)
