"""Retrieval evaluation: exact metrics over distance matrices (ties broken by database order)."""
from hashseek.eval.metrics import (
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
    "confusion_matrix",
    "f1_at_k",
    "map_at_r",
    "mean_average_precision",
    "mean_precision_at_ranks",
    "precision_at_k",
    "precision_recall_curve_hamming",
    "rank_database",
    "recall_at_k",
    "relevance_matrix",
    "topk_precision_curve",
    "vote_accuracy",
    "vote_classify",
]
