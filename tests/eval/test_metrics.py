"""Retrieval metrics: hand-computed cases, the database-order tie rule, and naive/sklearn references."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import average_precision_score

from hashseek.eval import (
    average_precision,
    confusion_matrix,
    f1_at_k,
    map_at_r,
    mean_average_precision,
    mean_precision_at_ranks,
    precision_at_k,
    precision_recall_curve_hamming,
    rank_database,
    recall_at_k,
    relevance_matrix,
    topk_precision_curve,
    vote_accuracy,
    vote_classify,
)
from hashseek.index import hamming_distances, pack_bits

# Shared hand-worked case: 2 queries, 6 database items, Hamming-like distances with ties.
DB = np.array([0, 1, 0, 2, 1, 0])
Q = np.array([0, 1])
D = np.array(
    [
        [2, 0, 1, 1, 3, 0],  # q0, label 0, relevant items 0, 2, 5 (R = 3)
        [1, 2, 1, 0, 2, 1],  # q1, label 1, relevant items 1, 4 (R = 2)
    ]
)
# q0 ranking: d=0 -> items 1, 5; d=1 -> 2, 3; d=2 -> 0; d=3 -> 4   => [1, 5, 2, 3, 0, 4]
#   relevance in rank order: [0, 1, 1, 0, 1, 0]
# q1 ranking: d=0 -> item 3; d=1 -> 0, 2, 5; d=2 -> 1, 4          => [3, 0, 2, 5, 1, 4]
#   relevance in rank order: [0, 0, 0, 0, 1, 1]
RANKING = np.array([[1, 5, 2, 3, 0, 4], [3, 0, 2, 5, 1, 4]])


def naive_ranking(row) -> list[int]:
    """The tie rule written out: sort by (distance, database index)."""
    return sorted(range(len(row)), key=lambda j: (row[j], j))


def naive_ranked_relevance(dist, q_labels, db_labels) -> list[list[bool]]:
    return [[bool(q_labels[i] == db_labels[j]) for j in naive_ranking(dist[i])] for i in range(len(dist))]


def naive_ap(rel: list[bool], topk: int) -> float:
    hits, total = 0, 0.0
    for i, r in enumerate(rel[:topk], start=1):
        if r:
            hits += 1
            total += hits / i
    return total / hits if hits else 0.0


def naive_ap_at_r(rel: list[bool]) -> float:
    n_rel = sum(rel)
    hits, total = 0, 0.0
    for i, r in enumerate(rel[:n_rel], start=1):
        if r:
            hits += 1
            total += hits / i
    return total / n_rel


def test_rank_database_is_stable():
    assert_array_equal(rank_database(D), RANKING)
    # all distances equal -> database order exactly
    assert_array_equal(rank_database(np.zeros((2, 5))), [[0, 1, 2, 3, 4]] * 2)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64, np.uint8])
def test_rank_database_same_for_every_dtype(dtype):
    rng = np.random.default_rng(0)
    d = rng.integers(0, 17, size=(5, 300))
    expected = np.array([naive_ranking(row) for row in d])
    assert_array_equal(rank_database(d.astype(dtype)), expected)


@pytest.mark.parametrize("offset", [-5, 70_000, 2**40])
def test_rank_database_wide_and_negative_ints(offset):
    # values outside the uint8/uint16 fast path must follow the same rule
    d = np.array([[3, 1, 3, 0, 1]]) + offset
    assert_array_equal(rank_database(d), [[3, 1, 4, 0, 2]])


def test_relevance_matrix_single_and_multi_hot():
    assert_array_equal(
        relevance_matrix(Q, DB),
        [[1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 0]],
    )
    db = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    q = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    # q0 shares label 0 with items 0, 2 and label 2 with item 3; q1 shares label 1 with 1, 2;
    # q2 has no labels and matches nothing
    assert_array_equal(relevance_matrix(q, db), [[1, 0, 1, 1], [0, 1, 1, 0], [0, 0, 0, 0]])


def test_relevance_matrix_rejects_mixed_labels():
    with pytest.raises(ValueError):
        relevance_matrix(Q, np.eye(6))


def test_average_precision_all_by_hand():
    # q0: hits at ranks 2, 3, 5 -> (1/2 + 2/3 + 3/5) / 3 = (53/30) / 3 = 53/90
    # q1: hits at ranks 5, 6    -> (1/5 + 2/6) / 2 = (16/30) / 2 = 4/15
    assert_allclose(average_precision(D, Q, DB), [53 / 90, 4 / 15])
    # mAP@all = (53/90 + 24/90) / 2 = 77/180
    assert mean_average_precision(D, Q, DB) == pytest.approx(77 / 180)


def test_average_precision_topk_by_hand():
    # topk=2: q0 top [0, 1] -> one hit at rank 2: (1/2) / 1 = 1/2 ; q1 top [0, 0] -> 0
    assert_allclose(average_precision(D, Q, DB, topk=2), [1 / 2, 0])
    # topk=3: q0 top [0, 1, 1] -> (1/2 + 2/3) / 2 = 7/12 (normalised by the 2 found, not R=3)
    assert_allclose(average_precision(D, Q, DB, topk=3), [7 / 12, 0])
    assert mean_average_precision(D, Q, DB, topk=3) == pytest.approx(7 / 24)
    # topk at or beyond the database size is mAP@all
    assert_array_equal(average_precision(D, Q, DB, topk=6), average_precision(D, Q, DB))
    assert_array_equal(average_precision(D, Q, DB, topk=100), average_precision(D, Q, DB))


def test_average_precision_tie_follows_database_order():
    db = np.array([1, 0])
    # both items at distance 0: item 0 (irrelevant) ranks first -> AP = (1/2)/1 = 0.5
    assert average_precision([[0, 0]], [0], db)[0] == pytest.approx(0.5)
    # same items with the database order swapped -> relevant first -> AP = 1
    assert average_precision([[0, 0]], [0], db[::-1])[0] == pytest.approx(1.0)


def test_average_precision_tie_within_ranking():
    db = np.array([0, 1, 0, 1, 0])
    d = [[3, 1, 2, 0, 1]]
    # order [3, 1, 4, 2, 0] (items 1 and 4 tie at 1, item 1 first): relevance [0, 0, 1, 1, 1]
    # AP = (1/3 + 2/4 + 3/5) / 3 = 43/90; the other tie order would give (1/2+2/4+3/5)/3 = 8/15
    assert average_precision(d, [0], db)[0] == pytest.approx(43 / 90)


def test_query_without_relevant_items_scores_zero():
    # q has class 9, absent from the database
    assert_array_equal(average_precision(D[:1], [9], DB), [0.0])
    assert_array_equal(average_precision(D[:1], [9], DB, topk=3), [0.0])


def test_average_precision_multi_hot():
    db = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    q = np.array([[1, 0, 1]])  # relevant: items 0, 2, 3
    d = [[1, 0, 2, 3]]
    # order [1, 0, 2, 3], relevance [0, 1, 1, 1] -> (1/2 + 2/3 + 3/4) / 3 = (23/12) / 3 = 23/36
    assert average_precision(d, q, db)[0] == pytest.approx(23 / 36)
    # MAP@R, R = 3: first three [0, 1, 1] -> (1/2 + 2/3) / 3 = 7/18
    assert map_at_r(d, q, db) == pytest.approx(7 / 18)


def test_map_at_r_by_hand():
    # q0, R=3: first 3 are [0, 1, 1] -> (1/2 + 2/3) / 3 = 7/18
    # q1, R=2: first 2 are [0, 0]    -> 0
    assert map_at_r(D, Q, DB) == pytest.approx((7 / 18 + 0) / 2)
    # a query with no relevant item is left out rather than scored 0
    assert map_at_r(np.vstack([D, D[:1]]), [0, 1, 9], DB) == pytest.approx(7 / 36)
    assert map_at_r(D[:1], [9], DB) == 0.0


def test_precision_recall_f1_at_k_by_hand():
    # k=2: q0 top [0, 1] -> P = 1/2, R = 1/3 ; q1 top [0, 0] -> P = 0, R = 0
    assert precision_at_k(D, Q, DB, 2) == pytest.approx(1 / 4)
    assert recall_at_k(D, Q, DB, 2) == pytest.approx(1 / 6)
    # F1 of the means: 2 * (1/4)(1/6) / (1/4 + 1/6) = (1/12) / (5/12) = 1/5
    assert f1_at_k(D, Q, DB, 2) == pytest.approx(1 / 5)
    # k=5: q0 [0,1,1,0,1] -> P = 3/5, R = 1 ; q1 [0,0,0,0,1] -> P = 1/5, R = 1/2
    assert precision_at_k(D, Q, DB, 5) == pytest.approx(2 / 5)
    assert recall_at_k(D, Q, DB, 5) == pytest.approx(3 / 4)
    assert f1_at_k(D, Q, DB, 1) == 0.0  # both top-1 results are irrelevant


def test_recall_ignores_queries_without_relevant_items():
    # third query (class 9) has R = 0 and is left out of the recall mean: (1/3 + 0) / 2
    assert recall_at_k(np.vstack([D, D[:1]]), [0, 1, 9], DB, 2) == pytest.approx(1 / 6)
    # ... but it still counts in precision: (1/2 + 0 + 0) / 3
    assert precision_at_k(np.vstack([D, D[:1]]), [0, 1, 9], DB, 2) == pytest.approx(1 / 6)


def test_precision_at_k_tie_at_the_cut():
    # items 0..3 all at distance 1; k=2 takes items 0 and 1 (database order)
    db = np.array([1, 1, 0, 0])
    assert precision_at_k([[1, 1, 1, 1]], [0], db, 2) == 0.0
    assert precision_at_k([[1, 1, 1, 1]], [0], db[::-1], 2) == 1.0


@pytest.mark.parametrize("k", [0, 7, 2.0])
def test_k_out_of_range_is_rejected(k):
    with pytest.raises(ValueError):
        precision_at_k(D, Q, DB, k)


def test_mean_precision_at_ranks_and_topk_curve_by_hand():
    # q0 hits [0,1,2,2,3,3] -> precisions [0, 1/2, 2/3, 2/4, 3/5, 3/6]
    # q1 hits [0,0,0,0,1,2] -> precisions [0, 0,   0,   0,   1/5, 2/6]
    expected = [0, 1 / 4, 1 / 3, 1 / 4, (3 / 5 + 1 / 5) / 2, (1 / 2 + 1 / 3) / 2]
    assert_allclose(mean_precision_at_ranks(D, Q, DB, 6), expected)
    assert_allclose(topk_precision_curve(D, Q, DB, [1, 3, 6]), [0, 1 / 3, 5 / 12])
    # the curve and precision_at_k agree exactly
    assert topk_precision_curve(D, Q, DB, [5])[0] == precision_at_k(D, Q, DB, 5)


def test_precision_recall_curve_hamming_by_hand():
    # q0 (relevant 0, 2, 5), distances [2, 0, 1, 1, 3, 0]:
    #   r=0: {1,5} 1 hit -> P 1/2, R 1/3 ; r=1: +{2,3} 2 hits -> P 2/4, R 2/3
    #   r=2: +{0} 3 hits -> P 3/5, R 1    ; r=3: all 6     -> P 3/6, R 1
    # q1 (relevant 1, 4), distances [1, 2, 1, 0, 2, 1]:
    #   r=0: {3} -> P 0, R 0 ; r=1: {3,0,2,5} -> P 0, R 0 ; r=2, 3: all 6, 2 hits -> P 1/3, R 1
    precision, recall = precision_recall_curve_hamming(D, Q, DB, n_bits=3)
    assert_allclose(precision, [1 / 4, 1 / 4, (3 / 5 + 1 / 3) / 2, (1 / 2 + 1 / 3) / 2])
    assert_allclose(recall, [1 / 6, 1 / 3, 1, 1])


def test_precision_recall_curve_hamming_counts_only_retrieving_queries():
    db = np.array([0, 1, 0])
    d = np.array([[0, 1, 2], [1, 1, 2]])
    # q0 (relevant 0, 2): r=0 {0} P 1 R 1/2 ; r=1 {0,1} P 1/2 R 1/2 ; r=2 all P 2/3 R 1
    # q1 (relevant 1):    r=0 nothing (left out of P, R 0) ; r=1 {0,1} P 1/2 R 1 ; r=2 P 1/3 R 1
    precision, recall = precision_recall_curve_hamming(d, [0, 1], db, n_bits=2)
    assert_allclose(precision, [1.0, 1 / 2, (2 / 3 + 1 / 3) / 2])
    assert_allclose(recall, [1 / 4, 3 / 4, 1])
    # nobody retrieves anything at r=0 -> precision is nan there
    precision, _ = precision_recall_curve_hamming(d[1:], [1], db, n_bits=2)
    assert np.isnan(precision[0]) and precision[1] == pytest.approx(1 / 2)


def test_precision_recall_curve_hamming_validates_distances():
    with pytest.raises(ValueError):
        precision_recall_curve_hamming(D, Q, DB, n_bits=2)  # distance 3 > n_bits
    with pytest.raises(ValueError):
        precision_recall_curve_hamming(D + 0.5, Q, DB, n_bits=4)
    # whole-number floats, e.g. (k - B B^T) / 2, are accepted
    assert_array_equal(
        precision_recall_curve_hamming(D.astype(np.float32), Q, DB, 3)[1],
        precision_recall_curve_hamming(D, Q, DB, 3)[1],
    )


def test_precision_recall_curve_from_packed_codes():
    rng = np.random.default_rng(1)
    n_bits = 12
    q_codes, db_codes = rng.integers(0, 2, (10, n_bits)), rng.integers(0, 2, (80, n_bits))
    q_labels, db_labels = rng.integers(0, 4, 10), rng.integers(0, 4, 80)
    d = hamming_distances(pack_bits(q_codes), pack_bits(db_codes))
    precision, recall = precision_recall_curve_hamming(d, q_labels, db_labels, n_bits)
    rel = relevance_matrix(q_labels, db_labels)
    # naive per-radius check
    for r in range(n_bits + 1):
        retrieved = d <= r
        n_ret, found = retrieved.sum(1), (retrieved & rel).sum(1)
        some = n_ret > 0
        if some.any():
            assert precision[r] == pytest.approx(np.mean(found[some] / n_ret[some]))
        assert recall[r] == pytest.approx(np.mean(found / rel.sum(1)))
    # retrieving everything: recall 1, precision = fraction of the database that is relevant
    assert recall[-1] == 1.0
    assert precision[-1] == pytest.approx(rel.mean())


def test_vote_classify_by_hand():
    db = np.array([0, 1, 1, 2, 0, 2])
    d = np.array(
        [
            [0, 1, 2, 3, 4, 5],  # top 4: items 0,1,2,3 labels [0,1,1,2] -> 1 wins with 2 votes
            [2, 3, 1, 5, 0, 6],  # top 4: items 4,2,0,1 labels [0,1,0,1] -> 0/1 tie, item 4 (class 0) nearest
            [2, 0, 1, 5, 3, 6],  # top 4: items 1,2,0,4 labels [1,1,0,0] -> 0/1 tie, item 1 (class 1) nearest
            [1, 1, 1, 1, 1, 1],  # all tied: items 0,1,2,3 by database order -> [0,1,1,2] -> 1
        ]
    )
    predicted, distribution = vote_classify(d, db, k=4)
    assert_array_equal(predicted, [1, 0, 1, 1])
    assert_allclose(distribution, [[1 / 4, 2 / 4, 1 / 4], [2 / 4, 2 / 4, 0], [2 / 4, 2 / 4, 0], [1 / 4, 2 / 4, 1 / 4]])
    assert vote_accuracy(d, [1, 1, 1, 2], db, k=4) == pytest.approx(2 / 4)
    # the class list can be wider than the labels seen
    assert vote_classify(d, db, k=4, n_classes=5)[1].shape == (4, 5)


def test_vote_classify_k1_is_nearest_neighbour():
    rng = np.random.default_rng(2)
    d = rng.integers(0, 5, (20, 30))
    db = rng.integers(0, 3, 30)
    predicted, _ = vote_classify(d, db, k=1)
    assert_array_equal(predicted, db[[naive_ranking(row)[0] for row in d]])


def test_confusion_matrix_by_hand():
    true = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 0])
    counts = [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert_array_equal(confusion_matrix(true, pred, 4, normalize=False), counts)
    # rows / totals 2, 1, 3, 0 (class 3 has no samples and stays 0)
    expected = [[1 / 2, 1 / 2, 0, 0], [0, 1, 0, 0], [1 / 3, 0, 2 / 3, 0], [0, 0, 0, 0]]
    assert_allclose(confusion_matrix(true, pred, 4), expected)
    with pytest.raises(ValueError):
        confusion_matrix(true, pred, 2)


def test_ap_all_matches_sklearn_on_tie_free_scores():
    rng = np.random.default_rng(3)
    nq, nd = 25, 300
    d = rng.random((nq, nd))
    q_labels, db_labels = rng.integers(0, 5, nq), rng.integers(0, 5, nd)
    ours = average_precision(d, q_labels, db_labels)
    rel = relevance_matrix(q_labels, db_labels)
    assert rel.any(axis=1).all()
    expected = [average_precision_score(rel[i], -d[i]) for i in range(nq)]
    assert_allclose(ours, expected, rtol=1e-12)


def test_ap_all_matches_sklearn_multi_hot():
    rng = np.random.default_rng(4)
    q = rng.random((15, 6)) < 0.3
    db = rng.random((200, 6)) < 0.3
    q[:, 0] = True  # every query has a relevant item with high probability
    d = rng.random((15, 200)).astype(np.float32)
    rel = relevance_matrix(q, db)
    assert rel.any(axis=1).all()
    expected = [average_precision_score(rel[i], -d[i]) for i in range(len(q))]
    assert_allclose(average_precision(d, q, db), expected, rtol=1e-6)


def test_metrics_match_naive_loops_with_heavy_ties():
    rng = np.random.default_rng(5)
    nq, nd = 30, 120
    d = rng.integers(0, 9, (nq, nd))  # 9 distinct values -> many ties
    q_labels, db_labels = rng.integers(0, 4, nq), rng.integers(0, 4, nd)
    q_labels[0] = 7  # one query with nothing relevant
    ranked = naive_ranked_relevance(d, q_labels, db_labels)
    for topk in (1, 5, 17, nd):
        expected = [naive_ap(rel, topk) for rel in ranked]
        assert_allclose(average_precision(d, q_labels, db_labels, topk=topk), expected, rtol=1e-12)
    with_r = [rel for rel in ranked if any(rel)]
    assert map_at_r(d, q_labels, db_labels) == pytest.approx(np.mean([naive_ap_at_r(rel) for rel in with_r]))
    for k in (1, 10, 50):
        assert precision_at_k(d, q_labels, db_labels, k) == pytest.approx(np.mean([sum(rel[:k]) / k for rel in ranked]))
        assert recall_at_k(d, q_labels, db_labels, k) == pytest.approx(
            np.mean([sum(rel[:k]) / sum(rel) for rel in with_r])
        )
    expected_curve = [np.mean([sum(rel[:r]) / r for rel in ranked]) for r in range(1, 41)]
    assert_allclose(mean_precision_at_ranks(d, q_labels, db_labels, 40), expected_curve, rtol=1e-12)


def test_chunking_gives_identical_results():
    rng = np.random.default_rng(6)
    nq, nd, n_bits = 23, 150, 16
    d = rng.integers(0, n_bits + 1, (nq, nd))
    d_float = d + rng.random((nq, nd))
    q_labels, db_labels = rng.integers(0, 5, nq), rng.integers(0, 5, nd)
    q_hot, db_hot = rng.random((nq, 5)) < 0.4, rng.random((nd, 5)) < 0.4

    def everything(chunk_size):
        return [
            average_precision(d_float, q_labels, db_labels, chunk_size=chunk_size),
            average_precision(d, q_hot, db_hot, topk=20, chunk_size=chunk_size),
            map_at_r(d, q_labels, db_labels, chunk_size=chunk_size),
            map_at_r(d_float, q_hot, db_hot, chunk_size=chunk_size),
            precision_at_k(d, q_labels, db_labels, 9, chunk_size=chunk_size),
            recall_at_k(d, q_hot, db_hot, 9, chunk_size=chunk_size),
            f1_at_k(d, q_labels, db_labels, 9, chunk_size=chunk_size),
            *precision_recall_curve_hamming(d, q_hot, db_hot, n_bits, chunk_size=chunk_size),
            topk_precision_curve(d, q_labels, db_labels, [1, 10, 100], chunk_size=chunk_size),
            mean_precision_at_ranks(d_float, q_hot, db_hot, 50, chunk_size=chunk_size),
            *vote_classify(d, db_labels, k=7, chunk_size=chunk_size),
            vote_accuracy(d, q_labels, db_labels, k=7, chunk_size=chunk_size),
        ]

    reference = everything(None)  # default: one chunk at this size
    for chunk_size in (1, 4, 22):
        for got, want in zip(everything(chunk_size), reference, strict=True):
            assert_array_equal(got, want)


def test_default_chunking_splits_large_databases(monkeypatch):
    import hashseek.core.ranked_relevance as ranked_relevance

    rng = np.random.default_rng(7)
    d = rng.integers(0, 33, (12, 400))
    q_labels, db_labels = rng.integers(0, 3, 12), rng.integers(0, 3, 400)
    whole = average_precision(d, q_labels, db_labels)
    monkeypatch.setattr(ranked_relevance, "CHUNK_ELEMENTS", 1000)  # 2 queries per chunk
    assert_array_equal(average_precision(d, q_labels, db_labels), whole)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        average_precision(D, Q, DB[:5])
    with pytest.raises(ValueError):
        average_precision(D[0], Q, DB)
    with pytest.raises(ValueError):
        average_precision(D, Q, DB, chunk_size=0)
