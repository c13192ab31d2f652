"""A memory bank of the training set's relaxed codes U and labels Y, and the pairwise losses that read it.

DPSH, DSH and HashNet as DeepHash-pytorch trains them (``bank=True``): every step writes the batch's
codes (detached) and labels into the rows of its dataset indices, then scores the batch against
every row seen so far. With 101 classes and batches of 64 in-batch pairs hold about 0.6 similar
partners per item; the bank holds every training image of the class.

The bank is off by default: only the batch's side of each pair moves against rows up to an epoch
stale, so the part of the codes every image shares (a linear head on frozen, non-negative pooled
maps) is pushed away from last epoch's and flips sign epoch after epoch (caltech101, gap+dpsh at
Adam 1e-4: the mean code's cosine with the previous epoch's about -0.5); at larger rates the codes
saturate into one code for every image. The reference trains at RMSprop 1e-5.

``balance=True`` weights each pair by class balance as HashNet does (|S|/|S1| similar, |S|/|S0|
dissimilar, over the pairs scored): HashNet always does; DPSH and DSH do not in their references,
and with many classes (caltech101: 1% of pairs similar) the dissimilar pairs then decide their codes
(measured in ``benchmarks/classic_losses.py``).
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


def balanced_mean(terms: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Mean over similar pairs plus mean over dissimilar pairs: each pair weighted |S|/|S1| or |S|/|S0|
    over the pairs scored, then summed over |S| (HashNet's class-balance weights)."""
    n_pairs, n_similar = s.numel(), s.sum()
    weights = torch.where(s > 0, n_pairs / n_similar.clamp(min=1), n_pairs / (n_pairs - n_similar).clamp(min=1))
    return (weights * terms).sum() / n_pairs


class BankPairLoss(HashLoss):
    """A pairwise loss between the batch and the memory bank, plus a term on the batch alone.

    Subclasses give ``pair_values(u, U)`` (an (N, M) matrix: inner products or distances),
    ``pair_terms(values, s)`` (each pair's loss from its value and {0, 1} similarity) and
    ``regulariser(u)``; the pairs' terms are averaged, or class-balanced with ``balance=True``
    (``balanced_mean``). With ``bank=True`` the loss ``needs_index``: the trainer passes ``index=``
    (each item's training-set position), and a batch without one is refused (silently scoring the
    batch alone would hide a caller that lost track of positions). Without a bank (the default,
    and another loss's term such as multitask's) the pairs are the batch's own (i < j).
    """

    def __init__(self, n_bits: int, n_classes: int | None = None, bank: bool = False, balance: bool = False):
        super().__init__(n_bits, n_classes)
        self.needs_index = bank
        self.balance = balance
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
        terms = self.pair_terms(values, s)
        return (balanced_mean(terms, s) if self.balance else terms.mean()) + self.regulariser(u)

    def pair_values(self, u: torch.Tensor, bank_codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pair_terms(self, values: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regulariser(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
