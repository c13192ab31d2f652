"""What a method costs besides its accuracy: parameters, bytes on disk, forward time and search time.

The search timings compare the CBIR thesis's two ways of answering a query, both through the
search engine a collection uses: a linear scan of float features (cosine to every database item,
full stable sort) against coarse-to-fine search (``search.engine.rank``: a FAISS flat Hamming
shortlist of ``candidates`` codes, then cosine re-ranking of those only).
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from hashseek.index import BinaryIndex, create_index
from hashseek.search.distances import pairwise_distance
from hashseek.search.engine import rank

if TYPE_CHECKING:
    from torch import nn

DEFAULT_CANDIDATES = 100


def parameter_count(module: "nn.Module") -> int:
    """Every parameter of the module, trainable or not."""
    return int(sum(p.numel() for p in module.parameters()))


def hasher_parameter_count(state: dict[str, np.ndarray]) -> int:
    """Numbers a fitted shallow hasher needs to encode (its ``state_dict`` minus bookkeeping entries)."""
    kept = (v for k, v in state.items() if k != "n_features_in_" and not k.endswith("history_"))
    return int(sum(np.asarray(v).size for v in kept))


def forward_ms_per_image(encode: Callable[[np.ndarray], object], input_size: int, batch_size: int,
                         repeats: int = 3, warmup: int = 1,
                         clock: Callable[[], float] = time.perf_counter) -> float:
    """Median wall time of ``encode`` on a (batch_size, 3, s, s) batch, in ms per image.

    The median of a few repeats resists the other jobs on shared cores; warm-up calls (session
    creation, ONNX export) are not timed.
    """
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"repeats and batch_size must be positive, got {repeats} and {batch_size}")
    batch = np.random.default_rng(0).standard_normal((batch_size, 3, input_size, input_size)).astype(np.float32)
    for _ in range(warmup):
        encode(batch)
    seconds = []
    for _ in range(repeats):
        start = clock()
        encode(batch)
        seconds.append(clock() - start)
    return 1000.0 * float(np.median(seconds)) / batch_size


def time_drop_ratio(t_hashed: float, t_linear: float) -> float:
    """1 - t_hashed / t_linear: the share of linear-search time that hashing saves (negative if slower)."""
    if t_linear <= 0:
        raise ValueError(f"t_linear must be positive, got {t_linear}")
    return 1.0 - t_hashed / t_linear


def linear_search(query_feature: np.ndarray, db_features: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Database indices by a float distance to one query (ties by database order): the linear baseline."""
    return np.argsort(pairwise_distance(query_feature, db_features, metric), kind="stable")


def flat_index(db_codes: np.ndarray) -> BinaryIndex:
    """The engine's default exact index over packed codes, ids = database positions."""
    index = create_index("flat", 8 * db_codes.shape[1], threads=1)
    index.add(db_codes, np.arange(len(db_codes)))
    return index


def coarse_to_fine_search(query_code: np.ndarray, query_feature: np.ndarray, index: BinaryIndex,
                          db_features: np.ndarray, candidates: int = DEFAULT_CANDIDATES,
                          metric: str = "cosine") -> np.ndarray:
    """The ``candidates`` nearest codes by Hamming distance, re-ranked by ``metric``; ties as the engine breaks them."""
    ranking = rank(index, query_code, candidates, candidates=candidates, rerank=metric, feature=query_feature,
                   features_of=lambda ids: (db_features, ids))
    return ranking.ids


def search_ms_per_query(query_features: np.ndarray, db_features: np.ndarray,
                        query_codes: np.ndarray | None = None, db_codes: np.ndarray | None = None,
                        candidates: int = DEFAULT_CANDIDATES, max_queries: int = 100) -> dict:
    """Mean ms per query of linear float search and, given codes, of coarse-to-fine search and the time drop."""
    n = min(len(query_features), max_queries)
    db_features = np.ascontiguousarray(db_features, dtype=np.float32)
    linear_search(query_features[0], db_features)  # compiles the distance kernel outside the timing
    start = time.perf_counter()
    for i in range(n):
        linear_search(query_features[i], db_features)
    linear_ms = 1000.0 * (time.perf_counter() - start) / n
    out = {"linear_ms_per_query": linear_ms, "timed_queries": n}
    if query_codes is not None and db_codes is not None:
        candidates = min(candidates, len(db_features))
        index = flat_index(db_codes)
        start = time.perf_counter()
        for i in range(n):
            coarse_to_fine_search(query_codes[i], query_features[i], index, db_features, candidates)
        hashed_ms = 1000.0 * (time.perf_counter() - start) / n
        out.update(coarse_to_fine_ms_per_query=hashed_ms, candidates=candidates,
                   time_drop_ratio=time_drop_ratio(hashed_ms, linear_ms))
    return out


def machine() -> dict:
    """The CPU and software a result was measured with (recorded beside every benchmark figure)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "gpu": None}
