"""A memory bank of the training set's relaxed codes U and labels Y, and the pairwise losses that read it.

DPSH, DSH and HashNet as DeepHash-pytorch trains them (``bank=True``): every step writes the batch's
codes (detached) and labels into the rows of its dataset indices, then scores the batch against
every row seen so far. With 101 classes and batches of 64 in-batch pairs hold about 0.6 similar
partners per item; the bank holds every training image of the class.

The bank is off by default: only the batch's side of each pair moves, so a step that shifts every
code the same way (a linear head on frozen maps, Adam at the trainer's default 1e-3) is not
pulled back by the bank's stale rows and the codes collapse (caltech101, 48 bits: gap+dsh and
gap+hashnet reached one code for every image). The reference trains at RMSprop 1e-5; here the
bank trains at Adam 1e-4 or less (measured in ``benchmarks/classic_losses.py``).
"""
from __future__ import annotations

import torch
from torch import nn

from hashseek.losses.base import HashLoss, similarity, upper_pairs
from hashseek.models.heads.base import HeadOutput


def cross_similarity(labels: torch.Tensor, bank_labels: torch.Tensor) -> torch.Tensor:
    """(N, M) float {0, 1}: 1 where a batch item and a bank row share a label (ids or multi-hot)."""
    if labels.dim() == 1:
        return (labels[:, None] == bank_labels[None, :]).float()
    return (labels.float() @ bank_labels.float().t() > 0).float()


class MemoryBank(nn.Module):
    """Rows indexed by dataset position; grows to the largest index it is given, so the training set's
    size need not be known up front. Only rows written at least once take part in pairs."""

    def __init__(self, n_bits: int):
        super().__init__()
        self.n_bits = n_bits
        # not persistent: the bank is rebuilt within one epoch, so checkpoints need not carry it
        self.register_buffer("codes", torch.zeros(0, n_bits), persistent=False)
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("seen", torch.zeros(0, dtype=torch.bool), persistent=False)

    def __len__(self) -> int:
        return int(self.seen.sum())

    def update(self, index: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor) -> None:
        """Write the batch's detached codes and its labels into rows ``index``."""
        index = index.to(self.codes.device).long()
        if index.dim() != 1 or len(index) != len(codes) or (len(index) and int(index.min()) < 0):
            raise ValueError(f"index must be (N,) non-negative dataset positions for N={len(codes)} codes, "
                             f"got {tuple(index.shape)}")
        if len(self.codes) == 0:   # the first batch fixes the label form: ids (N,) or multi-hot (N, L)
            self.labels = torch.zeros((0, *labels.shape[1:]), dtype=labels.dtype, device=self.codes.device)
        elif labels.shape[1:] != self.labels.shape[1:]:
            raise ValueError(f"labels of shape {tuple(labels.shape[1:])} per item, the bank holds "
                             f"{tuple(self.labels.shape[1:])}")
        needed = int(index.max()) + 1 if len(index) else 0
        if needed > len(self.codes):
            extra = needed - len(self.codes)
            self.codes = torch.cat([self.codes, self.codes.new_zeros(extra, self.n_bits)])
            self.labels = torch.cat([self.labels, self.labels.new_zeros((extra, *self.labels.shape[1:]))])
            self.seen = torch.cat([self.seen, self.seen.new_zeros(extra)])
        self.codes[index] = codes.detach().to(self.codes.dtype)
        self.labels[index] = labels.to(self.labels.dtype)
        self.seen[index] = True

    def rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, Y) of every row written so far."""
        return self.codes[self.seen], self.labels[self.seen]


class BankPairLoss(HashLoss):
    """A pairwise loss between the batch and the memory bank, plus a term on the batch alone.

    Subclasses give ``pair_values(u, U)`` (an (N, M) matrix: inner products or distances),
    ``pair_loss(values, s)`` (a scalar over the pairs' values and {0, 1} similarities) and
    ``regulariser(u)``. With ``bank=True`` the loss ``needs_index``: the trainer passes ``index=``
    (each item's training-set position), and a batch without one is refused (silently scoring the
    batch alone would hide a caller that lost track of positions). Without a bank (the default,
    and another loss's term such as multitask's) the pairs are the batch's own (i < j).
    """

    def __init__(self, n_bits: int, n_classes: int | None = None, bank: bool = False):
        super().__init__(n_bits, n_classes)
        self.needs_index = bank
        self.bank = MemoryBank(n_bits)

    def compute(self, output: HeadOutput, labels: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        u = output.signed_codes()
        if self.needs_index and index is None:
            raise ValueError(f"{type(self).__name__} with bank=True scores batches against its memory bank: "
                             "pass index= (each item's position in the training set)")
        if not self.needs_index:
            values, s = upper_pairs(self.pair_values(u, u)), upper_pairs(similarity(labels))
        else:
            self.bank.update(index, u, labels)
            bank_codes, bank_labels = self.bank.rows()
            values, s = self.pair_values(u, bank_codes), cross_similarity(labels, bank_labels)
        return self.pair_loss(values, s) + self.regulariser(u)

    def pair_values(self, u: torch.Tensor, bank_codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pair_loss(self, values: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regulariser(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
