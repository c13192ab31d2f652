"""NetVLAD (Arandjelović et al. 2016): soft-assign each map vector to K centres and sum the residuals.

A trainable layer: ``init_from(descriptors)`` sets the centres by k-means on map vectors (the paper's
initialisation), after which the 1x1 assignment convolution starts as the centres' dot products.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hashseek.models.aggregation.base import POOLINGS


@POOLINGS.register("netvlad", trainable=True, description="NetVLAD: soft-assigned residuals to K learnt centres")
class NetVLADPooling(nn.Module):
    def __init__(self, channels: int, clusters: int = 16, alpha: float = 100.0):
        super().__init__()
        self.output_dim, self.alpha = channels * clusters, alpha
        self.centres = nn.Parameter(torch.randn(clusters, channels) * 0.1)
        self.assign = nn.Conv2d(channels, clusters, 1, bias=True)
        self._assignment_from_centres()

    def _assignment_from_centres(self) -> None:
        c = nn.functional.normalize(self.centres.data, dim=1)
        self.assign.weight.data = (2 * self.alpha * c)[:, :, None, None]
        self.assign.bias.data = -self.alpha * (c ** 2).sum(dim=1)

    def init_from(self, descriptors: np.ndarray, seed: int = 0, iterations: int = 20) -> "NetVLADPooling":
        """k-means (seeded, Lloyd) on (n, C) L2-normalised map vectors."""
        from sklearn.cluster import KMeans

        x = descriptors / (np.linalg.norm(descriptors, axis=1, keepdims=True) + 1e-12)
        km = KMeans(len(self.centres), n_init=1, max_iter=iterations, random_state=seed).fit(x)
        self.centres.data = torch.as_tensor(km.cluster_centers_, dtype=torch.float32)
        self._assignment_from_centres()
        return self

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = nn.functional.normalize(maps, dim=1)
        soft = torch.softmax(self.assign(x), dim=1).flatten(2)                       # (N, K, hw)
        flat = x.flatten(2)                                                           # (N, C, hw)
        vlad = soft @ flat.transpose(1, 2) - soft.sum(dim=2, keepdim=True) * self.centres   # (N, K, C)
        vlad = nn.functional.normalize(vlad, dim=2)                                   # intra-normalisation
        return nn.functional.normalize(vlad.flatten(1), dim=1)
