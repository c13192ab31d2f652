"""Tie-aware Hamming figures: each metric's expected value over a uniformly random order of the items
at equal distance.

Hamming distances take only ``bits + 1`` values, so a query's ranking is mostly ties; once codes
collapse onto class centres a single distance can hold thousands of images of several classes. The
stable rule of ``core.metrics`` (database order) then decides P@k and the top-k vote, and on a
database stored class by class it favours whichever class comes first. The expectation below depends
on the codes alone, as "Hashing as Tie-Aware Learning to Rank" (He et al., CVPR 2018) and McSherry &
Najork (ECIR 2008) compute it: exact, in closed form, from per-distance counts.

For one query let distance ``g`` hold ``n_g`` items, ``r_g`` of them relevant, with ``N_g`` items and
``R_g`` relevant ones at smaller distances. A relevant item of group ``g`` lands at rank
``i = N_g + 1 + y``, ``y`` uniform in ``0..n_g-1``, with on average ``y (r_g-1)/(n_g-1)`` relevant
items of its group ahead of it, so

    AP = (1/R) sum_g (r_g/n_g) sum_{i=N_g+1}^{N_g+n_g} (R_g + 1 + (i-N_g-1)(r_g-1)/(n_g-1)) / i

which harmonic numbers sum in O(bits) per query. The top k holds each item of a group that ends
within k, and a share (k - N_g)/n_g of each item of the group that straddles k: that share weighs
the expected hits (P@k) and each class's expected votes (the top-k vote). Classes tied on expected
votes go to the one with the nearest member; a tie left after that scores 1/t for t tied classes.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hashseek.core.ranked_relevance import as_exclude, check_k, chunks, prepare, relevance

TIE_RULE = "expected over a random order of equal distances (tie-aware, He et al. 2018)"


def tie_aware_report(hamming_distances: npt.ArrayLike, query_labels: npt.ArrayLike, db_labels: npt.ArrayLike,
                     k_precision: int = 20, k_vote: int = 8, *, exclude: npt.ArrayLike | None = None,
                     chunk_size: int | None = None) -> dict:
    """mAP@all, P@k and top-k vote accuracy, each the expectation over random tie-breaking.

    ``exclude`` (leave-one-out) takes each query's own database position out of its ranking. A
    figure that needs more database items than there are is None; the vote needs 1-d labels.
    """
    d, q, db = prepare(hamming_distances, query_labels, db_labels)
    if not np.issubdtype(d.dtype, np.integer) or d.min() < 0:
        raise ValueError("tie-aware figures need non-negative integer (Hamming) distances")
    own = None if exclude is None else as_exclude(exclude, d.shape)
    nq, nd = d.shape
    nd_ranked = nd - int(own is not None and (own >= 0).any())
    width = int(d.max()) + 1
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, nd + 1))])
    with_precision = k_precision <= nd_ranked and check_k(k_precision, nd)
    with_vote = k_vote <= nd_ranked and check_k(k_vote, nd) and q.ndim == 1
    ap = np.zeros(nq)
    hits = np.zeros(nq)
    correct = np.zeros(nq)
    for rows in chunks(nq, nd, chunk_size):
        bins = _bins(d[rows], width, None if own is None else own[rows])
        rel = relevance(q[rows], db)
        n = _count(bins, width + 1)[:, :width]
        r = _count(bins[rel], width + 1, np.nonzero(rel)[0], len(bins))[:, :width]
        ap[rows] = _average_precision(n, r, harmonic)
        if with_precision:
            hits[rows] = (_top_share(n, k_precision) * r).sum(axis=1)
        if with_vote:
            correct[rows] = _vote_credit(bins, n, db, q[rows], width, k_vote)
    return {
        "map_all": float(ap.mean()),
        f"precision_at_{k_precision}": float(hits.sum() / (nq * k_precision)) if with_precision else None,
        f"vote_accuracy_top{k_vote}": float(correct.mean()) if with_vote else None,
        "tie_rule": TIE_RULE,
    }


def _bins(d: np.ndarray, width: int, own: np.ndarray | None) -> np.ndarray:
    """Each entry's distance, with a query's own item moved to the extra bin ``width`` (dropped later)."""
    bins = d.astype(np.int64)
    if own is not None:
        hit = np.nonzero(own >= 0)[0]
        bins[hit, own[hit]] = width
    return bins


def _count(bins: np.ndarray, width: int, rows: np.ndarray | None = None, m: int | None = None) -> np.ndarray:
    """(m, width) counts of the entries per row and distance; ``rows`` gives the row of flat entries."""
    if rows is None:
        m = len(bins)
        rows = np.repeat(np.arange(m), bins.shape[1])
        bins = bins.ravel()
    return np.bincount(rows * width + bins, minlength=m * width).reshape(m, width)


def _average_precision(n: np.ndarray, r: np.ndarray, harmonic: np.ndarray) -> np.ndarray:
    before = np.cumsum(n, axis=1) - n
    relevant_before = np.cumsum(r, axis=1) - r
    start, end = before + 1, before + n
    slope = np.divide(r - 1, n - 1, out=np.zeros(n.shape), where=n > 1)
    group = (relevant_before + 1 - start * slope) * (harmonic[end] - harmonic[start - 1]) + slope * n
    per_group = np.divide(r * group, n, out=np.zeros(n.shape), where=n > 0)
    total = r.sum(axis=1)
    return np.divide(per_group.sum(axis=1), total, out=np.zeros(len(total)), where=total > 0)


def _top_share(n: np.ndarray, k: int) -> np.ndarray:
    """(m, width): the share of each item at each distance that falls within the top k, in expectation."""
    before = np.cumsum(n, axis=1) - n
    inside = np.clip(k - before, 0, n)
    return np.divide(inside, n, out=np.zeros(n.shape), where=n > 0)


def _vote_credit(bins: np.ndarray, n: np.ndarray, db_labels: np.ndarray, truth: np.ndarray, width: int,
                 k: int) -> np.ndarray:
    """Per query, the expected correctness of the top-k vote (1, 0, or 1/t for t classes tied to the end)."""
    m = len(bins)
    n_classes = int(max(db_labels.max(), truth.max())) + 1
    share = _top_share(n, k)
    reached = np.nonzero(share > 0)
    cell = np.zeros(m * (width + 1), dtype=bool)
    cell[reached[0] * (width + 1) + reached[1]] = True
    flat = (np.arange(m)[:, None] * (width + 1) + bins).ravel()
    near = cell[flat]                                           # entries at a distance the top k reaches
    row = np.repeat(np.arange(m), bins.shape[1])[near]
    dist = bins.ravel()[near]
    label = np.broadcast_to(db_labels, bins.shape).ravel()[near]
    votes = np.bincount(row * n_classes + label, weights=share[row, dist],
                        minlength=m * n_classes).reshape(m, n_classes)
    nearest = np.full(m * n_classes, width + 1)
    np.minimum.at(nearest, row * n_classes + label, dist)
    nearest = nearest.reshape(m, n_classes)
    top = np.isclose(votes, votes.max(axis=1, keepdims=True), rtol=0, atol=1e-9) & (votes > 0)
    closest = np.where(top, nearest, width + 1)
    winners = top & (closest == closest.min(axis=1, keepdims=True))
    return winners[np.arange(m), truth] / winners.sum(axis=1)
