"""The figures of a split as a collection searches it with the search defaults, beside the field's.

The headline figures rank the whole database by Hamming distance, ties by database order, as the
literature's evaluation code does, so they compare with published tables. A collection answers
with coarse-to-fine search instead (``hashseek.search.defaults``): the Hamming candidates re-ranked
by the float features it stores, the rest in Hamming order with ties ordered by those features.
These are the figures a user of the collection gets, and they show whether the search defaults
keep what training learned (a trained model must never be undone by them).
"""
from __future__ import annotations

import numpy as np

from hashseek.core.bits import hamming_distances
from hashseek.core.metrics import retrieval_report
from hashseek.search.defaults import SEARCH_DEFAULTS, SearchDefaults
from hashseek.search.distances import pairwise_distance
from hashseek.search.engine import candidate_cut, result_order
from hashseek.train.evaluator import PRECISION_K, VOTE_K, Encoded, EvalRecord

_QUERY_CHUNK = 256   # queries whose float distances to the whole database are held at once


def with_searched(record: EvalRecord) -> EvalRecord:
    """``record`` with its figures as the collection's default search ranks them (``figures["searched"]``)."""
    record.figures["searched"] = searched_figures(record.query, record.database, record.exclude)
    return record


def searched_figures(query: Encoded, database: Encoded, exclude: np.ndarray | None = None,
                     defaults: SearchDefaults = SEARCH_DEFAULTS) -> dict:
    """mAP@all, mAP@R, P@20 and the top-8 vote of ``query`` searching ``database`` as
    ``hashseek.search.engine.rank`` does with ``defaults``, and how it ranked (``searched_positions``)."""
    candidates = candidate_count(database, exclude, defaults)
    positions = searched_positions(query, database, exclude, defaults)
    figures = retrieval_report(positions, query.labels, database.labels, PRECISION_K, VOTE_K, exclude=exclude)
    metric = defaults.rerank or defaults.tie_distance
    ranking = (f"coarse-to-fine: the {candidates} nearest codes by Hamming distance (whole tie groups) re-ranked by "
               f"{defaults.rerank} on the stored float features, the rest by Hamming distance"
               if defaults.rerank else "Hamming distance")
    return {key: figures[key] for key in ("map_all", "map_at_r", f"precision_at_{PRECISION_K}",
                                          f"vote_accuracy_top{VOTE_K}")} | {
        "ranking": f"{ranking}, ties by {metric} (hashseek.search.defaults)", "candidates": candidates}


def searched_positions(query: Encoded, database: Encoded, exclude: np.ndarray | None = None,
                       defaults: SearchDefaults = SEARCH_DEFAULTS) -> np.ndarray:
    """(nq, nd) rank of each database item in each query's search (0 first). ``exclude``: each query's own
    database row (leave-one-out), which the search leaves out before it counts candidates and which is
    ranked last here. Features are read as a collection stores them (float16)."""
    n_db = len(database.ids)
    own = np.full(len(query.ids), -1, np.int64) if exclude is None else np.asarray(exclude, np.int64)
    candidates = candidate_count(database, exclude, defaults)
    metric = defaults.rerank or defaults.tie_distance
    table = np.asarray(database.features, np.float16)
    hamming = hamming_distances(query.codes, database.codes)          # int32, as the evaluator's
    positions = np.full(hamming.shape, n_db, np.int32)
    ids = np.arange(n_db)
    for start in range(0, len(query.ids), _QUERY_CHUNK):
        rows = slice(start, start + _QUERY_CHUNK)
        distances = pairwise_distance(query.features[rows], table, metric)
        for row, (ham, dist, self_row) in enumerate(zip(hamming[rows], distances, own[rows]), start):
            kept = ids
            if self_row >= 0:   # the search leaves the query out before it counts candidates
                kept = ids[ids != self_row]
                ham, dist = ham[kept], dist[kept]
            cut = candidate_cut(ham, candidates) if defaults.rerank else None
            order = kept[result_order(ham, dist, kept, cut)]
            positions[row, order] = np.arange(len(order), dtype=np.int32)
    return positions


def candidate_count(database: Encoded, exclude: np.ndarray | None, defaults: SearchDefaults) -> int:
    """The candidates of each query's search: scaled to the library it searches, the database less the query
    itself under leave-one-out."""
    n_library = len(database.ids) - int(exclude is not None and (np.asarray(exclude) >= 0).any())
    return defaults.candidate_count(n_library, defaults.candidates)
