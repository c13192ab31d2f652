"""``hashnet``: weighted pairwise likelihood of HashNet (Cao et al. 2017, "HashNet: Deep Learning to Hash by Continuation")."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hashseek.losses import LOSSES
from hashseek.losses.memory_bank import BankPairLoss


@LOSSES.register("hashnet", memory_bank=True, continuation=True)
class HashNetLoss(BankPairLoss):
    """-log p(s_ij | u_i, U_j) with p = sigma(alpha <u_i, U_j>), alpha = 10 / k, pairs weighted by class balance.

    The weights are |S|/|S1| for similar and |S|/|S0| for dissimilar pairs over the pairs scored
    (the batch's own as in HashNet's code, or batch against bank with ``bank=True`` as in
    DeepHash-pytorch's HashNet), so the loss is the mean over similar pairs plus the mean over
    dissimilar pairs (``balanced_mean``). Written as softplus(x) - s x for stability.
    Continuation is the head's ``beta`` (``hashnet_beta_schedule``, the trainer's).
    """

    def __init__(self, n_bits: int, n_classes: int | None = None, bank: bool = False):
        super().__init__(n_bits, n_classes, bank, balance=True)
        self.alpha = 10.0 / n_bits

    def pair_values(self, u: torch.Tensor, bank_codes: torch.Tensor) -> torch.Tensor:
        return self.alpha * (u @ bank_codes.t())

    def pair_terms(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return F.softplus(x) - s * x

    def regulariser(self, u: torch.Tensor) -> torch.Tensor:
        return u.new_zeros(())


def hashnet_beta_schedule(step: int, step_size: int = 200, gamma: float = 0.005, power: float = 0.5) -> float:
    """HashNet's continuation: beta = (1 + gamma * t)^power, t = step rounded down to a multiple of step_size."""
    return (1.0 + gamma * (step // step_size * step_size)) ** power
