"""The tie rule and the top-k vote, shared by search and evaluation.

Every ranking is a *stable* sort of distances: items at equal distance keep database order
(the one added first wins). Hamming distances tie all the time; one fixed rule keeps every
figure reproducible.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

_CHUNK_ELEMENTS = 1 << 22


def stable_order(d: np.ndarray) -> np.ndarray:
    """Stable row argsort of a 2-d array; small non-negative ints (Hamming) are narrowed so numpy
    uses radix sort, 5-10x faster."""
    if np.issubdtype(d.dtype, np.integer) and d.size and d.min() >= 0:
        top = d.max()
        if top <= np.iinfo(np.uint8).max:
            d = d.astype(np.uint8)
        elif top <= np.iinfo(np.uint16).max:
            d = d.astype(np.uint16)
    return np.argsort(d, axis=1, kind="stable")


def vote_classify(distances, db_labels, k: int = 8, *, n_classes: int | None = None,
                  chunk_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Classify each query by majority vote of its top-k neighbours.

    Returns (predicted (nq,), class_distribution (nq, n_classes) vote fractions). A tie between
    classes goes to the tied class whose member ranks nearest. ``n_classes`` defaults to
    ``max(db_labels) + 1``.
    """
    d = np.asarray(distances)
    if d.ndim != 2 or 0 in d.shape:
        raise ValueError(f"distances must be a non-empty (nq, nd) array, got shape {d.shape}")
    nq, nd = d.shape
    labels = np.asarray(db_labels)
    if labels.shape != (nd,) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"db_labels must be {nd} non-negative integer class labels")
    if int(k) != k or not 1 <= k <= nd:
        raise ValueError(f"k must be an integer in [1, {nd}], got {k}")
    n_classes = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    if n_classes < 1 or labels.max() >= n_classes:
        raise ValueError(f"label {labels.max()} out of range for n_classes={n_classes}")
    step = max(1, _CHUNK_ELEMENTS // nd) if chunk_size is None else int(chunk_size)
    if step < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    predicted = np.empty(nq, dtype=np.int64)
    distribution = np.empty((nq, n_classes))
    for start in range(0, nq, step):
        rows = slice(start, min(start + step, nq))
        neighbours = labels[stable_order(d[rows])[:, :k]]
        m = neighbours.shape[0]
        offsets = n_classes * np.arange(m)[:, None]
        votes = np.bincount((neighbours + offsets).ravel(), minlength=m * n_classes).reshape(m, n_classes)
        winning = np.take_along_axis(votes, neighbours, axis=1) == votes.max(axis=1, keepdims=True)
        predicted[rows] = neighbours[np.arange(m), winning.argmax(axis=1)]
        distribution[rows] = votes / k
    return predicted, distribution


def vote(labels: Sequence[str | None], k: int = 8) -> tuple[str | None, dict[str, float]]:
    """Majority label of the first ``k`` labelled neighbours (ranked nearest first) and the vote shares.

    Unlabelled neighbours are passed over; a tie goes to the tied class whose member ranks nearest.
    """
    labelled = [label for label in labels if label is not None][:k]
    if not labelled:
        return None, {}
    classes = sorted(set(labelled))
    y = np.array([classes.index(label) for label in labelled])
    predicted, shares = vote_classify(np.arange(len(y))[None], y, k=len(y), n_classes=len(classes))
    order = np.argsort(-shares[0], kind="stable")
    return classes[predicted[0]], {classes[c]: float(shares[0, c]) for c in order}
