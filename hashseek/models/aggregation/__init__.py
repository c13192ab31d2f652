"""Aggregation of a backbone's last conv map into one float vector (the survey's CNN-retrieval family).

``create_pooling(name, channels)`` builds a torch module (N, C, h, w) -> (N, D) that exports to ONNX
beside the backbone: ``avg`` (global average, the default everywhere), ``spoc`` (sum pooling with a
centre prior), ``mac`` (max), ``gem`` (generalised mean), ``rmac`` (regional max, several scales),
``crow`` (cross-dimensional weighting) and ``netvlad`` (trainable residual aggregation).
"""
from hashseek.models.aggregation.base import POOLINGS, create_pooling, list_poolings

# Each method registers itself on import.
from hashseek.models.aggregation import crow, gem, netvlad, rmac, simple  # noqa: E402,F401

__all__ = ["POOLINGS", "create_pooling", "list_poolings"]
