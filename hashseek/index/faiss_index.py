"""FAISS backends: ``flat`` (exact, the default), ``hash`` / ``multihash`` (bucket lookups) and ``ivf`` (sublinear).

All of them order results by the tie rule of ``hashseek.index.base``. FAISS keeps its
k-NN heaps ordered by (distance, label) and, at equal distance, keeps the smaller
label, so whenever labels grow with insertion order FAISS already returns exactly
that order at no extra cost (checked against the numpy reference in the tests):

* ``flat`` searches ``IndexBinaryIDMap2(IndexBinaryFlat)``: the inner labels are storage
  positions, which are insertion order, and ``remove_ids`` compacts by shifting the
  survivors down, so order survives removals;
* ``hash`` / ``multihash`` label by position in a numpy mirror of the codes, since FAISS
  cannot remove from them (nor from an IDMap2 around them): a removal rebuilds them;
* ``ivf`` labels by an ever-growing sequence number (it cannot shift labels on removal,
  and an IDMap around it would then map to the wrong ids), translated back to ids here.

The approximate indexes scan items out of label order, and FAISS's heaps refuse an item
that merely ties the current k-th distance, so at the boundary they may keep a later
item over an earlier one. ``search_tie_exact`` asks for more than k and widens only for
the queries whose boundary tie group reaches the end of the list; then the first k are
exactly the tie rule applied to the items examined.

Binary range search in FAISS keeps distances strictly below its radius; ours is
inclusive, so we ask for ``radius + 1``.

``threads`` (default ``None``: leave FAISS's process-wide OpenMP setting alone) sets the
OpenMP threads around each call. One query is always scanned by one thread; threads
only help batches, and under CPU contention spinning threads collapse, so per-request
serving should pass ``threads=1``.
"""
from __future__ import annotations

from abc import abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import faiss
import numpy as np

from hashseek.index.base import INDEXES, MISSING_DISTANCE, BinaryIndex, sort_range_results


@contextmanager
def omp_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` OpenMP threads, then restore the previous setting.

    OpenMP keeps this setting per calling thread, so concurrent requests do not race.
    """
    if threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _with_slack(codes: np.ndarray) -> np.ndarray:
    """Copy into a buffer with 8 spare bytes: FAISS hash indexes read a uint64 at each
    sub-code's offset, which runs past the last code's end."""
    buf = np.zeros(codes.size + 8, dtype=np.uint8)
    buf[:codes.size] = codes.ravel()
    return buf[:codes.size].reshape(codes.shape)


def search_tie_exact(search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
                     queries: np.ndarray, k: int, ntotal: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k by (distance, label) from a FAISS ``search`` whose heap may drop tied items.

    Every item strictly closer than the last distance returned is in FAISS's list; so
    when the k-th distance is below the last one, the whole tie group at the k-th
    place is there, sorted by label. Queries where it is not are asked again for 4x more.
    """
    def cut_tie(d: np.ndarray) -> np.ndarray:  # a full list whose k-th distance ties its last
        return (d[:, k - 1] == d[:, -1]) & (d[:, -1] != MISSING_DISTANCE)

    if k >= ntotal:
        return search(queries, k)
    fetch = min(2 * k, ntotal)
    distances, labels = search(queries, fetch)
    todo = np.flatnonzero(cut_tie(distances))
    distances, labels = distances[:, :k].copy(), labels[:, :k].copy()
    while len(todo) and fetch < ntotal:
        # Lists longer than the items a query examines come back part-empty, which ends this.
        fetch = min(4 * fetch, ntotal)
        step = max(1, (1 << 22) // fetch)  # bound the result buffers to ~50 MB
        still = []
        for rows in np.array_split(todo, -(-len(todo) // step)):
            more_d, more_l = search(queries[rows], fetch)
            distances[rows], labels[rows] = more_d[:, :k], more_l[:, :k]
            still.append(rows[cut_tie(more_d)])
        todo = np.concatenate(still)
    return distances, labels


def _labels_to_ids(labels: np.ndarray, ids: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
    """Map FAISS labels (positions into ``ids``, or values of the sorted ``keys``) to ids; -1 stays -1."""
    found = labels >= 0
    pos = labels if keys is None else np.searchsorted(keys, labels)
    return np.where(found, ids[np.where(found, pos, 0)], -1)


class FaissBinaryIndex(BinaryIndex):
    """Shared by the FAISS backends: thread control and provenance."""

    threaded = True

    def __init__(self, n_bits: int, threads: int | None = None):
        super().__init__(n_bits)
        if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = threads

    @property
    def d(self) -> int:
        """Bits FAISS sees: the padded width."""
        return 8 * self.storage_bytes

    def _versions(self) -> dict[str, str]:
        return {**super()._versions(), "faiss": faiss.__version__}


@INDEXES.register("flat")
class FlatIndex(FaissBinaryIndex):
    """Exact brute-force Hamming scan, ``IndexBinaryIDMap2(IndexBinaryFlat)``; saved as a FAISS file.

    Memory is the code plus about 50 bytes per item: IDMap2 keeps an id -> position hash
    map besides the id array (plain IDMap would need 8).
    """

    kind = "flat"
    # From about k = 500 FAISS's counting-sort top-k beats its heap (1M codes: 8% at
    # k = 1000, 35% at 3000). It holds (bits + 1) x k labels per query, so short codes only.
    counting_min_k = 512
    counting_max_bits = 256

    def __init__(self, n_bits: int, threads: int | None = None):
        super().__init__(n_bits, threads)
        self._index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(self.d))
        self._flat = faiss.downcast_IndexBinary(self._index.index)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def _add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        with omp_threads(self.threads):
            self._index.add_with_ids(codes, ids)

    def _remove(self, ids: np.ndarray) -> None:
        self._index.remove_ids(ids)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # Both top-k strategies keep the tie rule (storage order wins), checked in the tests.
        self._flat.use_heap = k < self.counting_min_k or self.d > self.counting_max_bits
        with omp_threads(self.threads):
            return self._index.search(queries, k)

    def _range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        with omp_threads(self.threads):
            lims, distances, ids = self._index.range_search(queries, radius + 1)
        return sort_range_results(lims, distances, ids)  # each query's hits come in storage order

    def _save(self, path: Path) -> None:
        faiss.write_index_binary(self._index, str(path))

    def _load(self, path: Path, meta: dict[str, Any]) -> None:
        index = faiss.read_index_binary(str(path))
        if not isinstance(index, faiss.IndexBinaryIDMap2) or index.d != self.d:
            raise ValueError(f"{path} is not an IndexBinaryIDMap2 of {self.d} bits")
        self._index, self._flat = index, faiss.downcast_IndexBinary(index.index)


class _MirroredIndex(FaissBinaryIndex):
    """A FAISS structure rebuilt from a numpy copy of the codes, for indexes FAISS cannot remove from.

    Labels are positions in the copy (insertion order). Removal rebuilds the structure
    (O(n), fine for occasional deletions); saving writes the copy and loading rebuilds.
    """

    exact = False

    def __init__(self, n_bits: int, nflip: int, threads: int | None = None):
        super().__init__(n_bits, threads)
        self.nflip = nflip
        self._codes = np.empty((0, self.storage_bytes), dtype=np.uint8)
        self._ids = np.empty(0, dtype=np.int64)
        self._index = self._new_faiss()

    @abstractmethod
    def _new_faiss(self) -> faiss.IndexBinary:
        """A fresh, empty FAISS structure with this index's parameters."""

    def _set_nflip(self) -> None:
        self._index.nflip = min(self.nflip, self.b)  # FAISS's flip enumerator breaks past b

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def _add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        self._index.add(_with_slack(codes))
        self._codes = np.concatenate([self._codes, codes])
        self._ids = np.concatenate([self._ids, ids])

    def _remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self._ids, ids)
        self._codes, self._ids = self._codes[keep], self._ids[keep]
        self._rebuild()

    def _rebuild(self) -> None:
        self._index = self._new_faiss()
        if len(self._codes):
            self._index.add(_with_slack(self._codes))

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._set_nflip()
        with omp_threads(self.threads):
            distances, labels = search_tie_exact(self._index.search, _with_slack(queries), k, len(self._ids))
        return distances, _labels_to_ids(labels, self._ids)

    def _range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        self._set_nflip()
        with omp_threads(self.threads):
            lims, distances, labels = self._index.range_search(_with_slack(queries), radius + 1)
        return sort_range_results(lims, distances, self._ids[labels], order_keys=labels)

    def _save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, codes=self._codes, ids=self._ids)

    def _load(self, path: Path, meta: dict[str, Any]) -> None:
        with np.load(path) as data:
            self._codes, self._ids = data["codes"], data["ids"]
        self._rebuild()


def _default_key_bits(n_bits: int) -> int:
    """16-bit bucket keys (about 15 items per bucket at 1M), fewer for shorter codes."""
    return min(16, 8 * (n_bits // 8))


@INDEXES.register("hash")
class HashIndex(_MirroredIndex):
    """``IndexBinaryHash``: buckets keyed by the first ``b`` bits, probing every key within
    ``nflip`` flips of the query's. Approximate for k-NN (neighbours that differ in the
    key by more than ``nflip`` bits are missed); ``range_search`` is exact when
    ``nflip >= radius``, and k-NN is exact with ``nflip = b``.
    """

    kind = "hash"

    def __init__(self, n_bits: int, b: int | None = None, nflip: int = 2, threads: int | None = None):
        self.b = _default_key_bits(n_bits) if b is None else b
        if not 1 <= self.b <= min(n_bits, 32):
            raise ValueError(f"b must be in [1, min(n_bits, 32)], got {self.b}")
        super().__init__(n_bits, nflip, threads)

    def params(self) -> dict[str, Any]:
        return {"b": self.b, "nflip": self.nflip}

    def _new_faiss(self) -> faiss.IndexBinary:
        return faiss.IndexBinaryHash(self.d, self.b)


@INDEXES.register("multihash")
class MultiHashIndex(_MirroredIndex):
    """``IndexBinaryMultiHash``: ``nhash`` tables on disjoint ``b``-bit slices of the code
    (multi-index hashing). By pigeonhole, ``range_search`` is exact for
    ``radius <= nhash * (nflip + 1) - 1`` when the slices cover the code; k-NN is
    approximate. Defaults: 16-bit slices covering up to 128 bits, ``nflip=1``.
    """

    kind = "multihash"

    def __init__(self, n_bits: int, nhash: int | None = None, b: int | None = None, nflip: int = 1,
                 threads: int | None = None):
        self.b = _default_key_bits(n_bits) if b is None else b
        self.nhash = max(1, min(8, n_bits // self.b)) if nhash is None else nhash
        if not 1 <= self.b <= 32 or self.nhash < 1 or self.nhash * self.b > 8 * -(-n_bits // 8):
            raise ValueError(f"need 1 <= b <= 32 and nhash * b <= code bits, got nhash={self.nhash}, b={self.b}")
        super().__init__(n_bits, nflip, threads)

    def params(self) -> dict[str, Any]:
        return {"nhash": self.nhash, "b": self.b, "nflip": self.nflip}

    def _new_faiss(self) -> faiss.IndexBinary:
        return faiss.IndexBinaryMultiHash(self.d, self.nhash, self.b)


@INDEXES.register("ivf")
class IVFIndex(FaissBinaryIndex):
    """The sublinear mode: ``IndexBinaryIVF`` over a flat quantizer of ``nlist`` Hamming centroids.

    A query scans only its ``nprobe`` nearest lists, so it is approximate; with
    ``nprobe = nlist`` it is exact. Deep-hash codes cluster around class centres,
    which is what makes few lists enough (see ``benchmarks/index_speed.py``).
    Trained by ``train(codes)`` or on the first batch added; ``nlist=None`` picks
    ``min(1024, n // 39)`` from the training set (FAISS wants >= 39 points per centroid).
    """

    kind = "ivf"
    exact = False
    needs_training = True

    def __init__(self, n_bits: int, nlist: int | None = None, nprobe: int = 8, seed: int = 0,
                 threads: int | None = None):
        super().__init__(n_bits, threads)
        if (nlist is not None and nlist < 1) or nprobe < 1:
            raise ValueError(f"nlist and nprobe must be positive, got {nlist}, {nprobe}")
        self.nlist, self.nprobe, self.seed = nlist, nprobe, seed
        self._index: faiss.IndexBinaryIVF | None = None
        # FAISS labels are sequence numbers (ascending, like the ids in insertion order).
        self._seq = np.empty(0, dtype=np.int64)
        self._ids = np.empty(0, dtype=np.int64)
        self._next_seq = 0

    @property
    def is_trained(self) -> bool:
        return self._index is not None

    def params(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "nprobe": self.nprobe, "seed": self.seed}

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def train(self, codes: np.ndarray) -> None:
        """Learn the ``nlist`` centroids (k-means on the bits, FAISS's binary IVF recipe)."""
        if self.is_trained:
            raise ValueError("the IVF index is already trained")
        self._train(self._prepare_codes(codes, "codes"))

    def _train(self, codes: np.ndarray) -> None:
        nlist = self.nlist or max(1, min(1024, len(codes) // 39))
        if len(codes) < nlist:
            raise ValueError(f"training an IVF index with nlist={nlist} needs at least {nlist} codes, "
                             f"got {len(codes)}")
        quantizer = faiss.IndexBinaryFlat(self.d)
        index = faiss.IndexBinaryIVF(quantizer, self.d, nlist)
        index.cp.seed = self.seed
        with omp_threads(self.threads):
            index.train(codes)
        self.nlist, self._index = nlist, index
        self._tune_quantizer()

    def _tune_quantizer(self) -> None:
        # Assigning a big batch in blocks of 32 queries makes OpenMP threads wait on each other.
        faiss.downcast_IndexBinary(self._index.quantizer).query_batch_size = 4096

    def _add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        if not self.is_trained:
            self._train(codes)
        seq = np.arange(self._next_seq, self._next_seq + len(codes), dtype=np.int64)
        with omp_threads(self.threads):
            self._index.add_with_ids(codes, seq)
        self._seq = np.concatenate([self._seq, seq])
        self._ids = np.concatenate([self._ids, ids])
        self._next_seq += len(codes)

    def _remove(self, ids: np.ndarray) -> None:
        gone = np.isin(self._ids, ids)
        self._index.remove_ids(self._seq[gone])
        self._seq, self._ids = self._seq[~gone], self._ids[~gone]

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._index.nprobe = min(self.nprobe, self.nlist)
        with omp_threads(self.threads):
            distances, labels = search_tie_exact(self._index.search, queries, k, len(self._ids))
        return distances, _labels_to_ids(labels, self._ids, self._seq)

    def _range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        self._index.nprobe = min(self.nprobe, self.nlist)
        with omp_threads(self.threads):
            lims, distances, labels = self._index.range_search(queries, radius + 1)
        ids = self._ids[np.searchsorted(self._seq, labels)]
        return sort_range_results(lims, distances, ids, order_keys=labels)

    def _save(self, path: Path) -> None:
        if not self.is_trained:
            raise ValueError("cannot save an untrained IVF index")
        with open(path, "wb") as f:
            np.savez(f, faiss_index=faiss.serialize_index_binary(self._index), seq=self._seq,
                     ids=self._ids, next_seq=np.int64(self._next_seq))

    def _load(self, path: Path, meta: dict[str, Any]) -> None:
        with np.load(path) as data:
            self._index = faiss.deserialize_index_binary(data["faiss_index"])
            self._seq, self._ids = data["seq"], data["ids"]
            self._next_seq = int(data["next_seq"])
        self._tune_quantizer()


__all__ = ["FaissBinaryIndex", "FlatIndex", "HashIndex", "IVFIndex", "MultiHashIndex", "omp_threads"]
