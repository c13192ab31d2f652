"""``dpsh``: pairwise-label likelihood of DPSH (Li et al. 2016, "Feature Learning based Deep Supervised Hashing with Pairwise Labels")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hashseek.losses import LOSSES
from hashseek.losses.base import quantization_loss
from hashseek.losses.memory_bank import BankPairLoss


@LOSSES.register("dpsh", memory_bank=True)
class DPSHLoss(BankPairLoss):
    """mean over pairs of log(1 + e^theta) - s theta, theta = 0.5 <u_i, U_j>,
    + eta * ||u - sign(u)||^2 (mean over items and bits).

    eta = 0.1 as DeepHash-pytorch's DPSH (its ``alpha``; DPSH-pytorch's lambda = 10 on sums is
    eta = 10 k / n_train here). With ``bank=True`` the pairs are the batch against every training
    item's codes, the item's own row included, as there (``memory_bank``); ``balance=True`` weights
    them by class balance as HashNet does (not in DPSH's references).
    """

    def __init__(self, n_bits: int, n_classes: int | None = None, eta: float = 0.1, bank: bool = False,
                 balance: bool = False):
        super().__init__(n_bits, n_classes, bank, balance)
        self.eta = eta

    def pair_values(self, u: torch.Tensor, bank_codes: torch.Tensor) -> torch.Tensor:
        return 0.5 * (u @ bank_codes.t())

    def pair_terms(self, theta: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return F.softplus(theta) - s * theta

    def regulariser(self, u: torch.Tensor) -> torch.Tensor:
        return self.eta * quantization_loss(u, p=2)
