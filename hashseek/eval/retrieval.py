"""Retrieval reports on float features or packed codes for a protocol's query/database split."""
from __future__ import annotations

import numpy as np

from hashseek.eval.metrics import map_at_r, mean_average_precision, precision_at_k, vote_accuracy


def cosine_distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """1 - cosine similarity, computed in float32."""
    q = np.asarray(queries, np.float32)
    d = np.asarray(database, np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return 1.0 - q @ d.T


def retrieval_report(distances: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray,
                     k_precision: int = 20, k_vote: int = 8) -> dict:
    """The figures every run reports: mAP@all, mAP@R, P@k and top-k vote accuracy (ties by database order)."""
    return {
        "map_all": mean_average_precision(distances, query_labels, db_labels),
        "map_at_r": map_at_r(distances, query_labels, db_labels),
        f"precision_at_{k_precision}": precision_at_k(distances, query_labels, db_labels, k_precision),
        f"vote_accuracy_top{k_vote}": vote_accuracy(distances, query_labels, db_labels, k_vote),
        "n_query": int(len(query_labels)),
        "n_database": int(len(db_labels)),
    }
