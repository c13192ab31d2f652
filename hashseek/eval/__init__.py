"""Retrieval evaluation: the exact metrics (from ``hashseek.core.metrics``, ties broken by database order) and costs.

The protocol runner and report writers (``hashseek.eval.runner``, ``.report``, ``.plots``) import
torch and matplotlib, so they are imported from their modules, not from here.
"""
from hashseek.core.paths import disk_bytes
from hashseek.eval.cost import (
    coarse_to_fine_search,
    forward_ms_per_image,
    hasher_parameter_count,
    linear_search,
    parameter_count,
    search_ms_per_query,
    time_drop_ratio,
)
from hashseek.core.metrics import (
    average_precision,
    confusion_matrix,
    f1_at_k,
    map_at_r,
    mean_average_precision,
    mean_precision_at_ranks,
    precision_at_k,
    precision_recall_curve_hamming,
    rank_database,
    recall_at_k,
    relevance_matrix,
    topk_precision_curve,
    vote_accuracy,
    vote_classify,
)

__all__ = [
    "average_precision",
    "coarse_to_fine_search",
    "confusion_matrix",
    "disk_bytes",
    "f1_at_k",
    "forward_ms_per_image",
    "hasher_parameter_count",
    "linear_search",
    "map_at_r",
    "mean_average_precision",
    "mean_precision_at_ranks",
    "parameter_count",
    "precision_at_k",
    "precision_recall_curve_hamming",
    "rank_database",
    "recall_at_k",
    "relevance_matrix",
    "search_ms_per_query",
    "time_drop_ratio",
    "topk_precision_curve",
    "vote_accuracy",
    "vote_classify",
]
