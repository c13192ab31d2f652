"""Search over packed codes with float re-ranking (coarse-to-fine), and what a search returns.

Modes
-----
* Hamming k-NN (``rerank=None``): the ``k`` nearest codes.
* Hamming radius: every code within ``radius`` bits (the CBIR thesis's coarse threshold),
  nearest first, at most ``k``.
* Coarse-to-fine (``rerank=`` a distance name): the top ``candidates`` by Hamming (or the
  radius ball) re-ranked by a float distance between features (``hashseek.search.distances``).
  When ``k`` exceeds the candidates, the results continue in Hamming order. A candidate count
  that covers the whole library is a linear float search (``Ranking.linear``).

Ties
----
Hamming distances tie all the time (codes trained with class centres collapse onto a few
values), so the order inside a tie must come from the images, not from the order they were
added. Every cut by Hamming distance (the k-th result, the M-th candidate) takes the whole tie
group at the cut, and inside equal Hamming distance items are ordered by the float distance of
their features (``tie_distance``, or the re-rank distance). Re-ranked candidates are ordered by
(float distance, Hamming distance). Only exact float ties fall back to the documented stable
rule of ``hashseek.core.ranking``: insertion (= id) order. Without the query's float feature
(a search by code alone) the stable rule orders every tie.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Callable, Sequence

import numpy as np

from hashseek.core.errors import InvalidInputError
from hashseek.index.base import BinaryIndex
from hashseek.search.defaults import SEARCH_DEFAULTS
from hashseek.search.distances import pairwise_distance

FeaturesOf = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Ranking:
    """Ids in result order with their Hamming and (when a float feature was used) float distances."""

    ids: np.ndarray                  # (n,) int64
    hamming: np.ndarray              # (n,) int32
    distances: np.ndarray | None     # (n,) float32 distances of the float feature (re-rank or tie order)
    n_candidates: int                # items the coarse stage kept (whole tie groups included)
    timings: dict[str, float]        # seconds per stage
    linear: bool = False             # the re-rank covered the whole library: a linear float search


def rank(index: BinaryIndex, code: np.ndarray, k: int, *, radius: int | None = None,
         candidates: int = SEARCH_DEFAULTS.min_candidates, rerank: str | None = None, feature: np.ndarray | None = None,
         features_of: FeaturesOf | None = None, exclude: Sequence[int] | np.ndarray | None = None,
         tie_distance: str | None = None) -> Ranking:
    """Rank the index's items for one packed ``code``; see the module docstring for modes and ties.

    ``feature``/``features_of`` (ids -> ``(table, rows)``: a (N, d) feature table, float16
    welcome and read in place, and the ids' rows in it) are needed to re-rank and used to
    order Hamming ties by ``tie_distance`` (default: the re-rank distance, else ``chi2``).
    ``exclude`` ids never appear (the query itself, or a protocol's other queries). Callers with a
    library size pass ``SEARCH_DEFAULTS.candidate_count(n)`` as ``candidates``.
    """
    if k < 1 or candidates < 1:
        raise InvalidInputError(f"k and candidates must be positive, got {k} and {candidates}")
    has_feature = feature is not None and features_of is not None
    if rerank is not None and not has_feature:
        raise InvalidInputError("re-ranking needs the query's float feature (a code alone cannot be re-ranked)")
    metric = rerank or tie_distance or "chi2"
    exclude = np.unique(np.asarray([] if exclude is None else exclude, dtype=np.int64))
    n_library = len(index)
    start = perf_counter()
    if radius is None:
        wanted = max(k, candidates) if rerank is not None else k
        hamming, ids = _nearest(index, code, wanted, exclude, complete=has_feature)
        cut = candidate_cut(hamming, candidates)
    else:
        hamming, ids = index.range_search(code[None], radius)[0]
        keep = ~np.isin(ids, exclude)
        hamming, ids = hamming[keep], ids[keep]
        cut = radius
    coarse = perf_counter()
    timings = {"coarse": coarse - start}
    if not has_feature:
        return Ranking(ids[:k], hamming[:k], None, len(ids), timings)
    table, rows = features_of(ids)
    distances = pairwise_distance(feature, table, metric, rows=rows)
    order = result_order(hamming, distances, ids, None if rerank is None else cut)[:k]
    n_candidates = len(ids) if rerank is None else int((hamming <= cut).sum())
    timings["rerank" if rerank else "ties"] = perf_counter() - coarse
    linear = rerank is not None and n_candidates + len(exclude) >= n_library
    return Ranking(ids[order], hamming[order], distances[order], n_candidates, timings, linear)


def result_order(hamming: np.ndarray, distances: np.ndarray, ids: np.ndarray, cut: int | None) -> np.ndarray:
    """The order of the module docstring for items with these Hamming distances, float distances and
    ids: by (Hamming, float, id), or with a Hamming ``cut`` the candidates (Hamming <= cut) by (float,
    Hamming, id) followed by the rest by (Hamming, float, id). Evaluations apply it to whole rows."""
    if cut is None:
        return np.lexsort((ids, distances, hamming))
    outside = hamming > cut
    return np.lexsort((ids, hamming, np.where(outside, distances, -np.inf), np.where(outside, hamming, -1),
                       np.where(outside, np.inf, distances)))


def candidate_cut(hamming: np.ndarray, candidates: int) -> int:
    """The Hamming distance of the ``candidates``-th nearest item: every item within it is a candidate."""
    n = min(int(candidates), len(hamming))
    return int(np.partition(hamming, n - 1)[n - 1]) if n else -1


def _nearest(index: BinaryIndex, code: np.ndarray, wanted: int, exclude: np.ndarray,
             complete: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``wanted`` nearest codes not in ``exclude``; with ``complete`` also the rest of the tie
    group at the last distance (by a radius search when it goes on beyond what was fetched), so
    that no tie is cut by insertion order."""
    raw_hamming, raw_ids = (row[0] for row in index.search(code[None], wanted + len(exclude)))
    valid = raw_ids >= 0
    keep = valid & ~np.isin(raw_ids, exclude)
    hamming, ids = raw_hamming[keep], raw_ids[keep]
    if not complete or len(ids) < wanted:
        return hamming[:wanted], ids[:wanted]
    last = hamming[wanted - 1]
    if valid.all() and raw_hamming[-1] == last:
        hamming, ids = index.range_search(code[None], int(last))[0]
        keep = ~np.isin(ids, exclude)
        return hamming[keep], ids[keep]
    n = int(np.searchsorted(hamming, last, side="right"))
    return hamming[:n], ids[:n]


@dataclass(frozen=True)
class SearchHit:
    id: int
    name: str
    label: str | None
    hamming: int
    distance: float | None = None    # float distance: the re-rank's, or the one that ordered Hamming ties


@dataclass
class SearchResult:
    hits: list[SearchHit]
    query: dict                      # what was asked: {"image": ...}, {"id": n}, {"random": seed}, {"vector": ...};
                                     # "self_match": library ids holding the query's exact bytes
    mode: str                        # "knn", "radius" or "rerank:<distance>"
    n_candidates: int
    timings: dict[str, float] = field(default_factory=dict)   # seconds: encode, coarse, rerank/ties, total
    linear: bool = False             # the re-rank covered the whole library (a linear float search)

    @property
    def ids(self) -> list[int]:
        return [hit.id for hit in self.hits]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Classification:
    label: str | None                # the prediction of ``method``
    distribution: dict[str, float]   # the class shares of ``method``, largest first
    neighbours: SearchResult
    method: str = "vote"             # "vote" (top-k neighbours) or "classifier" (the model's softmax)
    vote: dict[str, float] = field(default_factory=dict)              # vote share per class, largest first
    classifier: dict[str, float] | None = None   # the model's softmax per class (largest first), None without one

    def to_dict(self) -> dict:
        return asdict(self)
