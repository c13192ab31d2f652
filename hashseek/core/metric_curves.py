"""Retrieval curves: precision and recall by Hamming radius (hash lookup), and precision by number of
results returned. Ties and labels as in ``hashseek.core.metrics``."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hashseek.core.ranked_relevance import (as_distances, check_k, chunks, positive_int, prepare, ranked_relevance,
                                            relevance)


def precision_recall_curve_hamming(
    hamming_distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    n_bits: int,
    *,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall), each (n_bits + 1,): hash-lookup retrieval of everything within radius r = 0..n_bits.

    Precision at r averages over the queries that retrieve at least one item within r (nan at a
    radius where none does); recall averages over the queries that have a relevant item.
    """
    d, q, db = prepare(hamming_distances, query_labels, db_labels)
    n_bits = positive_int(n_bits, "n_bits")
    width = n_bits + 1
    nq, nd = d.shape
    precision_q = np.zeros((nq, width))
    retrieved_any = np.zeros((nq, width), dtype=bool)
    recall_q = np.zeros((nq, width))
    n_relevant = np.zeros(nq, dtype=np.int64)
    for rows in chunks(nq, nd, chunk_size):
        chunk = _integral(d[rows], n_bits)
        rel = relevance(q[rows], db)
        m = chunk.shape[0]
        bins = chunk + width * np.arange(m)[:, None]
        retrieved = np.cumsum(np.bincount(bins.ravel(), minlength=m * width).reshape(m, width), axis=1)
        found = np.cumsum(np.bincount(bins[rel], minlength=m * width).reshape(m, width), axis=1)
        n_rel = found[:, -1:]
        np.divide(found, retrieved, out=precision_q[rows], where=retrieved > 0)
        np.divide(found, n_rel, out=recall_q[rows], where=n_rel > 0)
        retrieved_any[rows] = retrieved > 0
        n_relevant[rows] = n_rel[:, 0]
    n_retrieving = retrieved_any.sum(axis=0)
    precision = np.full(width, np.nan)
    np.divide(precision_q.sum(axis=0), n_retrieving, out=precision, where=n_retrieving > 0)
    valid = n_relevant > 0
    recall = recall_q[valid].mean(axis=0) if valid.any() else np.zeros(width)
    return precision, recall


def mean_precision_at_ranks(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    max_rank: int,
    *,
    chunk_size: int | None = None,
) -> np.ndarray:
    """(max_rank,) mean over queries of the precision of the top r results, r = 1..max_rank."""
    d, q, db = prepare(distances, query_labels, db_labels)
    max_rank = check_k(max_rank, d.shape[1], "max_rank")
    # Integer hit counts summed over queries: exact, so the chunk size cannot change the result.
    hit_sums = np.zeros(max_rank, dtype=np.int64)
    for _, rel, _ in ranked_relevance(d, q, db, chunk_size, max_rank):
        hit_sums += np.cumsum(rel, axis=1).sum(axis=0)
    return hit_sums / (d.shape[0] * np.arange(1, max_rank + 1))


def topk_precision_curve(
    distances: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    db_labels: npt.ArrayLike,
    ks: npt.ArrayLike,
    *,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Precision at each k in ``ks`` (the "precision vs number of returned images" curve)."""
    ks = np.asarray(ks)
    if ks.ndim != 1 or ks.size == 0 or not np.issubdtype(ks.dtype, np.integer):
        raise ValueError("ks must be a non-empty 1-d sequence of integers")
    nd = as_distances(distances).shape[1]
    for k in ks:
        check_k(int(k), nd)
    curve = mean_precision_at_ranks(distances, query_labels, db_labels, int(ks.max()), chunk_size=chunk_size)
    return curve[ks - 1]


def _integral(d: np.ndarray, n_bits: int) -> np.ndarray:
    """Hamming distances as int64 in [0, n_bits]; float ones (e.g. from (k - B B^T) / 2) must be whole."""
    out = d.astype(np.int64)
    if not np.issubdtype(d.dtype, np.integer) and not np.array_equal(out, d):
        raise ValueError("Hamming distances must be whole numbers")
    if out.min() < 0 or out.max() > n_bits:
        raise ValueError(f"Hamming distances must lie in [0, {n_bits}]")
    return out
