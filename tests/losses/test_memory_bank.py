"""Memory-bank losses (DPSH, DSH, HashNet): the bank writes the right rows, the pairs are the batch
against every row seen, hand-checked values, and they train a head when given dataset indices."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hashseek.losses import LOSSES, create_loss
from hashseek.losses.memory_bank import MemoryBank, balanced_mean, cross_similarity
from hashseek.models.heads import HeadOutput, create_head

BANK_LOSSES = ["dpsh", "dsh", "hashnet"]


def tanh_output(codes) -> HeadOutput:
    codes = torch.as_tensor(codes, dtype=torch.float32)
    return HeadOutput(codes, None, codes, "tanh", 0.0)


def test_registry_marks_the_bank_losses_and_only_bank_true_needs_an_index():
    assert LOSSES.names(memory_bank=True) == BANK_LOSSES
    assert all(create_loss(name, 8, 4, bank=True).needs_index for name in BANK_LOSSES)
    assert not any(create_loss(name, 8, 4).needs_index for name in [*BANK_LOSSES, "csq", "ce"])


def test_only_hashnet_asks_for_continuation():
    assert LOSSES.names(continuation=True) == ["hashnet"]


@pytest.mark.parametrize("name", ["dpsh", "dsh"])
def test_balance_weights_dpsh_and_dsh_pairs_as_hashnet_does(name):
    """Unweighted by default (their references); balance=True: mean over similar + mean over dissimilar pairs."""
    u, labels = torch.tensor([[0.5, -0.5], [1.0, 1.0], [0.5, -1.0], [-1.0, 0.2]]), torch.tensor([0, 1, 0, 1])
    plain = create_loss(name, 2, **{"eta" if name == "dpsh" else "alpha": 0.0})
    balanced = create_loss(name, 2, balance=True, **{"eta" if name == "dpsh" else "alpha": 0.0})
    i, j = torch.triu_indices(4, 4, offset=1)
    terms = plain.pair_terms(plain.pair_values(u, u)[i, j], (labels[i] == labels[j]).float())
    s = (labels[i] == labels[j]).float()                      # 2 similar pairs of 6
    assert plain(tanh_output(u), labels).item() == pytest.approx(terms.mean().item(), rel=1e-6)
    expected = terms[s > 0].mean() + terms[s == 0].mean()
    assert balanced(tanh_output(u), labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert balanced_mean(terms, s).item() == pytest.approx(expected.item(), rel=1e-6)
    assert balanced(tanh_output(u), labels).item() != pytest.approx(terms.mean().item(), rel=1e-3)


def test_bank_writes_the_rows_of_the_index_and_grows():
    bank = MemoryBank(2)
    bank.update(torch.tensor([3, 1]), torch.tensor([[1.0, -1.0], [0.5, 0.5]]), torch.tensor([7, 2]))
    assert len(bank) == 2 and bank.codes.shape == (4, 2)
    assert torch.equal(bank.seen, torch.tensor([False, True, False, True]))
    codes, labels = bank.rows()                               # rows in index order, unseen rows left out
    assert torch.equal(codes, torch.tensor([[0.5, 0.5], [1.0, -1.0]])) and torch.equal(labels, torch.tensor([2, 7]))
    bank.update(torch.tensor([1, 5]), torch.tensor([[-1.0, -1.0], [0.0, 1.0]]), torch.tensor([2, 4]))
    assert bank.codes.shape == (6, 2) and len(bank) == 3
    assert torch.equal(bank.codes[1], torch.tensor([-1.0, -1.0])) and torch.equal(bank.codes[3], torch.tensor([1.0, -1.0]))
    assert torch.equal(bank.labels[[1, 3, 5]], torch.tensor([2, 7, 4]))


def test_bank_stores_detached_codes_and_checks_its_input():
    bank = MemoryBank(2)
    u = torch.tensor([[0.2, 0.3]], requires_grad=True)
    bank.update(torch.tensor([0]), u * 2, torch.tensor([[1, 0, 1]]))      # multi-hot labels
    assert not bank.codes.requires_grad
    with pytest.raises(ValueError, match="per item"):
        bank.update(torch.tensor([1]), u.detach(), torch.tensor([1]))       # ids after multi-hot
    with pytest.raises(ValueError, match="index"):
        bank.update(torch.tensor([0, 1]), u.detach(), torch.tensor([[1, 0, 0]]))


def test_cross_similarity_ids_and_multi_hot():
    assert torch.equal(cross_similarity(torch.tensor([0, 1]), torch.tensor([1, 0, 0])),
                       torch.tensor([[0.0, 1, 1], [1, 0, 0]]))
    multi = torch.tensor([[1, 1, 0], [0, 0, 1]])
    assert torch.equal(cross_similarity(multi, torch.tensor([[0, 1, 0], [0, 0, 1]])), torch.tensor([[1.0, 0], [0, 1]]))


def test_dpsh_scores_the_batch_against_every_row_seen():
    loss = create_loss("dpsh", 2, eta=0.0, bank=True)
    loss(tanh_output([[1.0, 1.0], [-1.0, 1.0]]), torch.tensor([0, 1]), index=torch.tensor([0, 1]))
    u = torch.tensor([[0.5, -0.5]])
    value = loss(tanh_output(u), torch.tensor([1]), index=torch.tensor([2])).item()
    # bank rows: (1, 1) label 0, (-1, 1) label 1, and the item itself; theta = 0.5 <u, U_j>
    thetas, similar = [0.0, -0.5, 0.25], [0, 1, 1]
    expected = sum(math.log1p(math.exp(t)) - s * t for t, s in zip(thetas, similar)) / 3
    assert value == pytest.approx(expected, rel=1e-6)


def test_dsh_margin_is_2k_and_hashnet_weights_balance_the_bank_pairs():
    dsh = create_loss("dsh", 4, alpha=0.0, bank=True)
    dsh(tanh_output([[1.0, 1, 1, 1]]), torch.tensor([0]), index=torch.tensor([0]))
    # a dissimilar row at squared distance 4 < m = 8 costs 0.5 * (8 - 4); the item's own row costs 0
    value = dsh(tanh_output([[1.0, 1, 1, -1]]), torch.tensor([1]), index=torch.tensor([1])).item()
    assert value == pytest.approx((0.5 * (8 - 4) + 0.0) / 2)

    hashnet = create_loss("hashnet", 4, bank=True)
    hashnet(tanh_output([[1.0, 1, 1, 1], [1.0, 1, -1, -1], [-1.0, -1, -1, -1]]), torch.tensor([0, 0, 1]),
            index=torch.tensor([0, 1, 2]))
    u = torch.tensor([[1.0, 0, 0, 0]])
    value = hashnet(tanh_output(u), torch.tensor([0]), index=torch.tensor([3])).item()
    alpha = 10 / 4
    x = [alpha * 1, alpha * 1, -alpha * 1, alpha * 1]          # against rows 0, 1, 2 and itself
    s = [1, 1, 0, 1]
    nll = [math.log1p(math.exp(v)) - t * v for v, t in zip(x, s)]
    expected = sum(n for n, t in zip(nll, s) if t) / 3 + sum(n for n, t in zip(nll, s) if not t) / 1
    assert value == pytest.approx(expected, rel=1e-6)


def test_without_a_bank_the_pairs_are_the_batch_own_and_a_bank_needs_an_index():
    """The default, and another loss's term on a batch (multitask's DSH term): no bank is kept."""
    u, labels = torch.tensor([[0.5, -0.5], [1.0, 1.0], [0.5, -1.0]]), torch.tensor([0, 1, 0])
    loss = create_loss("dsh", 2)
    value = loss(tanh_output(u), labels, index=torch.arange(3))
    assert len(loss.bank) == 0
    assert value.item() == pytest.approx(create_loss("dsh", 2)(tanh_output(u), labels).item())
    with pytest.raises(ValueError, match="index"):
        create_loss("dsh", 2, bank=True)(tanh_output(u), labels)


def clustered(n: int = 96, n_classes: int = 6, dim: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    centres = torch.rand(n_classes, dim, generator=g) * 3
    return (centres[labels] + 0.3 * torch.randn(n, dim, generator=g)).clamp(min=0), labels


@pytest.mark.parametrize("name", BANK_LOSSES)
def test_bank_loss_is_finite_and_trains_a_head_on_batches_with_indices(name):
    torch.manual_seed(0)
    x, labels = clustered()
    head = create_head("gap", x.shape[1], 16)
    loss_fn = create_loss(name, 16, 6, bank=True)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))

    def epoch() -> float:
        losses = []
        for idx in order.split(16):
            loss = loss_fn(head(x[idx]), labels[idx], index=idx)
            opt.zero_grad()
            loss.backward()
            assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in head.parameters())
            opt.step()
            losses.append(loss.item())
        return sum(losses) / len(losses)

    first = epoch()
    assert len(loss_fn.bank) == len(x)
    for _ in range(15):
        last = epoch()
    assert last < 0.8 * first
    with torch.no_grad():
        bits = head(x).bits().float()
    hamming = torch.cdist(bits, bits, p=1)
    same = labels[:, None] == labels[None, :]
    assert hamming[same].mean() + 2 < hamming[~same].mean()


def test_one_hot_bank_labels_match_class_ids():
    torch.manual_seed(0)
    u, ids = torch.rand(6, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 3])
    index = torch.arange(6)
    for name in BANK_LOSSES:
        by_id = create_loss(name, 8, 4, bank=True)(tanh_output(u), ids, index=index)
        by_one_hot = create_loss(name, 8, 4, bank=True)(tanh_output(u), F.one_hot(ids, 4), index=index)
        assert by_id.item() == pytest.approx(by_one_hot.item(), rel=1e-6)
