"""A collection's float16 features for re-ranking: one append-only file, one row per image, memory-mapped."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from hashseek.core.errors import ReadOnlyError
from hashseek.search.storage import os_error

log = logging.getLogger(__name__)


class FeatureStore:
    """Append-only float16 rows in one file, memory-mapped for reading.

    Written with ``os.pwrite`` at the row the store counts, never through a buffer whose later
    flush could land a partial row: an append that fails (a full disk, an I/O error) cuts the
    file back to its rows before the call, and the next append writes at that row again even
    when the cut itself failed. A row is durable once ``append`` returns (fsync).
    """

    def __init__(self, path: Path, dim: int, read_only: bool = False):
        self.path, self.dim, self.read_only = path, dim, read_only
        self.row_bytes = 2 * dim
        if read_only and not path.exists():
            self._fd = None           # a collection no image was added to yet
        else:
            self._fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides
        self._rows = self.n_bytes // self.row_bytes   # whole rows; a partial one is cut or overwritten
        self._map: np.memmap | None = None

    @property
    def n_bytes(self) -> int:
        return 0 if self._fd is None else os.fstat(self._fd).st_size

    def __len__(self) -> int:
        return self._rows

    def append(self, rows: np.ndarray) -> int:
        """Write rows durably; returns the first new row number. All or nothing."""
        first = self._rows
        self._write(first, np.ascontiguousarray(rows, dtype="<f2").tobytes(), "appending features")
        self._rows += len(rows)
        return first

    def write_rows(self, at: int, rows: np.ndarray) -> None:
        """Overwrite (or extend the file with) rows starting at row ``at``: repair re-encodes lost rows."""
        self._write(at, np.ascontiguousarray(rows, dtype="<f2").tobytes(), "rewriting features")
        self._rows = max(self._rows, at + len(rows))

    def _write(self, at: int, data: bytes, doing: str) -> None:
        self._require_writable()
        self._map = None
        size, offset, view = self.n_bytes, at * self.row_bytes, memoryview(data)
        try:
            done = 0
            while done < len(view):   # a write to a nearly full disk may write part, then fail
                done += os.pwrite(self._fd, view[done:], offset + done)
            os.fsync(self._fd)
        except OSError as err:  # rows past the store's own are nobody's: cut them; rows in place stay as they were
            self._cut_back(offset if offset >= self._rows * self.row_bytes else size)
            raise (os_error(err, self.path, doing) or err) from err

    def _cut_back(self, size: int) -> None:
        """Best effort after a failed write: a row no image references is cut at the next open anyway."""
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as err:
            log.warning("%s: could not cut the failed write back (%s); it is cut at the next open", self.path, err)

    def undo_append(self, first: int) -> None:
        """Forget the rows appended from ``first`` on (their SQLite commit failed); never raises, so the
        commit's own error is the one reported. The next append writes at ``first`` again."""
        self._map = None
        self._rows = first
        self._cut_back(first * self.row_bytes)

    def truncate(self, n_rows: int) -> None:
        """Cut the file to ``n_rows`` whole rows, durably (a batch SQLite did not commit, a partial row)."""
        self._require_writable()
        self._map = None
        try:
            os.ftruncate(self._fd, n_rows * self.row_bytes)
            os.fsync(self._fd)
        except OSError as err:
            raise (os_error(err, self.path, "cutting features") or err) from err
        self._rows = n_rows

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
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _require_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.path} is open read-only")
