"""Hash centres (CSQ's targets, one ±1 code per class) and the classifier they give a model trained towards them.

CSQ trains each bit of a code, read as a probability p = (u + 1) / 2, towards its class centre's bit
by binary cross-entropy, so the classes' log-likelihoods sum_b [t_b log p_b + (1 - t_b) log(1 - p_b)]
(t = the centre's bits in {0, 1}) are that loss negated: their softmax is the class posterior under
equal priors, and their argmax the centre the codes are nearest to, weighted by how sure each bit is.
It gives a head trained without a classifier the classifier figure the critique literature asks for
beside the vote ("How should we evaluate supervised hashing?", arXiv 1609.06753), and the search's
``classifier`` method; classes added after training are reached by the vote only.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import nn

from hashseek.models.heads.base import CodeRange

PROBABILITY_FLOOR = 1e-6  # a bit at exactly 0 or 1 would make a log-likelihood infinite
CENTRE_TRIES = 20         # CSQ resamples random centres up to 20 times to spread them


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


class CentreClassifier(nn.Module):
    """(N, n_bits) relaxed codes -> (N, n_classes) log-likelihoods of the fixed ±1 ``centres``."""

    def __init__(self, centres: torch.Tensor, code_range: CodeRange):
        super().__init__()
        if centres.dim() != 2:
            raise ValueError(f"centres must be (n_classes, n_bits), got {tuple(centres.shape)}")
        self.register_buffer("centres", centres.detach().float().clone())
        self.code_range = code_range

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        p = codes if self.code_range == "sigmoid" else (codes + 1.0) / 2.0
        p = p.float().clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
        targets = (self.centres + 1.0) / 2.0
        return p.log() @ targets.T + (1.0 - p).log() @ (1.0 - targets).T
