"""Brute-force numpy reference: XOR + ``np.bitwise_count``, no FAISS, obviously correct."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hashseek.index.base import INDEXES, MISSING_DISTANCE, BinaryIndex


@INDEXES.register("numpy")
class NumpyIndex(BinaryIndex):
    """Exact search by scanning every code; the yardstick the FAISS backends are tested against."""

    kind = "numpy"

    def __init__(self, n_bits: int):
        super().__init__(n_bits)
        self._codes = np.empty((0, self.storage_bytes), dtype=np.uint8)
        self._ids = np.empty(0, dtype=np.int64)
        # Every fast width is a multiple of 4 bytes: popcount whole words, not bytes.
        self._word = np.uint64 if self.storage_bytes % 8 == 0 else np.uint32

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def _add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        self._codes = np.concatenate([self._codes, codes])
        self._ids = np.concatenate([self._ids, ids])

    def _remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self._ids, ids)
        self._codes, self._ids = self._codes[keep], self._ids[keep]

    def _distances(self, query: np.ndarray) -> np.ndarray:
        """(n,) Hamming distances from one padded query to every stored code."""
        words = self._codes.view(self._word)
        q = query.view(self._word)
        if words.shape[1] == 1:
            return np.bitwise_count(words[:, 0] ^ q[0])
        return np.bitwise_count(words ^ q).sum(axis=1, dtype=np.int32)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances = np.full((len(queries), k), MISSING_DISTANCE, dtype=np.int32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        max_d = 8 * self.storage_bytes
        for i, query in enumerate(queries):
            dist = self._distances(query)
            # Smallest distance t with at least k items at <= t; only those can make the top k.
            cumulative = np.cumsum(np.bincount(dist, minlength=max_d + 1))
            threshold = min(int(np.searchsorted(cumulative, k)), max_d)
            candidates = np.flatnonzero(dist <= threshold)  # ascending = insertion order
            top = candidates[np.argsort(dist[candidates], kind="stable")[:k]]
            distances[i, :len(top)] = dist[top]
            ids[i, :len(top)] = self._ids[top]
        return distances, ids

    def _range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for query in queries:
            dist = self._distances(query)
            hits = np.flatnonzero(dist <= radius)
            hits = hits[np.argsort(dist[hits], kind="stable")]
            out.append((dist[hits].astype(np.int32), self._ids[hits]))
        return out

    def _save(self, path: Path) -> None:
        with open(path, "wb") as f:  # a file object: np.savez would otherwise append ".npz"
            np.savez(f, codes=self._codes, ids=self._ids)

    def _load(self, path: Path, meta: dict[str, Any]) -> None:
        with np.load(path) as data:
            self._codes, self._ids = data["codes"], data["ids"]
