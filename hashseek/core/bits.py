"""Codes travel packed: k bits -> ceil(k/8) uint8 bytes per item, most significant bit first."""
from __future__ import annotations

import numpy as np


def binarize(values: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Relaxed outputs -> {0,1} bits: 1 where ``values >= threshold`` (0 for tanh/sign, 0.5 for sigmoid)."""
    return (np.asarray(values) >= threshold).astype(np.uint8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(n, k) array of {0,1} (or booleans) -> (n, ceil(k/8)) uint8, zero-padded at the end."""
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise ValueError(f"expected a 2-d array of bits, got shape {bits.shape}")
    return np.packbits(bits.astype(bool), axis=1)


def unpack_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """(n, n_bytes) uint8 -> (n, n_bits) uint8 in {0,1}."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    return np.unpackbits(codes, axis=1, count=n_bits)


def hamming_distances(query_codes: np.ndarray, db_codes: np.ndarray) -> np.ndarray:
    """Exact (nq, nd) Hamming distances between packed codes (numpy XOR + popcount reference)."""
    q = np.ascontiguousarray(query_codes, dtype=np.uint8)
    d = np.ascontiguousarray(db_codes, dtype=np.uint8)
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"code lengths differ: {q.shape[1]} vs {d.shape[1]} bytes")
    out = np.empty((q.shape[0], d.shape[0]), dtype=np.int32)
    for i in range(q.shape[0]):
        out[i] = np.bitwise_count(np.bitwise_xor(d, q[i])).sum(axis=1, dtype=np.int32)
    return out
