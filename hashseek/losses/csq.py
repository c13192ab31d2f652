"""``csq``: Central Similarity Quantization (Yuan et al. 2020, "Central Similarity Quantization for Efficient Image and Video Retrieval")."""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from hashseek.losses import LOSSES
from hashseek.losses.base import HashLoss, quantization_loss
from hashseek.models.heads.base import HeadOutput

CENTRE_TRIES = 20      # CSQ resamples random centres up to 20 times to spread them


def hash_centres(n_classes: int, n_bits: int, seed: int = 0) -> torch.Tensor:
    """(n_classes, n_bits) ±1 centres, as in the CSQ code.

    Rows of a Hadamard matrix H (k a power of 2), then of -H: any two are k/2 or k
    bits apart. Beyond 2k classes (or for other k) the remaining centres are random
    with exactly k/2 bits at -1, resampled up to 20 times until their minimum
    pairwise distance exceeds k/4 and the mean reaches k/2.
    """
    rng = np.random.default_rng(seed)
    if n_bits & (n_bits - 1) == 0:
        h = scipy.linalg.hadamard(n_bits)
        fixed = np.concatenate([h, -h])[:n_classes]
    else:
        fixed = np.empty((0, n_bits), dtype=np.int64)
    n_random = n_classes - len(fixed)
    if n_random == 0:
        return torch.from_numpy(fixed).float()
    for _ in range(CENTRE_TRIES):
        random = np.ones((n_random, n_bits), dtype=np.int64)
        for row in random:
            row[rng.choice(n_bits, n_bits // 2, replace=False)] = -1
        centres = np.concatenate([fixed, random])
        distances = (centres[:, None, :] != centres[None, :, :]).sum(-1)[np.triu_indices(n_classes, 1)]
        if distances.size == 0 or (distances.min() > n_bits / 4 and distances.mean() >= n_bits / 2):
            break
    return torch.from_numpy(centres).float()


@LOSSES.register("csq", needs_classes=True)
class CSQLoss(HashLoss):
    """BCE between (u + 1)/2 and each item's centre bits + lam * ||u - sign(u)||^2 (mean).

    One centre per class (a buffer, saved with the model). A multi-hot item's centre
    is the sign of the mean of its labels' centres; bits where they cancel take a
    fixed random ±1 vector, as in the CSQ code.
    """

    def __init__(self, n_bits: int, n_classes: int | None = None, lam: float = 1e-4, seed: int = 0):
        super().__init__(n_bits, n_classes)
        if n_classes is None:
            raise ValueError("csq needs n_classes to place one hash centre per class")
        self.lam = lam
        self.register_buffer("centres", hash_centres(n_classes, n_bits, seed))
        tie = torch.randint(0, 2, (n_bits,), generator=torch.Generator().manual_seed(seed)) * 2.0 - 1.0
        self.register_buffer("tie_centre", tie)

    def item_centres(self, labels: torch.Tensor) -> torch.Tensor:
        """(N, k) ±1 target centre of each item."""
        if labels.dim() == 1:
            return self.centres[labels.long()]
        summed = labels.float() @ self.centres
        return torch.where(summed == 0, self.tie_centre.expand_as(summed), summed.sign())

    def compute(self, output: HeadOutput, labels: torch.Tensor) -> torch.Tensor:
        u = output.signed_codes()
        target = (self.item_centres(labels) + 1.0) / 2.0
        centre_loss = F.binary_cross_entropy((u + 1.0) / 2.0, target)
        return centre_loss + self.lam * quantization_loss(u, p=2)
