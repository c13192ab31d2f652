"""Hashing losses: hand-checked values, label forms, head composition, and that they actually train."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hashseek.losses import create_loss, hashnet_beta_schedule, list_losses
from hashseek.models.heads.centres import hash_centres
from hashseek.models.heads import HeadOutput, create_head

LOSSES = ["ce", "cnnh", "csq", "dpsh", "dsh", "hashnet", "multitask", "triplet"]
PAIRWISE = ["csq", "dpsh", "dsh", "hashnet", "triplet"]      # read only the codes
K, N_CLASSES, C = 16, 8, 16


def tanh_output(codes) -> HeadOutput:
    codes = torch.as_tensor(codes, dtype=torch.float32)
    return HeadOutput(codes, None, codes, "tanh", 0.0)


def synthetic_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """64 non-negative (ReLU-like) pooled maps (N, C, 1, 1) in 8 tight clusters."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(64) % N_CLASSES
    centres = torch.rand(N_CLASSES, C, generator=g) * 3
    x = (centres[labels] + 0.3 * torch.randn(64, C, generator=g)).clamp(min=0)
    return x[:, :, None, None], labels


def test_all_families_registered():
    assert list_losses() == LOSSES
    with pytest.raises(KeyError, match="unknown loss"):
        create_loss("nope", K)


def test_hashnet_hand_computed():
    u = [[1, 1, -1, 0.5], [1, 0.5, -1, 1], [-1, 1, 0, -0.5]]
    labels = torch.tensor([0, 0, 1])
    alpha = 10 / 4
    # inner products: (0,1) = 3 similar; (0,2) = -0.25 and (1,2) = -1 dissimilar.
    # Class-balanced weights make it mean(similar nll) + mean(dissimilar nll).
    similar = math.log1p(math.exp(alpha * 3)) - alpha * 3
    dissimilar = (math.log1p(math.exp(alpha * -0.25)) + math.log1p(math.exp(alpha * -1))) / 2
    loss = create_loss("hashnet", 4)(tanh_output(u), labels)
    assert loss.item() == pytest.approx(similar + dissimilar, rel=1e-6)


def test_hashnet_is_stable_on_huge_inner_products():
    u = torch.full((2, 64), 100.0)                             # alpha * <u0, u1> = 10/64 * 64 * 1e4 = 1e5
    loss = create_loss("hashnet", 64)(tanh_output(u), torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(1e5)                   # log(1 + e^x) -> x, not inf


def test_dsh_hand_computed():
    u = [[0.5, -0.5], [1, 1], [0.5, -1]]
    labels = torch.tensor([0, 1, 0])
    m = 2 * 2
    # (0,1) dissimilar D=2.5 -> 0.5*(4-2.5); (0,2) similar D=0.25 -> 0.5*0.25; (1,2) dissimilar D=4.25 >= m -> 0
    contrastive = (0.5 * (m - 2.5) + 0.5 * 0.25 + 0.0) / 3
    regulariser = (0.5 + 0.5 + 0 + 0 + 0.5 + 0) / 6            # mean of | |u| - 1 |
    loss = create_loss("dsh", 2)(tanh_output(u), labels)
    assert loss.item() == pytest.approx(contrastive + 0.01 * regulariser, rel=1e-6)


def test_hashnet_beta_schedule_steps_every_step_size():
    assert hashnet_beta_schedule(0) == 1.0
    assert hashnet_beta_schedule(199) == 1.0
    assert hashnet_beta_schedule(200) == pytest.approx(math.sqrt(2.0))
    assert hashnet_beta_schedule(450, step_size=100, gamma=0.01, power=1.0) == pytest.approx(1 + 0.01 * 400)


@pytest.mark.parametrize("name", PAIRWISE)
def test_sigmoid_codes_are_mapped_to_signed(name):
    """A sigmoid head's c gives the same loss as a tanh head's u = 2c - 1."""
    torch.manual_seed(0)
    c = torch.rand(6, K)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = create_loss(name, K, N_CLASSES)
    sigmoid_out = HeadOutput(c, None, c, "sigmoid", 0.5)
    assert loss(sigmoid_out, labels).item() == pytest.approx(loss(tanh_output(2 * c - 1), labels).item(), rel=1e-6)


@pytest.mark.parametrize("name", PAIRWISE)
def test_one_hot_labels_match_class_ids(name):
    torch.manual_seed(0)
    u = torch.rand(6, K) * 2 - 1
    ids = torch.tensor([0, 1, 2, 0, 1, 3])
    loss = create_loss(name, K, N_CLASSES)
    one_hot = F.one_hot(ids, N_CLASSES)
    assert loss(tanh_output(u), one_hot).item() == pytest.approx(loss(tanh_output(u), ids).item(), rel=1e-6)


def test_multi_hot_items_sharing_any_label_are_similar():
    u = torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    multi_hot = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    disjoint = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    dsh = create_loss("dsh", 2)
    # identical codes cost nothing when similar, the margin when dissimilar
    assert dsh(tanh_output(u), multi_hot).item() < dsh(tanh_output(u), disjoint).item()


@pytest.mark.parametrize("name", ["ce", "multitask"])
def test_loss_needing_logits_rejects_logitless_head(name):
    head = create_head("gap", C, K)                   # no n_classes: no classifier
    x, labels = synthetic_batch()
    with pytest.raises(ValueError, match="logits"):
        create_loss(name, K, N_CLASSES)(head(x[:8]), labels[:8])


def test_bad_labels_and_csq_without_classes_raise():
    with pytest.raises(ValueError, match="labels"):
        create_loss("dsh", 2)(tanh_output([[1, 1], [1, -1]]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="at least 2"):
        create_loss("hashnet", 2)(tanh_output([[1, 1]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="n_classes"):
        create_loss("csq", K)


@pytest.mark.parametrize("mining", ["all", "hard"])
def test_triplet_zero_when_classes_are_separated_beyond_margin(mining):
    u = torch.tensor([[1.0] * 4, [1.0] * 4, [-1.0] * 4, [-1.0] * 4])
    labels = torch.tensor([0, 0, 1, 1])
    assert create_loss("triplet", 4, mining=mining)(tanh_output(u), labels).item() == 0.0
    # flipped: anchor 0's positive is 16 away, its negatives 0 and 16 away; margin 0.5 * 4 = 2
    flipped = torch.tensor([0, 1, 0, 1])
    expected = 16 - 0 + 2 if mining == "hard" else ((16 - 0 + 2) + (16 - 16 + 2)) / 2
    assert create_loss("triplet", 4, mining=mining)(tanh_output(u), flipped).item() == pytest.approx(expected)


@pytest.mark.parametrize("n_classes,k", [(8, 16), (16, 16), (32, 16), (50, 32)])
def test_csq_centres_are_far_apart(n_classes, k):
    centres = hash_centres(n_classes, k, seed=0)
    assert centres.shape == (n_classes, k) and set(centres.unique().tolist()) == {-1.0, 1.0}
    i, j = torch.triu_indices(n_classes, n_classes, offset=1)
    assert (centres[i] != centres[j]).sum(dim=1).min() >= k // 2
    assert torch.equal(centres, hash_centres(n_classes, k, seed=0))


def test_csq_centres_beyond_2k_are_seeded_random():
    a, b = hash_centres(40, 16, seed=1), hash_centres(40, 16, seed=2)
    assert torch.equal(a[:32], b[:32]) and not torch.equal(a[32:], b[32:])
    assert (a[32:] == -1).sum(dim=1).eq(8).all()               # balanced: k/2 bits at -1


def test_csq_centres_saved_and_multi_hot_targets():
    loss = create_loss("csq", K, N_CLASSES)
    assert torch.equal(loss.state_dict()["centres"], loss.centres)
    one_hot = F.one_hot(torch.tensor([3, 5]), N_CLASSES)
    assert torch.equal(loss.item_centres(one_hot), loss.centres[[3, 5]])
    both = loss.item_centres(torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0]]))[0]
    summed = loss.centres[0] + loss.centres[1]
    assert torch.equal(both[summed != 0], summed.sign()[summed != 0])
    assert torch.equal(both[summed == 0], loss.tie_centre[summed == 0])


# loss -> (head, head kwargs) it trains in the decreasing test; "latent+hashnet" is a sigmoid head with a pairwise loss.
TRAINING = {
    "hashnet": ("gap", {}),
    "dpsh": ("gap", {}),
    "dsh": ("gap", {}),
    "triplet": ("gap", {}),
    "csq": ("gap", {}),
    "multitask": ("spp_pmt", {"hidden": 32}),
    "ce": ("latent", {}),
    "latent+hashnet": ("latent", {}),
}


@pytest.mark.parametrize("case", list(TRAINING))
def test_loss_trains_a_small_head(case):
    head_name, head_kw = TRAINING[case]
    loss_name = case.split("+")[-1]
    torch.manual_seed(0)
    x, labels = synthetic_batch()
    head = create_head(head_name, C, K, N_CLASSES, **head_kw)
    loss_fn = create_loss(loss_name, K, N_CLASSES)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)

    first = loss_fn(head(x), labels)
    first.backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert torch.isfinite(first) and grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    opt.zero_grad()
    for _ in range(100):
        opt.zero_grad()
        loss_fn(head(x), labels).backward()
        opt.step()
    with torch.no_grad():
        out = head(x)
        last = loss_fn(out, labels)
    assert last < 0.6 * first.item()

    # the codes it learnt retrieve: same-class items are closer in Hamming distance
    bits = out.bits().float()
    hamming = torch.cdist(bits, bits, p=1)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    assert hamming[same & off_diagonal].mean() + 2 < hamming[~same].mean()
