"""Exact retrieval metrics as the deep-hashing literature computes them.

Tie rule, used by every function here: a query's ranking is a *stable* sort of its row of
``distances``, so items at equal distance keep database order (lower database index first).
Hamming distances tie all the time; a fixed rule keeps every number reproducible. The same figures
free of any order, expected over random tie-breaking, are ``core.tie_aware``'s.

Labels: 1-d integer labels are relevant when equal; 2-d multi-hot labels ``(nq, c)`` and
``(nd, c)`` are relevant when they share at least one label (NUS-WIDE, MS-COCO).

Queries with no relevant database item score AP 0 and still count in mAP (as the DPSH and
HashNet evaluation code does); recall and MAP@R are undefined for them, so those average over
the queries that have at least one relevant item.

Leave-one-out (a collection searched by its own images): ``exclude`` gives, per query, the
database position of the query itself (-1 where it is not in the database); that item counts
as not relevant and :func:`retrieval_report` ranks it last, so each query is scored against
the rest of the database.

Work is done over chunks of ``chunk_size`` queries (``core.ranked_relevance``); results are
identical for every chunk size. The curves (precision-recall by Hamming radius, precision by
number of results) are in ``core.metric_curves`` and importable from here too.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hashseek.core.metric_curves import mean_precision_at_ranks, precision_recall_curve_hamming, topk_precision_curve
from hashseek.core.ranked_relevance import (as_distances, as_exclude, as_labels, hits_at_k, mean_recall,
                                            positive_int, precision_sum, prepare, ranked_relevance, relevance)
from hashseek.core.ranking import stable_order, vote_classify

__all__ = ["average_precision", "confusion_matrix", "f1_at_k", "map_at_r", "mean_average_precision",
           "mean_precision_at_ranks", "precision_at_k", "precision_recall_curve_hamming", "rank_database",
           "recall_at_k", "relevance_matrix", "retrieval_report", "topk_precision_curve", "vote_accuracy",
           "vote_classify"]


def retrieval_report(distances: npt.ArrayLike, query_labels: npt.ArrayLike, db_labels: npt.ArrayLike,
                     k_precision: int = 20, k_vote: int = 8, *, exclude: npt.ArrayLike | None = None) -> dict:
    """The figures every run reports: mAP@all, mAP@R, P@k and top-k vote accuracy (ties by database order).

    With ``exclude`` (leave-one-out) each query's own item is ranked last and not relevant. A
    figure that needs more database items than there are (P@20 on 15 images) is None.
    """
    d = as_distances(distances)
    nd = d.shape[1]
    if exclude is not None:
        own = as_exclude(exclude, d.shape)
        d = d.astype(np.result_type(d.dtype, np.int32), copy=True)
        hit = np.nonzero(own >= 0)[0]
        d[hit, own[hit]] = d.max() + 1
        nd -= int((own >= 0).any())
    return {
        "map_all": mean_average_precision(d, query_labels, db_labels, exclude=exclude),
        "map_at_r": map_at_r(d, query_labels, db_labels, exclude=exclude),
        f"precision_at_{k_precision}": (precision_at_k(d, query_labels, db_labels, k_precision)
                                        if k_precision <= nd else None),
        f"vote_accuracy_top{k_vote}": vote_accuracy(d, query_labels, db_labels, k_vote) if k_vote <= nd else None,
        "n_query": int(d.shape[0]),
        "n_database": int(nd),
    }


def rank_database(distances: npt.ArrayLike) -> np.ndarray:
    """(nq, nd) database indices, nearest first; ties keep database order."""
    return stable_order(as_distances(distances))


def relevance_matrix(query_labels: npt.ArrayLike, db_labels: npt.ArrayLike) -> np.ndarray:
    """(nq, nd) bool: same class (1-d labels) or at least one shared label (2-d multi-hot)."""
    q, db = as_labels(query_labels, db_labels)
    return relevance(q, db)


def average_precision(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    topk: int | None = None,
    *,
    chunk_size: int | None = None,
    exclude: npt.ArrayLike | None = None,
) -> np.ndarray:
    """(nq,) AP per query: mean of P(i) over the relevant positions i of the first ``topk`` results.

    The mean is over the relevant items retrieved within ``topk`` (DPSH/HashNet convention), so
    a query with none scores 0. ``topk=None`` (or ``topk >= nd``) ranks the whole database and
    gives the usual AP, normalised by all relevant items.
    """
    d, q, db = prepare(distances, query_labels, db_labels)
    nd = d.shape[1]
    depth = nd if topk is None else min(positive_int(topk, "topk"), nd)
    ap = np.zeros(d.shape[0])
    for rows, rel, _ in ranked_relevance(d, q, db, chunk_size, depth, exclude):
        found = rel.sum(axis=1)
        total = precision_sum(rel)
        ap[rows] = np.divide(total, found, out=np.zeros(len(found)), where=found > 0)
    return ap


def mean_average_precision(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    topk: int | None = None,
    *,
    chunk_size: int | None = None,
    exclude: npt.ArrayLike | None = None,
) -> float:
    """mAP@topk (mAP@all when ``topk`` is None): the mean of :func:`average_precision`."""
    return float(average_precision(distances, query_labels, db_labels, topk, chunk_size=chunk_size,
                                   exclude=exclude).mean())


def map_at_r(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    *,
    chunk_size: int | None = None,
    exclude: npt.ArrayLike | None = None,
) -> float:
    """MAP@R (Musgrave et al. 2020): AP@R = (1/R) sum_{i<=R} P(i) rel(i), R = relevant items of the query.

    It scores both how many relevant items fill the first R places and their order there.
    Queries with R = 0 are left out (as in pytorch-metric-learning); 0.0 if none has R > 0.
    """
    d, q, db = prepare(distances, query_labels, db_labels)
    scores = np.zeros(d.shape[0])
    n_relevant = np.zeros(d.shape[0], dtype=np.int64)
    for rows, rel, n_rel in ranked_relevance(d, q, db, chunk_size, d.shape[1], exclude):
        total = precision_sum(rel, n_rel)
        scores[rows] = np.divide(total, n_rel, out=np.zeros(len(n_rel)), where=n_rel > 0)
        n_relevant[rows] = n_rel
    valid = n_relevant > 0
    return float(scores[valid].mean()) if valid.any() else 0.0


def precision_at_k(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    k: int,
    *,
    chunk_size: int | None = None,
) -> float:
    """Mean over queries of (relevant items in the top k) / k."""
    hits, _ = hits_at_k(distances, query_labels, db_labels, k, chunk_size)
    return float(hits.sum() / (len(hits) * k))


def recall_at_k(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    k: int,
    *,
    chunk_size: int | None = None,
) -> float:
    """Mean over queries with a relevant item of (relevant in the top k) / (relevant in the database)."""
    hits, n_rel = hits_at_k(distances, query_labels, db_labels, k, chunk_size)
    return mean_recall(hits, n_rel)


def f1_at_k(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    k: int,
    *,
    chunk_size: int | None = None,
) -> float:
    """Harmonic mean of :func:`precision_at_k` and :func:`recall_at_k` (0 when both are 0)."""
    hits, n_rel = hits_at_k(distances, query_labels, db_labels, k, chunk_size)
    precision = hits.sum() / (len(hits) * k)
    recall = mean_recall(hits, n_rel)
    total = precision + recall
    return float(2 * precision * recall / total) if total > 0 else 0.0


def vote_accuracy(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    k: int = 8,
    *,
    chunk_size: int | None = None,
) -> float:
    """Fraction of queries whose :func:`vote_classify` prediction equals their label."""
    predicted, _ = vote_classify(distances, db_labels, k, chunk_size=chunk_size)
    truth = np.asarray(query_labels)
    if truth.shape != predicted.shape:
        raise ValueError(f"query_labels must have shape {predicted.shape}, got {truth.shape}")
    return float((predicted == truth).mean())


def confusion_matrix(
    true: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int, normalize: bool = True
) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class.

    With ``normalize`` each row is divided by its total, so it reads as per-class rates; rows of
    classes with no samples stay 0.
    """
    t, p = np.asarray(true), np.asarray(pred)
    if t.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"true and pred must be 1-d of equal length, got {t.shape} and {p.shape}")
    for name, values in (("true", t), ("pred", p)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} labels must lie in [0, {n_classes})")
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    if not normalize:
        return counts
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
