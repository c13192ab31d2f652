"""A collection's float16 features for re-ranking: one append-only file, one row per image, memory-mapped."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class FeatureStore:
    """Append-only float16 rows in one file, memory-mapped for reading.

    A row is durable once ``append`` returns (flush + fsync); an append that fails (a full disk)
    cuts the file back, so no partial row can shift the rows of the next batch.
    """

    def __init__(self, path: Path, dim: int):
        self.path, self.dim = path, dim
        self.row_bytes = 2 * dim
        self._file = open(path, "a+b")
        self._map: np.memmap | None = None

    @property
    def n_bytes(self) -> int:
        return os.fstat(self._file.fileno()).st_size

    def __len__(self) -> int:
        return self.n_bytes // self.row_bytes

    def append(self, rows: np.ndarray) -> int:
        """Write rows durably (flush + fsync); returns the first new row number."""
        first = len(self)
        try:
            self._file.write(np.ascontiguousarray(rows, dtype="<f2").tobytes())
            self._file.flush()
            os.fsync(self._file.fileno())
        except BaseException:  # e.g. a full disk: no partial row may shift the next batch
            self.truncate(first)
            raise
        return first

    def truncate(self, n_rows: int) -> None:
        self._map = None
        self._file.truncate(n_rows * self.row_bytes)
        os.fsync(self._file.fileno())

    def cut_to(self, n_rows: int) -> int:
        """Drop rows past ``n_rows`` (a batch killed before its commit); how many were dropped."""
        extra = len(self) - n_rows
        if self.n_bytes > n_rows * self.row_bytes:
            self.truncate(n_rows)
        return max(extra, 0)

    def table(self, rows: np.ndarray) -> np.ndarray:
        """The whole store as a read-only (n, dim) float16 memory map that holds ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._map is None or len(self._map) <= rows.max(initial=-1):
            if not len(self):
                return np.empty((0, self.dim), np.float16)
            self._map = np.memmap(self.path, dtype="<f2", mode="r", shape=(len(self), self.dim))
        return self._map

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(n, dim) float16 copies of the given rows (the distances and hashers compute in float32)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.empty((0, self.dim), np.float16)
        return self.table(rows)[rows]

    def close(self) -> None:
        self._map = None
        self._file.close()
