"""Re-ranking metrics against values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashseek.search.distances import DISTANCES, pairwise_distance

Q = np.array([1.0, 0.0, 2.0, 0.0])
C = np.array([[1.0, 0.0, 2.0, 0.0],   # the query itself
              [3.0, 1.0, 0.0, 0.0],   # the 4th dimension is 0 in both: 0/0 must count 0 in chi2
              [0.0, 0.0, 0.0, 0.0]])

HAND = {
    # (x-y)^2/(x+y): row 1: 4/4 + 1/1 + 4/2 = 4; row 2: 1/1 + 4/2 = 3 (= sum of the query)
    "chi2": [0.0, 4.0, 3.0],
    "euclidean": [0.0, 3.0, 5 ** 0.5],           # sqrt(4 + 1 + 4), sqrt(1 + 4)
    "manhattan": [0.0, 5.0, 3.0],
    "chebyshev": [0.0, 2.0, 2.0],
    "cosine": [0.0, 1 - 3 / (5 ** 0.5 * 10 ** 0.5), 1.0],  # zero vector: orthogonal
}


@pytest.mark.parametrize("metric", sorted(HAND))
def test_hand_computed_values(metric):
    got = pairwise_distance(Q, C, metric)
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_allclose(got, HAND[metric], rtol=1e-6, atol=1e-6)


def test_every_registered_metric_is_checked_by_hand():
    assert set(DISTANCES.names()) == set(HAND)


def test_chi2_signed_input_uses_absolute_values_in_the_denominator():
    # x = -1, y = 1: (x - y)^2 / (|x| + |y|) = 4 / 2 = 2, not 4 / 0
    got = pairwise_distance(np.array([1.0, 3.0]), np.array([[-1.0, 3.0]]), "chi2")
    np.testing.assert_allclose(got, [2.0])
    assert np.isfinite(pairwise_distance(np.zeros(5), np.zeros((2, 5)), "chi2")).all()


@pytest.mark.parametrize("metric", sorted(HAND))
def test_float16_input_computes_in_float32(metric):
    rng = np.random.default_rng(0)
    q = np.abs(rng.standard_normal(1280)).astype(np.float16)
    c = np.abs(rng.standard_normal((300, 1280))).astype(np.float16)
    got = pairwise_distance(q, c, metric)
    want = pairwise_distance(q.astype(np.float64), c.astype(np.float64), metric)  # same values, upcast
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # and float32 arithmetic, not float16: a float64 reference of the same float16 values agrees
    ref = _float64_reference(q.astype(np.float64), c.astype(np.float64), metric)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-5)


def _float64_reference(q, c, metric):
    d = c - q
    if metric == "chi2":
        den = np.abs(c) + np.abs(q)
        return np.where(den > 0, d * d / np.where(den > 0, den, 1), 0).sum(1)
    if metric == "euclidean":
        return np.sqrt((d * d).sum(1))
    if metric == "manhattan":
        return np.abs(d).sum(1)
    if metric == "chebyshev":
        return np.abs(d).max(1)
    return 1 - c @ q / (np.linalg.norm(c, axis=1) * np.linalg.norm(q))


def test_batched_queries_match_single_queries_and_inputs_are_untouched():
    rng = np.random.default_rng(1)
    qs = rng.random((4, 600)).astype(np.float32)
    c = rng.random((500, 600)).astype(np.float32)  # more rows than one block of work
    c_before = c.copy()
    for metric in HAND:
        got = pairwise_distance(qs, c, metric)
        assert got.shape == (4, 500)
        np.testing.assert_allclose(got[1], _float64_reference(qs[1].astype(np.float64), c.astype(np.float64),
                                                              metric), rtol=1e-4)
        for i in range(4):
            np.testing.assert_allclose(got[i], pairwise_distance(qs[i], c, metric), rtol=1e-6)
    np.testing.assert_array_equal(c, c_before)
    np.testing.assert_allclose(pairwise_distance(torch.from_numpy(qs[0]), torch.from_numpy(c)),
                               pairwise_distance(qs[0], c))


def test_read_only_candidates_and_empty_sets():
    c = np.ones((3, 4), np.float16)
    c.flags.writeable = False
    np.testing.assert_allclose(pairwise_distance(np.ones(4), c, "manhattan"), [0, 0, 0])
    assert pairwise_distance(np.ones(4), np.empty((0, 4)), "chi2").shape == (0,)


def test_bad_input():
    with pytest.raises(ValueError, match="same d"):
        pairwise_distance(np.ones(3), np.ones((2, 4)))
    with pytest.raises(ValueError, match="same d"):
        pairwise_distance(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="real numbers"):
        pairwise_distance(np.array(["a", "b"]), np.ones((1, 2)))
    with pytest.raises(KeyError, match="unknown distance"):
        pairwise_distance(np.ones(4), np.ones((2, 4)), "hamming")


@pytest.mark.parametrize("metric", sorted(HAND))
def test_rows_read_in_place_equal_a_gathered_copy(metric):
    rng = np.random.default_rng(2)
    table = rng.standard_normal((2000, 96)).astype(np.float16)
    rows = rng.choice(2000, 300, replace=False)
    q = rng.standard_normal(96).astype(np.float32)
    got = pairwise_distance(q, table, metric, rows=rows)
    np.testing.assert_array_equal(got, pairwise_distance(q, table[rows], metric))
    np.testing.assert_allclose(got, _float64_reference(q.astype(np.float64), table[rows].astype(np.float64), metric),
                               rtol=2e-5, atol=1e-5)


def test_every_float16_value_decodes_exactly():
    # all 63,488 finite halves, subnormals and negative zero included: L1 distance to 0 is |x|
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    halves = halves[np.isfinite(halves)].reshape(-1, 1)
    got = pairwise_distance(np.zeros(1), halves, "manhattan")
    np.testing.assert_array_equal(got, np.abs(halves[:, 0].astype(np.float32)))


def test_rows_out_of_range():
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        pairwise_distance(np.ones(4), np.ones((3, 4), np.float16), rows=[0, 3])
    with pytest.raises(IndexError):
        pairwise_distance(np.ones(4), np.ones((3, 4), np.float32), rows=[-1])
