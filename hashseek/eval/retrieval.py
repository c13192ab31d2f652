"""Cosine distances for float features (the no-codes baseline); the report itself is ``hashseek.core.metrics``."""
from __future__ import annotations

import numpy as np

from hashseek.core.metrics import retrieval_report

__all__ = ["cosine_distances", "retrieval_report"]   # retrieval_report: re-exported for hashseek.cli.data


def cosine_distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """1 - cosine similarity, computed in float32."""
    q = np.asarray(queries, np.float32)
    d = np.asarray(database, np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return 1.0 - q @ d.T
