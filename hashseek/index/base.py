"""What every binary code index promises, so a distributed engine can take FAISS's place.

Codes arrive packed (``hashseek.core.bits``): ``ceil(n_bits/8)`` uint8 bytes per item,
most significant bit first. Each index stores them zero-padded to a *fast width*
(``storage_bytes``): FAISS has specialised Hamming kernels for 4, 8, 16, 20, 32 and 64
bytes and is several times slower in between (48 bits is ~4x slower than 64). Zero
padding, and zeroing the unused bits of a partial last byte, leave every Hamming
distance unchanged, so the caller never sees it.

Tie rule
--------
Results are ordered by (Hamming distance, insertion order of the item). At the k-th
place, among the items tied at the boundary distance, the earliest inserted win. An
item removed and added again counts as inserted at its new ``add``. The rule holds
exactly for the exact backends (``flat``, ``numpy``); the approximate ones apply it
among the items they examined.

Ids are non-negative int64, unique within an index; -1 marks an empty result slot,
whose distance is ``MISSING_DISTANCE``.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import hashseek
from hashseek.core.errors import InvalidInputError
from hashseek.core.registry import Registry

MISSING_DISTANCE = int(np.iinfo(np.int32).max)
FORMAT_VERSION = 1
_FAST_WIDTHS = (4, 8, 16, 20, 32, 64)


def storage_bytes(n_bytes: int) -> int:
    """Smallest fast width (bytes) holding ``n_bytes``: 4, 8, 16, 20, 32, 64, then multiples of 8."""
    for width in _FAST_WIDTHS:
        if n_bytes <= width:
            return width
    return -(-n_bytes // 8) * 8


def sidecar_path(path: str | Path) -> Path:
    """The JSON file saved beside an index: kind, n_bits and how the index was made."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        raise FileNotFoundError(f"{side} not found: {path} was not saved by a hashseek index")
    meta = json.loads(side.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{side}: unsupported index format {meta.get('format')!r}")
    return meta


class BinaryIndex(ABC):
    """Add, remove and search packed binary codes under external int64 ids.

    Subclasses implement the underscored hooks; they receive codes already validated
    and padded to ``storage_bytes`` and ids already checked for duplicates.
    """

    kind: ClassVar[str] = ""
    exact: ClassVar[bool] = True  # False where search may miss true neighbours (hash, multihash, ivf)
    is_remote: ClassVar[bool] = False       # codes live on a server (Milvus): created with ``if_exists``
    needs_training: ClassVar[bool] = False  # learns its structure from the codes it first gets (IVF)
    threaded: ClassVar[bool] = False        # takes ``threads=`` for its scans (FAISS)

    def __init__(self, n_bits: int):
        if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)) or not 8 <= n_bits <= 1024:
            raise ValueError(f"n_bits must be an integer in [8, 1024], got {n_bits!r}")
        self._n_bits = int(n_bits)
        self.n_bytes = -(-self._n_bits // 8)
        self.storage_bytes = storage_bytes(self.n_bytes)
        # Sorted copy of the stored ids: duplicate checks and removals in O(log n) per id.
        self._sorted_ids = np.empty(0, dtype=np.int64)

    # ----------------------------------------------------------------- public API
    @property
    def n_bits(self) -> int:
        return self._n_bits

    def __len__(self) -> int:
        return len(self._sorted_ids)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_bits={self.n_bits}, items={len(self)})"

    @property
    def is_trained(self) -> bool:
        """False while an index that ``needs_training`` has not seen its first codes."""
        return True

    @classmethod
    def check_options(cls, n_bits: int, path: str | Path, options: dict[str, Any] | None) -> dict[str, Any]:
        """The options to store for an index of this kind belonging to the directory ``path``, checked
        without touching any server: unknown or invalid options raise ``InvalidInputError``.
        Local indexes are checked by building an empty one in memory."""
        options = dict(options or {})
        try:
            cls(n_bits, **options).close()
        except TypeError as err:
            raise InvalidInputError(f"index {cls.kind!r}: {err}") from None
        except ValueError as err:
            raise InvalidInputError(f"index {cls.kind!r}: {err}") from None
        return options

    def close(self) -> None:
        """Release what the index holds outside this process (a server connection); local ones hold nothing."""

    def add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        """Store ``codes`` (n, n_bytes) uint8 under ``ids`` (n,) int64, which must be new."""
        padded = self._prepare_codes(codes, "codes")
        ids = self._check_new_ids(ids, len(padded))
        if len(ids):
            self._add(padded, ids)
            new_sorted = np.sort(ids)
            self._sorted_ids = np.insert(self._sorted_ids,
                                         np.searchsorted(self._sorted_ids, new_sorted), new_sorted)

    def remove(self, ids: np.ndarray) -> int:
        """Delete the given ids; unknown ids are ignored. Returns how many were removed."""
        ids = np.unique(_as_id_array(ids))
        pos = np.searchsorted(self._sorted_ids, ids)
        pos[pos == len(self._sorted_ids)] = 0
        present = (self._sorted_ids[pos] == ids) if len(self._sorted_ids) else np.zeros(len(ids), bool)
        if not present.any():
            return 0
        self._remove(ids[present])
        self._sorted_ids = np.delete(self._sorted_ids, pos[present])
        return int(present.sum())

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest by Hamming distance: (distances (nq, k) int32, ids (nq, k) int64), tie rule above."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        queries = self._prepare_codes(codes, "queries")
        if len(self) == 0 or len(queries) == 0:
            return (np.full((len(queries), k), MISSING_DISTANCE, np.int32),
                    np.full((len(queries), k), -1, np.int64))
        distances, ids = self._search(queries, int(k))
        return distances.astype(np.int32, copy=False), ids.astype(np.int64, copy=False)

    def range_search(self, codes: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every item within Hamming ``radius`` (inclusive) of each query, ordered by the tie rule."""
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
        queries = self._prepare_codes(codes, "queries")
        if len(self) == 0:
            return [(np.empty(0, np.int32), np.empty(0, np.int64)) for _ in range(len(queries))]
        return self._range_search(queries, int(radius))

    @abstractmethod
    def ids(self) -> np.ndarray:
        """All stored ids, in insertion order."""

    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` plus a JSON sidecar ``path + '.json'`` saying what it is."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._save(path)
        meta = {"format": FORMAT_VERSION, "kind": self.kind, "n_bits": self.n_bits,
                "storage_bytes": self.storage_bytes, "count": len(self), "params": self.params(),
                "made_by": {"hashseek": hashseek.__version__, **self._versions()}}
        sidecar_path(path).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "BinaryIndex":
        """Read an index written by ``save`` (of this kind); ``overrides`` replace saved
        run-time settings such as ``threads``, ``nprobe`` or ``nflip``."""
        meta = read_sidecar(path)
        if meta["kind"] != cls.kind:
            raise ValueError(f"{path} holds a {meta['kind']!r} index, not {cls.kind!r}")
        index = cls(n_bits=meta["n_bits"], **{**meta["params"], **overrides})
        if meta["storage_bytes"] != index.storage_bytes:
            raise ValueError(f"{path} stores {meta['storage_bytes']}-byte codes, this version pads to "
                             f"{index.storage_bytes}")
        index._load(Path(path), meta)
        index._sorted_ids = np.sort(index.ids())
        return index

    def params(self) -> dict[str, Any]:
        """Constructor keywords besides ``n_bits``, recorded on save to rebuild the index."""
        return {}

    # ---------------------------------------------------------- backend hooks
    @abstractmethod
    def _add(self, codes: np.ndarray, ids: np.ndarray) -> None: ...

    @abstractmethod
    def _remove(self, ids: np.ndarray) -> None:
        """Remove ``ids``, all of which are stored, keeping the insertion order of the rest."""

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]: ...

    @abstractmethod
    def _save(self, path: Path) -> None: ...

    @abstractmethod
    def _load(self, path: Path, meta: dict[str, Any]) -> None: ...

    def _versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    # ---------------------------------------------------------- validation
    def _prepare_codes(self, codes: np.ndarray, what: str) -> np.ndarray:
        """Check shape and dtype, then zero-pad to ``storage_bytes`` (no copy when nothing to pad)."""
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8:
            dtype = getattr(codes, "dtype", type(codes).__name__)
            raise ValueError(f"{what} must be a packed uint8 numpy array (hashseek.core.bits.pack_bits), got {dtype}")
        if codes.ndim != 2 or codes.shape[1] != self.n_bytes:
            raise ValueError(f"{what} must have shape (n, {self.n_bytes}) for {self.n_bits}-bit codes, "
                             f"got {codes.shape}")
        spare_bits = 8 * self.n_bytes - self.n_bits
        if self.storage_bytes == self.n_bytes and spare_bits == 0:
            return np.ascontiguousarray(codes)
        padded = np.zeros((len(codes), self.storage_bytes), dtype=np.uint8)
        padded[:, :self.n_bytes] = codes
        if spare_bits:
            padded[:, self.n_bytes - 1] &= np.uint8((0xFF << spare_bits) & 0xFF)
        return padded

    def _check_new_ids(self, ids: np.ndarray, n: int) -> np.ndarray:
        ids = _as_id_array(ids)
        if len(ids) != n:
            raise ValueError(f"got {n} codes but {len(ids)} ids")
        if len(ids) and ids.min() < 0:
            raise ValueError("ids must be non-negative (-1 marks an empty result slot)")
        sorted_ids = np.sort(ids)
        if len(ids) > 1 and (dup := sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]).size:
            raise ValueError(f"duplicate ids in the batch, e.g. {int(dup[0])}")
        pos = np.minimum(np.searchsorted(self._sorted_ids, sorted_ids), max(len(self._sorted_ids) - 1, 0))
        if len(self._sorted_ids) and (clash := sorted_ids[self._sorted_ids[pos] == sorted_ids]).size:
            raise ValueError(f"{clash.size} ids are already in the index, e.g. {int(clash[0])}")
        return ids


def _as_id_array(ids: np.ndarray) -> np.ndarray:
    """Any 1-d integer array-like -> contiguous int64; floats and other types are refused."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-d, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError("ids must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


INDEXES: Registry[BinaryIndex] = Registry("index")


def create_index(kind: str, n_bits: int, **kwargs: Any) -> BinaryIndex:
    """Build an empty index of a registered kind (``flat`` is the exact default)."""
    return INDEXES.create(kind, n_bits=n_bits, **kwargs)


def load_index(path: str | Path, **overrides: Any) -> BinaryIndex:
    """Read any saved index: the JSON sidecar says which kind to rebuild."""
    return INDEXES.get(read_sidecar(path)["kind"]).load(path, **overrides)


def sort_range_results(lims: np.ndarray, distances: np.ndarray, labels: np.ndarray,
                       order_keys: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split flat range-search output per query, each ordered by (distance, insertion order).

    ``order_keys`` ranks items by insertion (defaults to the order given, which for a
    scan in storage order already is insertion order). One vectorised sort for all queries.
    """
    lims = lims.astype(np.int64)
    nq = len(lims) - 1
    query = np.repeat(np.arange(nq), np.diff(lims))
    keys = (distances, query) if order_keys is None else (order_keys, distances, query)
    order = np.lexsort(keys)
    distances = distances[order].astype(np.int32, copy=False)
    labels = labels[order].astype(np.int64, copy=False)
    return [(distances[lims[i]:lims[i + 1]], labels[lims[i]:lims[i + 1]]) for i in range(nq)]
