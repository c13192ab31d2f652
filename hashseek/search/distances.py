"""Re-ranking distances: the fine stage of coarse-to-fine search compares float features.

``pairwise_distance(query, candidates, metric, rows=None)`` works on the few hundred or
thousand candidates a Hamming search returns. With ``rows`` it reads just those rows of a
large table (a collection's memory-mapped float16 store) and never copies the table.

Each metric is one numba row function registered in ``DISTANCES``: ``(x, q) -> float32``
for two float32 vectors. One compiled driver walks the candidate rows, decodes float16
to float32 into a small row buffer and calls the metric on it, so gathering, widening
and the metric's arithmetic are a single pass through memory. At 1,000 candidates of
1,280 float16 values out of a 1M-row table this takes about 0.5 ms on one core of the
dev machine, where numpy gather + torch elementwise passes took about 2 ms
(docs/measurements.md). Metric kernels run with ``error_model="numpy"`` (no Python
zero-division checks, which stop vectorisation) and reassociation allowed (vectorised
sums); features must be finite, which the collection checks on insertion.

A new metric is one ``@DISTANCES.register`` function decorated with ``@_row_metric``.
The built-in metrics run in one driver compiled with ``cache=True``: the machine code is written
once (beside this module, or under ``<hashseek cache>/numba`` when the package folder is read-only)
and later processes load it in milliseconds instead of compiling for a second; ``warm_up()`` loads
it ahead of the first query. A metric registered elsewhere compiles on its first use.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numba
import numpy as np

from hashseek.core.paths import cache_root
from hashseek.core.registry import Registry

if not os.environ.get("NUMBA_CACHE_DIR") and not os.access(Path(__file__).parent, os.W_OK):
    numba.config.CACHE_DIR = str(cache_root() / "numba")  # read at compile time, not only at import

DISTANCES: Registry = Registry("distance")

# Added to |x| + |y| so that 0/0 gives 0; it vanishes in rounding unless |x| + |y| < ~1e-31.
_TINY = np.float32(np.finfo(np.float32).tiny)
# float16 -> float32 by bit shuffling: the half's exponent and mantissa moved into a
# float32's fields, then scaled by 2^(127 - 15); exact for every finite half, subnormals too.
_HALF_SCALE = np.float32(2.0 ** 112)
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


def _row_metric(fn):
    return numba.njit(fn, fastmath=_FASTMATH, error_model="numpy", inline="always", nogil=True)


@DISTANCES.register("chi2")
@_row_metric
def chi2(x, q):
    """sum (x - y)^2 / (|x| + |y|), with 0/0 = 0: the CBIR thesis's metric.

    Features after ReLU / average pooling are non-negative, where the denominator is
    the usual x + y; |x| + |y| keeps every term non-negative and finite for signed input.
    """
    total = np.float32(0.0)
    for i in range(x.shape[0]):
        d = x[i] - q[i]
        total += d * d / (np.abs(x[i]) + np.abs(q[i]) + _TINY)
    return total


@DISTANCES.register("euclidean")
@_row_metric
def euclidean(x, q):
    """L2 from differences, not ||x||^2 - 2xy + ||y||^2, which cancels for near-duplicates."""
    total = np.float32(0.0)
    for i in range(x.shape[0]):
        d = x[i] - q[i]
        total += d * d
    return np.sqrt(total)


@DISTANCES.register("manhattan")
@_row_metric
def manhattan(x, q):
    total = np.float32(0.0)
    for i in range(x.shape[0]):
        total += np.abs(x[i] - q[i])
    return total


@DISTANCES.register("chebyshev")
@_row_metric
def chebyshev(x, q):
    largest = np.float32(0.0)
    for i in range(x.shape[0]):
        d = np.abs(x[i] - q[i])
        largest = d if d > largest else largest
    return largest


@DISTANCES.register("cosine")
@_row_metric
def cosine(x, q):
    """1 - cos; an all-zero vector is orthogonal to everything (distance 1)."""
    dot, xx, qq = np.float32(0.0), np.float32(0.0), np.float32(0.0)
    for i in range(x.shape[0]):
        dot += x[i] * q[i]
        xx += x[i] * x[i]
        qq += q[i] * q[i]
    norms = np.sqrt(xx) * np.sqrt(qq)
    return np.float32(1.0) - dot / max(norms, _TINY)


@numba.njit(inline="always", nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _widen(src, half, bits, widened, x):
    """One table row as float32 into ``x``; ``half``: the row holds float16 bits (``bits`` / ``widened``
    are one scratch buffer seen as uint32 and float32)."""
    if half:
        for i in range(x.shape[0]):
            h = np.uint32(src[i])
            bits[i] = ((h & np.uint32(0x7FFF)) << np.uint32(13)) | ((h & np.uint32(0x8000)) << np.uint32(16))
        for i in range(x.shape[0]):
            x[i] = widened[i] * _HALF_SCALE
    else:
        for i in range(x.shape[0]):
            x[i] = src[i]


@numba.njit(nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _distances(table, rows, queries, metric, half, out):
    """out[i, j] = metric(table[rows[j]] as float32, queries[i]), for any registered row metric."""
    bits = np.empty(table.shape[1], np.uint32)
    x = np.empty(table.shape[1], np.float32)
    for j in range(rows.shape[0]):
        _widen(table[rows[j]], half, bits, bits.view(np.float32), x)
        for qi in range(queries.shape[0]):
            out[qi, j] = metric(x, queries[qi])


_BUILT_IN = ("chi2", "euclidean", "manhattan", "chebyshev", "cosine")   # the branches of _built_in_distances


@numba.njit(nogil=True, error_model="numpy", fastmath=_FASTMATH, cache=True)
def _built_in_distances(table, rows, queries, metric, half, out):
    """``_distances`` for the built-in metrics, chosen by their position in ``_BUILT_IN``: a driver
    that names its metrics as globals can be cached on disk (one taking a function argument cannot)."""
    bits = np.empty(table.shape[1], np.uint32)
    x = np.empty(table.shape[1], np.float32)
    for j in range(rows.shape[0]):
        _widen(table[rows[j]], half, bits, bits.view(np.float32), x)
        for qi in range(queries.shape[0]):
            q = queries[qi]
            if metric == 0:
                out[qi, j] = chi2(x, q)
            elif metric == 1:
                out[qi, j] = euclidean(x, q)
            elif metric == 2:
                out[qi, j] = manhattan(x, q)
            elif metric == 3:
                out[qi, j] = chebyshev(x, q)
            else:
                out[qi, j] = cosine(x, q)


def _real_array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be real numbers, got {arr.dtype}")
    return arr


def pairwise_distance(query, candidates, metric: str = "chi2", rows: np.ndarray | None = None) -> np.ndarray:
    """Distances from ``query`` (d,) or (nq, d) to ``candidates`` (n, d): (n,) or (nq, n) float32.

    With ``rows``, the candidates are ``candidates[rows]``, read in place. Any real dtype
    is accepted and computed in float32 (float16 is decoded on the fly; other dtypes are
    converted once); the inputs are never modified.
    """
    fn = DISTANCES.get(metric)
    q, table = _real_array(query, "query"), _real_array(candidates, "candidates")
    if table.ndim != 2 or q.ndim not in (1, 2) or q.shape[-1] != table.shape[1]:
        raise ValueError(f"need query (d,) or (nq, d) and candidates (n, d) with the same d, "
                         f"got {q.shape} and {table.shape}")
    if rows is None:
        rows = np.arange(len(table), dtype=np.int64)
    else:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(table)):
            raise IndexError(f"rows must lie in [0, {len(table)}), got {rows.min()}..{rows.max()}")
    queries = np.ascontiguousarray(q.reshape(-1, table.shape[1]), dtype=np.float32)
    out = np.empty((len(queries), len(rows)), dtype=np.float32)
    if len(rows):
        half = table.dtype == np.float16
        if half:
            table = np.ascontiguousarray(table).view(np.uint16)
        elif table.dtype != np.float32:  # rare: widen just the rows needed
            table, rows = np.ascontiguousarray(table[rows], dtype=np.float32), np.arange(len(rows), dtype=np.int64)
        else:
            table = np.ascontiguousarray(table)
        if metric in _BUILT_IN and DISTANCES.get(metric) is _BUILT_IN_KERNELS[metric]:
            _built_in_distances(table, rows, queries, _BUILT_IN.index(metric), half, out)
        else:
            _distances(table, rows, queries, fn, half, out)
    return out[0] if q.ndim == 1 else out


def warm_up(background: bool = False) -> None:
    """Load (or, the first time on a machine, compile and cache) the built-in kernels for both storage
    dtypes, so that no query pays for it. Even loaded from the cache, numba's first call in a process
    takes ~0.5-2 s to set itself up: servers call this at start, and a one-shot search starts it in
    ``background`` while its model loads and encodes the query. Runs once per process."""
    global _WARMING
    with _WARM_LOCK:
        if _WARMING is None:
            _WARMING = threading.Thread(target=_load_kernels, name="hashseek-distances-warm-up", daemon=True)
            _WARMING.start()
    if not background:
        _WARMING.join()


def _load_kernels() -> None:
    table = np.ones((2, 4), np.float32)
    for metric in _BUILT_IN:
        pairwise_distance(table[0], table, metric)
        pairwise_distance(table[0], table.astype(np.float16), metric)


_WARM_LOCK = threading.Lock()
_WARMING: threading.Thread | None = None


_BUILT_IN_KERNELS = {name: DISTANCES.get(name) for name in _BUILT_IN}


def list_distances() -> list[str]:
    return DISTANCES.names()


__all__ = ["DISTANCES", "list_distances", "pairwise_distance", "warm_up"]
