"""Search modes over packed codes, with float re-ranking (coarse-to-fine), and the top-k vote.

Modes
-----
* Hamming k-NN: the index's ``k`` nearest codes.
* Hamming radius: every code within ``radius`` bits (the CBIR thesis's coarse threshold),
  nearest first, at most ``k``.
* Coarse-to-fine (``rerank=`` a distance name): the candidates are the radius ball, or the
  top ``candidates`` by Hamming, re-ranked by a float distance between features
  (``chi2`` is the thesis's choice; see ``hashseek.search.distances``).

Tie rule
--------
Hamming results follow the index: (Hamming distance, insertion order). Re-ranked results
are ordered by (float distance, Hamming distance, insertion order). A collection's ids grow
with insertion, so insertion order is id order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Callable, Sequence

import numpy as np

from hashseek.index.base import BinaryIndex
from hashseek.search.distances import pairwise_distance

DEFAULT_CANDIDATES = 1000


@dataclass
class Ranking:
    """Ids in result order with their Hamming and (when re-ranked) float distances."""

    ids: np.ndarray                  # (n,) int64
    hamming: np.ndarray              # (n,) int32
    distances: np.ndarray | None     # (n,) float32 re-rank distances
    n_candidates: int                # items the coarse stage kept (before the cut to k)
    timings: dict[str, float]        # seconds per stage


def rank(index: BinaryIndex, code: np.ndarray, k: int, *, radius: int | None = None,
         candidates: int = DEFAULT_CANDIDATES, rerank: str | None = None, feature: np.ndarray | None = None,
         features_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
         exclude: Sequence[int] | np.ndarray | None = None) -> Ranking:
    """Rank the index's items for one packed ``code``; see the module docstring for modes and ties.

    Re-ranking needs the query's ``feature`` and ``features_of``: ids -> ``(table, rows)``, a
    (N, d) feature table (float16 welcome, a memory map is read in place) and the ids' rows in it.
    ``exclude`` ids never appear (the query itself, or a protocol's other queries).
    """
    if k < 1 or candidates < 1:
        raise ValueError(f"k and candidates must be positive, got {k} and {candidates}")
    if rerank is not None and (feature is None or features_of is None):
        raise ValueError("re-ranking needs the query's float feature (a code alone cannot be re-ranked)")
    exclude = np.unique(np.asarray([] if exclude is None else exclude, dtype=np.int64))
    wanted = k if rerank is None else candidates
    start = perf_counter()
    if radius is None:
        hamming, ids = (row[0] for row in index.search(code[None], wanted + len(exclude)))
        keep = (ids >= 0) & ~np.isin(ids, exclude)
        hamming, ids = hamming[keep][:wanted], ids[keep][:wanted]
    else:
        hamming, ids = index.range_search(code[None], radius)[0]
        keep = ~np.isin(ids, exclude)
        hamming, ids = hamming[keep], ids[keep]
    coarse = perf_counter()
    timings = {"coarse": coarse - start}
    if rerank is None:
        return Ranking(ids[:k], hamming[:k], None, len(ids), timings)
    table, rows = features_of(ids)
    distances = pairwise_distance(feature, table, rerank, rows=rows)
    order = np.lexsort((hamming, distances))[:k]  # stable: equal keys keep the index's order
    timings["rerank"] = perf_counter() - coarse
    return Ranking(ids[order], hamming[order], distances[order], len(ids), timings)


@dataclass(frozen=True)
class SearchHit:
    id: int
    name: str
    label: str | None
    hamming: int
    distance: float | None = None    # the re-rank distance, None for pure Hamming search


@dataclass
class SearchResult:
    hits: list[SearchHit]
    query: dict                      # what was asked: {"image": ...}, {"id": n}, {"random": seed}, {"vector": ...}
    mode: str                        # "knn", "radius" or "rerank:<distance>"
    n_candidates: int
    timings: dict[str, float] = field(default_factory=dict)   # seconds: encode, coarse, rerank, total

    @property
    def ids(self) -> list[int]:
        return [hit.id for hit in self.hits]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Classification:
    label: str | None
    distribution: dict[str, float]   # vote share per class, largest first
    neighbours: SearchResult

    def to_dict(self) -> dict:
        return asdict(self)
