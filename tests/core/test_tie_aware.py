"""Tie-aware figures: the closed forms equal the average over every order of the tied items."""
from itertools import permutations

import numpy as np
import pytest

from hashseek.core.metrics import precision_at_k, retrieval_report
from hashseek.core.tie_aware import tie_aware_report


def _every_order_mean(d, q, db, k, exclude=None):
    """mAP and P@k under the stable rule, averaged over all orders of the database."""
    aps, precisions = [], []
    for order in permutations(range(d.shape[1])):
        order = np.array(order)
        own = None if exclude is None else np.argsort(order)[exclude]
        aps.append(retrieval_report(d[:, order], q, db[order], 1, 1, exclude=own)["map_all"])
        if exclude is None:
            precisions.append(precision_at_k(d[:, order], q, db[order], k))
    return np.mean(aps), (np.mean(precisions) if precisions else None)


@pytest.mark.parametrize("seed", range(4))
def test_map_and_precision_equal_the_mean_over_every_order(seed):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 3, size=(5, 6))            # three distances over six items: ties everywhere
    q, db = rng.integers(0, 2, size=5), rng.integers(0, 3, size=6)
    expected_map, expected_p = _every_order_mean(d, q, db, k=3)
    report = tie_aware_report(d, q, db, k_precision=3, k_vote=3)
    assert report["map_all"] == pytest.approx(expected_map, abs=1e-12)
    assert report["precision_at_3"] == pytest.approx(expected_p, abs=1e-12)


def test_leave_one_out_equals_the_mean_over_every_order():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=6)
    codes = rng.integers(0, 2, size=(6, 3))
    d = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    own = np.arange(6)
    expected_map, _ = _every_order_mean(d, labels, labels, k=2, exclude=own)
    assert tie_aware_report(d, labels, labels, 2, 2, exclude=own)["map_all"] == pytest.approx(expected_map, abs=1e-12)


def test_without_ties_the_figures_are_the_stable_ones():
    rng = np.random.default_rng(3)
    d = np.stack([rng.permutation(40) for _ in range(12)])   # every distance distinct in a row
    q, db = rng.integers(0, 4, size=12), rng.integers(0, 4, size=40)
    stable, tie_aware = retrieval_report(d, q, db, 5, 3), tie_aware_report(d, q, db, 5, 3)
    for key in ("map_all", "precision_at_5", "vote_accuracy_top3"):
        assert tie_aware[key] == pytest.approx(stable[key], abs=1e-12)


def test_database_order_does_not_move_the_figures():
    """The failure the tie-aware rule exists for: all items at one distance, stored class by class."""
    db = np.repeat([0, 1, 2], 10)
    q = np.array([0, 1, 2])
    d = np.zeros((3, 30), dtype=np.int64)
    stable = retrieval_report(d, q, db, 8, 8)
    assert stable["precision_at_8"] == pytest.approx(1 / 3) and stable["vote_accuracy_top8"] == pytest.approx(1 / 3)
    reports = [tie_aware_report(d[:, order], q, db[order], 8, 8)
               for order in (np.arange(30), np.random.default_rng(0).permutation(30), np.arange(30)[::-1])]
    for report in reports:
        assert report["precision_at_8"] == pytest.approx(1 / 3)
        assert report["vote_accuracy_top8"] == pytest.approx(1 / 3)    # three classes tied to the end: 1/3 each
        assert report["map_all"] == pytest.approx(reports[0]["map_all"], abs=1e-12)


def test_vote_weighs_the_straddling_group_by_its_share():
    # top 4: one class-1 item at distance 0, then 3 of the 6 items at distance 1 (2 of class 0, 4 of class 2)
    db = np.array([1, 0, 0, 2, 2, 2, 2])
    d = np.array([[0, 1, 1, 1, 1, 1, 1]])
    # expected votes: class 1: 1, class 0: 2 * 3/6 = 1, class 2: 4 * 3/6 = 2 -> class 2
    assert tie_aware_report(d, np.array([2]), db, 4, 4)["vote_accuracy_top4"] == 1.0
    # top 2: class 1 gets 1, classes 0 and 2 get 1/3 and 2/3 -> class 1
    assert tie_aware_report(d, np.array([1]), db, 2, 2)["vote_accuracy_top2"] == 1.0
    # classes 1, 0 and 2 all expect one vote in the top 3: class 1 has the nearest member
    d2, db2 = np.array([[0, 1, 1, 1, 1]]), np.array([1, 0, 0, 2, 2])
    assert tie_aware_report(d2, np.array([1]), db2, 3, 3)["vote_accuracy_top3"] == 1.0
    assert tie_aware_report(d2, np.array([0]), db2, 3, 3)["vote_accuracy_top3"] == 0.0
    # two classes tied on votes and distance: half a correct answer
    d3, db3 = np.array([[1, 1, 3, 3]]), np.array([0, 1, 2, 2])
    assert tie_aware_report(d3, np.array([0]), db3, 1, 1)["vote_accuracy_top1"] == 0.5


def test_rejects_float_distances_and_keeps_sizes_honest():
    with pytest.raises(ValueError, match="Hamming"):
        tie_aware_report(np.zeros((2, 3)), np.zeros(2, int), np.zeros(3, int))
    report = tie_aware_report(np.zeros((2, 3), dtype=np.int64), np.zeros(2, int), np.zeros(3, int), 20, 8)
    assert report["precision_at_20"] is None and report["vote_accuracy_top8"] is None
    multi_hot = tie_aware_report(np.zeros((2, 3), dtype=np.int64), np.eye(2, 4), np.eye(3, 4), 2, 2)
    assert multi_hot["vote_accuracy_top2"] is None and multi_hot["precision_at_2"] is not None
