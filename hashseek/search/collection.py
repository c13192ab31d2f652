"""A collection: one self-contained directory of searchable images that a user can copy, open and close.

Layout::

    C/
      collection.json    format version, n_bits, index kind, how the codes are made, created time
      hasher/            the saved ImageHasher (hasher.json names its type)
      meta.sqlite        one row per image: the journal and the truth
      features.f16       float16 features for re-ranking, one row per image, append-only
      index.faiss        the binary index of the codes (+ its .json sidecar): a cache. With the
                         ``milvus`` backend the codes live in a Milvus collection that
                         collection.json names (``index_options``), and this file only says how to
                         reconnect; the rest of the directory stays here
      index.state.json   which meta.sqlite state the index file reflects
      images/            stored copies of uploaded images, named by content hash

Crash safety. SQLite is the truth; everything else can be checked or rebuilt from it.
A batch of images is done when its SQLite transaction commits: its features are appended
to ``features.f16`` and fsynced first, so a committed row always finds its feature row.
On open, feature rows no committed row references (a batch killed mid-way) are cut off,
and the index file is used only if ``index.state.json`` names the current SQLite
generation (bumped by every change to the searchable codes); otherwise the index is
rebuilt from the codes in SQLite, which takes well under a second per million images.

Removal keeps the row as a tombstone (``in_library = 0``) with its features, so adding the
same source again restores it without decoding it, under a new id: ids grow with
insertion, which is what the index's tie rule (insertion order) then follows.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

import hashseek
from hashseek.data.datasets import ArchiveDataset, FolderDataset, ImageDataset, is_image_name, open_images
from hashseek.data.loader import iter_batches
from hashseek.index import INDEXES, BinaryIndex, create_index, load_index
from hashseek.index.faiss_index import FaissBinaryIndex
from hashseek.core.atomic import atomic_path
from hashseek.core.hasher import ImageHasher, load_image_hasher
from hashseek.core.ranking import vote
from hashseek.search.engine import DEFAULT_CANDIDATES, Classification, SearchHit, SearchResult, rank
from hashseek.search.feature_hasher import FeatureHasher

FORMAT_VERSION = 1
COLLECTION_JSON = "collection.json"
HASHER_DIR = "hasher"
META_DB = "meta.sqlite"
FEATURES_FILE = "features.f16"
INDEX_FILE = "index.faiss"
INDEX_STATE = "index.state.json"
IMAGES_DIR = "images"
_LOCK_FILE = ".lock"
_CHUNK = 8192            # rows per block when recomputing codes
_CHECK_SAMPLE = 10_000   # codes compared against the index by ``check``

log = logging.getLogger(__name__)

Query = int | str | Path | bytes | Image.Image   # a library id, or an image (path, bytes, decoded)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids follow insertion order
    name        TEXT NOT NULL,
    source      TEXT NOT NULL UNIQUE,               -- path, archive path::member, or upload:sha256
    stored      TEXT,                               -- copy under images/ (uploads)
    label       TEXT,
    code        BLOB,                               -- packed code; NULL until the hasher is fitted
    feature_row INTEGER NOT NULL UNIQUE,            -- row in features.f16
    added_at    REAL NOT NULL,                      -- unix time
    in_library  INTEGER NOT NULL DEFAULT 1          -- 0: removed (kept so re-adding restores it)
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO state VALUES ('generation', '0');
"""
_COLUMNS = "id, name, source, stored, label, code, feature_row, added_at, in_library"
_INSERT = ("INSERT INTO images (name, source, stored, label, code, feature_row, added_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id")


@dataclass(frozen=True)
class Record:
    id: int
    name: str
    source: str
    stored: str | None
    label: str | None
    code: bytes | None
    feature_row: int
    added_at: float
    in_library: bool


@dataclass
class AddReport:
    """What an ``add_*`` call did: new ids, sources already present, restored and unreadable ones."""

    ids: list[int] = field(default_factory=list)
    skipped: int = 0
    restored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (source, reason)

    @property
    def added(self) -> int:
        return len(self.ids)

    def __str__(self) -> str:
        return (f"added {self.added}, restored {self.restored}, already present {self.skipped}, "
                f"unreadable {len(self.failed)}")


@dataclass
class CheckReport:
    """Counts and the problems ``check`` found; ``ok`` when there are none."""

    counts: dict[str, int]
    problems: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [", ".join(f"{k} {v}" for k, v in self.counts.items())]
        lines += [f"note: {n}" for n in self.notes] + [f"PROBLEM: {p}" for p in self.problems]
        lines.append("ok" if self.ok else f"{len(self.problems)} problem(s)")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Pending:
    """One image to add: its source key and how to read it."""

    source: str
    name: str
    label: str | None
    read: Callable[[], object]      # -> a path or bytes for the hasher's preprocessing, called in a worker
    upload: bytes | None = None     # bytes to keep a copy of under images/


class FeatureStore:
    """Append-only float16 rows in one file, memory-mapped for reading."""

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


class Collection:
    """An image library searchable by Hamming distance between codes, re-ranked by float features.

    Make one with ``Collection.create``, reopen it with ``Collection.open``; use it as a
    context manager (or call ``close``) so the index cache is written back. One process
    at a time may hold a collection open; calls may come from any thread but must not
    overlap (a server serialises them).
    """

    def __init__(self, path: Path, image_hasher: ImageHasher, config: dict, batch_size: int = 32,
                 workers: int | None = None):
        """Use ``create`` or ``open``."""
        self.path = path
        self.image_hasher = image_hasher
        self.config = config
        self.n_bits = int(config["n_bits"])
        self.index_kind = config["index"]
        self.index_options = dict(config.get("index_options") or {})
        self.batch_size, self.workers = batch_size, workers
        self._lock = open(path / _LOCK_FILE, "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ValueError(f"collection {path} is open in another process") from None
        self._db = sqlite3.connect(path / META_DB, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(_SCHEMA)
        self._features = FeatureStore(path / FEATURES_FILE, int(config["feature_dim"]))
        self._generation = int(self._state("generation"))
        self._index: BinaryIndex | None = None
        self._index_generation = -1
        self._lib_ids = np.empty(0, np.int64)     # library ids, ascending, and their feature rows
        self._lib_rows = np.empty(0, np.int64)
        self._archives: dict[str, ImageDataset] = {}   # archives holding library images, opened on demand
        self._recover()

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, path: str | Path, image_hasher: ImageHasher | None = None, n_bits: int = 64,
               backbone: str = "efficientnet_lite0", index: str = "flat", hasher: str = "itq", seed: int = 0,
               index_options: dict | None = None, **kwargs) -> "Collection":
        """A new empty collection. Without ``image_hasher``, codes come from a pretrained ``backbone``
        and a ``hasher`` (ITQ) of ``n_bits`` fitted on the first images added (zero training).

        ``index`` is the backend of the codes: a FAISS kind (``flat``, ``hash``, ``multihash``,
        ``ivf``) or ``milvus`` with ``index_options={"uri": ..., "collection_name": ...}``
        (optional: ``index_type``, ``nlist``, ``nprobe``). The options are stored in
        ``collection.json``; a Milvus token is not: it comes from ``HASHSEEK_MILVUS_TOKEN``.
        """
        path = Path(path).expanduser()
        if (path / COLLECTION_JSON).exists():
            raise FileExistsError(f"{path} already holds a collection; use Collection.open")
        image_hasher = image_hasher or FeatureHasher(backbone, n_bits, method=hasher, seed=seed)
        index_options = _checked_index_options(index, image_hasher.n_bits, path, index_options)  # fail early
        path.mkdir(parents=True, exist_ok=True)
        (path / IMAGES_DIR).mkdir(exist_ok=True)
        image_hasher.save(path / HASHER_DIR)
        config = {"format": "hashseek-collection", "version": FORMAT_VERSION, "n_bits": image_hasher.n_bits,
                  "feature_dim": image_hasher.feature_dim, "index": index,
                  **({"index_options": index_options} if index_options else {}),
                  "made_with": image_hasher.describe(),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "hashseek": hashseek.__version__}
        with atomic_path(path / COLLECTION_JSON) as tmp:  # written last: its presence marks a whole collection
            tmp.write_text(json.dumps(config, indent=2))
        return cls(path, image_hasher, config, **kwargs)

    @classmethod
    def open(cls, path: str | Path, **kwargs) -> "Collection":
        """Reopen a collection, repairing whatever an interrupted run left (see the module docstring)."""
        path = Path(path).expanduser()
        spec = path / COLLECTION_JSON
        if not spec.is_file():
            raise FileNotFoundError(f"{path} is not a hashseek collection ({COLLECTION_JSON} missing)")
        config = json.loads(spec.read_text())
        if config.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported collection version {config.get('version')!r}")
        return cls(path, load_image_hasher(path / HASHER_DIR), config, **kwargs)

    def close(self) -> None:
        """Write the index cache back and release the collection."""
        if self._db is None:
            return
        try:
            self.checkpoint()
        finally:
            self._close_index()
        self._db.close()
        self._db = None
        self._features.close()
        self._lock.close()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def checkpoint(self) -> None:
        """Write the index file (atomically) with the SQLite state it reflects, so the next open loads it."""
        index = self._searchable_index()
        state = self._index_state()
        if self._read_index_state() == state or not len(index):  # an empty index is rebuilt for free
            return
        with atomic_path(self.path / INDEX_FILE) as tmp:
            index.save(tmp)
            os.replace(tmp.with_name(tmp.name + ".json"), self.path / (INDEX_FILE + ".json"))
        with atomic_path(self.path / INDEX_STATE) as tmp:
            tmp.write_text(json.dumps(state))

    # ------------------------------------------------------------------ adding
    def add_paths(self, paths: Sequence[str | Path], labels: Sequence[str | None] | None = None, *,
                  progress: bool = True, on_batch: Callable[[list[str]], None] | None = None) -> AddReport:
        """Add image files by path (the resolved path is the source key)."""
        labels = [None] * len(paths) if labels is None else list(labels)
        if len(labels) != len(paths):
            raise ValueError(f"got {len(labels)} labels for {len(paths)} paths")
        pending = []
        for path, label in zip(paths, labels):
            path = Path(path).expanduser().resolve()
            pending.append(_Pending(str(path), path.name, label, partial(str, path)))
        return self._add(pending, progress, on_batch)

    def add_folder(self, path: str | Path, **kwargs) -> AddReport:
        """Add a folder or tar archive of images; the folder holding an image names its label."""
        return self.add_dataset(open_images(path), **kwargs)

    def add_dataset(self, dataset: ImageDataset, ids: Sequence[str] | None = None, *, progress: bool = True,
                    on_batch: Callable[[list[str]], None] | None = None) -> AddReport:
        """Add a dataset's images (all, or ``ids`` in that order), labelled by their class names."""
        ids = dataset.ids if ids is None else list(ids)
        labels = dataset.labels(ids)
        pending = []
        for image_id, label in zip(ids, labels):
            pending.append(_Pending(_source_of(dataset, image_id), image_id,
                                    dataset.classes[label] if label >= 0 else None,
                                    partial(dataset.read_bytes, image_id)))
        return self._add(pending, progress, on_batch)

    def add_images(self, images: Sequence[bytes], names: Sequence[str] | None = None,
                   labels: Sequence[str | None] | None = None, *, store: bool = True, progress: bool = False,
                   on_batch: Callable[[list[str]], None] | None = None) -> AddReport:
        """Add uploaded image bytes; with ``store`` a copy is kept under ``images/`` (named by content hash).

        The source key is the content hash, so uploading the same bytes twice adds one image.
        """
        names = [f"upload-{n}" for n in range(len(images))] if names is None else list(names)
        labels = [None] * len(images) if labels is None else list(labels)
        if not len(images) == len(names) == len(labels):
            raise ValueError(f"got {len(images)} images, {len(names)} names and {len(labels)} labels")
        pending = []
        for data, name, label in zip(images, names, labels):
            data = bytes(data)
            source = f"upload:{hashlib.sha256(data).hexdigest()}"
            pending.append(_Pending(source, name, label, partial(bytes, data), data if store else None))
        return self._add(pending, progress, on_batch)

    def add_features(self, features: np.ndarray, codes: np.ndarray, sources: Sequence[str],
                     names: Sequence[str], labels: Sequence[str | None]) -> list[int]:
        """Rows whose features and packed codes were computed elsewhere (imports, synthetic scale tests).

        They have no image file to show; ``sources`` must be new unique keys. One atomic batch.
        """
        self._require_open()
        with np.errstate(over="ignore"):  # out-of-range values become inf and are refused below
            features, codes = np.asarray(features, np.float16), np.asarray(codes, np.uint8)
        if not len(features) == len(codes) == len(sources) == len(names) == len(labels):
            raise ValueError("features, codes, sources, names and labels must have the same length")
        if features.shape[1:] != (self._features.dim,) or codes.shape[1:] != (-(-self.n_bits // 8),):
            raise ValueError(f"expected ({self._features.dim},) features and {-(-self.n_bits // 8)}-byte codes, "
                             f"got {features.shape[1:]} and {codes.shape[1:]}")
        items = [_Pending(source, name, label, bytes) for source, name, label in zip(sources, names, labels)]
        return self._commit_batch(items, features, codes)

    def image_bytes(self, image: int | Record) -> bytes:
        """The bytes of a library image, read where its metadata says it is (never from a request path).

        Given a ``Record`` it touches no SQLite, so it may run beside other calls.
        """
        record = image if isinstance(image, Record) else self.get(image)
        if record.stored is not None:
            return (self.path / IMAGES_DIR / record.stored).read_bytes()
        where, separator, member = record.source.partition("::")
        if separator:
            archive = self._archives.get(where) or self._archives.setdefault(where, open_images(where))
            return archive.read_bytes(member)
        return Path(record.source).read_bytes()

    def _add(self, pending: list[_Pending], progress: bool,
             on_batch: Callable[[list[str]], None] | None) -> AddReport:
        """Batches of decode -> encode -> append features -> one SQLite commit; resumable by source key."""
        self._require_open()
        report, todo, seen = AddReport(), [], set()
        for item in pending:
            if item.source in seen:
                report.skipped += 1
                continue
            seen.add(item.source)
            row = self._db.execute("SELECT id, in_library FROM images WHERE source = ?", (item.source,)).fetchone()
            if row is None:
                todo.append(item)
            elif row[1]:
                report.skipped += 1
            else:
                report.ids.append(self._restore(row[0], item))
                report.restored += 1
        by_source = {item.source: item for item in todo}
        fitted = getattr(self.image_hasher, "is_fitted", True)
        bar = tqdm(total=len(todo), desc=f"adding to {self.path.name}", unit="img", disable=not progress)
        for batch in iter_batches([item.source for item in todo], lambda s: by_source[s].read(),
                                  self.image_hasher.preprocess, self.batch_size, self.workers):
            report.failed += batch.failed
            if batch.ids:
                items = [by_source[s] for s in batch.ids]
                if fitted:
                    codes, features = self.image_hasher.encode_arrays(batch.inputs)
                else:
                    codes, features = None, self.image_hasher.features(batch.inputs)
                report.ids += self._commit_batch(items, features, codes)
                if on_batch is not None:
                    on_batch(list(batch.ids))
            bar.update(len(batch.ids) + len(batch.failed))
        bar.close()
        if report.failed:
            log.warning("skipped %d unreadable images, e.g. %s: %s", len(report.failed), *report.failed[0])
        if not fitted and len(self) >= 2:
            self.refit()
        self._searchable_index()
        return report

    def _commit_batch(self, items: list[_Pending], features: np.ndarray, codes: np.ndarray | None) -> list[int]:
        features = np.asarray(features, np.float16)
        if not np.isfinite(features).all():  # NaN or beyond float16's range: re-ranking needs finite values
            raise ValueError("features must be finite in float16 (|x| <= 65504); nothing of this batch was added")
        for item in items:
            if item.upload is not None:
                self._store_upload(item)
        first = self._features.append(features)
        now = time.time()
        rows = [(item.name, item.source, _stored_name(item), item.label,
                 None if codes is None else codes[n].tobytes(), first + n, now)
                for n, item in enumerate(items)]
        with self._transaction(searchable=codes is not None) as db:
            ids = [db.execute(_INSERT, row).fetchone()[0] for row in rows]
        self._library_added(np.array(ids), first + np.arange(len(ids)), codes)
        return ids

    def _restore(self, old_id: int, item: _Pending) -> int:
        """Re-adding a removed source: the same features and code under a new id (no decoding)."""
        if item.upload is not None:
            self._store_upload(item)
        with self._transaction(searchable=True) as db:
            record = _record(db.execute(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (old_id,)).fetchone())
            db.execute("DELETE FROM images WHERE id = ?", (old_id,))
            label = record.label if item.label is None else item.label
            new_id = db.execute(_INSERT, (item.name, item.source, _stored_name(item), label, record.code,
                                          record.feature_row, time.time())).fetchone()[0]
        codes = None if record.code is None else np.frombuffer(record.code, np.uint8)[None]
        self._library_added(np.array([new_id]), np.array([record.feature_row]), codes)
        return new_id

    def _store_upload(self, item: _Pending) -> None:
        target = self.path / IMAGES_DIR / _stored_name(item)
        if not target.exists():
            with atomic_path(target) as tmp:
                tmp.write_bytes(item.upload)

    # ------------------------------------------------------------------ fitting
    def refit(self) -> None:
        """Fit the FeatureHasher on the library's stored features and recompute every code.

        Nothing is decoded again. ``add_*`` calls this once the first images of a new
        zero-training collection are in; call it again after the library has grown a lot.
        """
        self._require_open()
        if not isinstance(self.image_hasher, FeatureHasher):
            raise ValueError(f"only a pretrained+shallow collection can refit, this one has "
                             f"{self.image_hasher.describe().get('type')!r}")
        if len(self._lib_rows) < 2:
            raise ValueError(f"fitting needs at least 2 images, the collection has {len(self._lib_rows)}")
        rows = self._lib_rows[self.image_hasher.fit_sample(len(self._lib_rows))]
        self.image_hasher.fit(self._features.read(rows))
        self.image_hasher.save(self.path / HASHER_DIR)
        self._sync_codes()

    def _sync_codes(self) -> None:
        """Give every row the code of the current fit: after a first fit, a refit, or a crash between them."""
        h = self.image_hasher
        if not isinstance(h, FeatureHasher) or not h.is_fitted:
            return
        refit = self._state("fit_digest") != h.fit_digest
        where = "" if refit else "WHERE code IS NULL"
        rows = np.array(self._db.execute(f"SELECT id, feature_row FROM images {where} ORDER BY id").fetchall(),
                        dtype=np.int64).reshape(-1, 2)
        if not len(rows) and not refit:
            return
        codes = [h.codes_from_features(self._features.read(rows[i:i + _CHUNK, 1])) for i in range(0, len(rows), _CHUNK)]
        with self._transaction(searchable=True) as db:
            if codes:
                db.executemany("UPDATE images SET code = ? WHERE id = ?",
                               zip(map(bytes, np.concatenate(codes)), rows[:, 0].tolist()))
            db.execute("INSERT OR REPLACE INTO state VALUES ('fit_digest', ?)", (h.fit_digest,))

    # ------------------------------------------------------------------ editing and reading
    def remove(self, ids: Iterable[int]) -> int:
        """Take images out of the library (and delete their stored copies); unknown ids raise KeyError."""
        self._require_open()
        ids = sorted({int(i) for i in ids})
        missing = [i for i in ids if not self._in_library(i)]
        if missing:
            raise KeyError(f"not in the collection: {', '.join(map(str, missing))}")
        marks = ",".join("?" * len(ids))
        stored = [r[0] for r in self._db.execute(
            f"SELECT stored FROM images WHERE id IN ({marks}) AND stored IS NOT NULL", ids)]
        with self._transaction(searchable=True) as db:
            db.execute(f"UPDATE images SET in_library = 0, stored = NULL WHERE id IN ({marks})", ids)
        keep = ~np.isin(self._lib_ids, ids)
        self._lib_ids, self._lib_rows = self._lib_ids[keep], self._lib_rows[keep]
        if self._index is not None and self._index_generation == self._generation - 1:
            self._index.remove(np.array(ids))
            self._index_generation = self._generation
        for name in stored:
            (self.path / IMAGES_DIR / name).unlink(missing_ok=True)
        return len(ids)

    def relabel(self, image_id: int, label: str | None) -> None:
        self._require_open()
        if not self._in_library(image_id):
            raise KeyError(f"not in the collection: {image_id}")
        with self._transaction(searchable=False) as db:
            db.execute("UPDATE images SET label = ? WHERE id = ?", (label, image_id))

    def get(self, image_id: int) -> Record:
        """The record of an image, removed ones included (``in_library`` says which)."""
        self._require_open()
        row = self._db.execute(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (int(image_id),)).fetchone()
        if row is None:
            raise KeyError(f"no image with id {image_id}")
        return _record(row)

    def list(self, offset: int = 0, limit: int = 100, label: str | None = None) -> list[Record]:
        """Library records in id (= insertion) order, optionally of one label."""
        self._require_open()
        where, args = ("AND label = ?", (label,)) if label is not None else ("", ())
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM images WHERE in_library {where} ORDER BY id "
                                "LIMIT ? OFFSET ?", (*args, limit, offset))
        return [_record(row) for row in rows]

    def __len__(self) -> int:
        return len(self._lib_ids)

    def info(self) -> dict:
        """Counts, classes, code length, disk use, index kind and how the codes are made."""
        self._require_open()
        db = self._db
        removed, unsearchable = db.execute(
            "SELECT SUM(NOT in_library), SUM(in_library AND code IS NULL) FROM images").fetchone()
        classes = dict(db.execute("SELECT COALESCE(label, ''), COUNT(*) FROM images WHERE in_library "
                                  "GROUP BY label ORDER BY label").fetchall())
        unlabelled = classes.pop("", 0)
        disk = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return {"path": str(self.path), "images": len(self), "removed": removed or 0,
                "not_searchable": unsearchable or 0, "unlabelled": unlabelled, "classes": classes,
                "n_bits": self.n_bits, "feature_dim": self._features.dim, "index": self.index_kind,
                "index_options": self.index_options, "bytes_on_disk": disk, "hasher": self.image_hasher.describe(),
                "created": self.config["created"]}

    # ------------------------------------------------------------------ search
    def search(self, query: Query, k: int = 20, *, rerank: str | None = None,
               radius: int | None = None, candidates: int = DEFAULT_CANDIDATES,
               exclude: Iterable[int] = (), exclude_self: bool = True) -> SearchResult:
        """Search by an image (path, bytes or PIL image) or by the id (an int) of a library image.

        ``rerank`` names a float distance for coarse-to-fine search over the ``radius`` ball or
        the top ``candidates`` by Hamming; see ``hashseek.search.engine`` for modes and ties.
        A library query leaves itself out unless ``exclude_self`` is False.
        """
        start = perf_counter()
        code, feature, described = self._resolve(query)
        exclude = list(exclude)
        if "id" in described and exclude_self:
            exclude.append(described["id"])
        return self._run(code, feature, described, k, rerank, radius, candidates, exclude, start)

    def search_random(self, seed: int = 0, k: int = 20, **kwargs) -> SearchResult:
        """Search by a library image drawn with ``seed`` (the ``random`` button)."""
        self._require_open()
        if not len(self):
            raise ValueError("the collection is empty")
        image_id = int(self._lib_ids[np.random.default_rng(seed).integers(len(self))])
        result = self.search(image_id, k, **kwargs)
        result.query["random"] = seed
        return result

    def search_vector(self, feature: np.ndarray | None = None, code: np.ndarray | None = None, k: int = 20, *,
                      rerank: str | None = None, radius: int | None = None, candidates: int = DEFAULT_CANDIDATES,
                      exclude: Iterable[int] = ()) -> SearchResult:
        """Search by a float feature (hashed here when the hasher can) and/or a packed code."""
        start = perf_counter()
        if code is None:
            if feature is None or not isinstance(self.image_hasher, FeatureHasher):
                raise ValueError("give a packed code, or a feature vector of a pretrained+shallow collection")
            self._require_searchable()
            code = self.image_hasher.codes_from_features(np.asarray(feature)[None])[0]
        code = np.asarray(code, dtype=np.uint8).reshape(-1)
        return self._run(code, feature, {"vector": "feature" if feature is not None else "code"}, k, rerank,
                         radius, candidates, list(exclude), start)

    def classify(self, query: Query, k: int = 8, **kwargs) -> Classification:
        """Top-``k`` vote of the (re-ranked) neighbours: the predicted label and the class shares.

        A new class needs no retraining: add its images with that label.
        """
        neighbours = self.search(query, k, **kwargs)
        label, distribution = vote([hit.label for hit in neighbours.hits], k)
        return Classification(label, distribution, neighbours)

    def features_of(self, ids: np.ndarray) -> np.ndarray:
        """(n, d) float16 stored features of library ids."""
        return self._features.read(self._feature_rows(ids))

    def _feature_rows(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._lib_ids, ids)
        if len(ids) and (pos.max(initial=0) >= len(self._lib_ids) or np.any(self._lib_ids[pos] != ids)):
            raise KeyError(f"not in the collection: {ids[~np.isin(ids, self._lib_ids)][:5].tolist()}")
        return self._lib_rows[pos]

    def _feature_table(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the memory-mapped feature store, the ids' rows in it): re-ranking reads rows in place."""
        rows = self._feature_rows(ids)
        return self._features.table(rows), rows

    def _resolve(self, query: Query) -> tuple[np.ndarray, np.ndarray, dict]:
        """(code, feature, description) of an image or a library id."""
        self._require_searchable()
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            record = self.get(int(query))
            if not record.in_library:
                raise KeyError(f"image {query} was removed from the collection")
            feature = self._features.read(np.array([record.feature_row]))[0]
            return np.frombuffer(record.code, np.uint8), feature, {"id": int(query)}
        start = perf_counter()
        codes, features = self.image_hasher.encode_arrays(self.image_hasher.preprocess(query)[None])
        described = {"image": str(query) if isinstance(query, (str, Path)) else f"<{type(query).__name__}>",
                     "encode_seconds": perf_counter() - start}
        return codes[0], features[0], described

    def _run(self, code, feature, described, k, rerank, radius, candidates, exclude, start) -> SearchResult:
        ranking = rank(self._searchable_index(), code, k, radius=radius, candidates=candidates, rerank=rerank,
                       feature=feature, features_of=self._feature_table, exclude=exclude)
        described_ids = {row[0]: row[1:] for row in self._db.execute(
            f"SELECT id, name, label FROM images WHERE id IN ({','.join('?' * len(ranking.ids))})",
            ranking.ids.tolist())}
        hits = []
        for n, image_id in enumerate(ranking.ids.tolist()):
            name, label = described_ids[image_id]
            distance = None if ranking.distances is None else float(ranking.distances[n])
            hits.append(SearchHit(image_id, name, label, int(ranking.hamming[n]), distance))
        timings = {"encode": described.pop("encode_seconds", 0.0), **ranking.timings,
                   "total": perf_counter() - start}
        mode = f"rerank:{rerank}" if rerank else ("radius" if radius is not None else "knn")
        return SearchResult(hits, described, mode, ranking.n_candidates, timings)

    # ------------------------------------------------------------------ consistency
    def check(self) -> CheckReport:
        """Verify that metadata, features and index agree; repairs nothing (``open`` does)."""
        self._require_open()
        db, problems, notes = self._db, [], []
        total, library, coded = db.execute(
            "SELECT COUNT(*), SUM(in_library), SUM(in_library AND code IS NOT NULL) FROM images").fetchone()
        library, coded = library or 0, coded or 0
        n_rows = len(self._features)
        counts = {"images": library, "removed": total - library, "searchable": coded, "feature_rows": n_rows}
        if self._features.n_bytes % self._features.row_bytes:
            problems.append(f"{FEATURES_FILE} ends in a partial row ({self._features.n_bytes} bytes)")
        bad_rows = db.execute("SELECT COUNT(*) FROM images WHERE feature_row < 0 OR feature_row >= ?",
                              (n_rows,)).fetchone()[0]
        if bad_rows:
            problems.append(f"{bad_rows} rows reference feature rows beyond the {n_rows} stored")
        bad_codes = db.execute("SELECT COUNT(*) FROM images WHERE code IS NOT NULL AND length(code) != ?",
                               (-(-self.n_bits // 8),)).fetchone()[0]
        if bad_codes:
            problems.append(f"{bad_codes} codes do not have {-(-self.n_bits // 8)} bytes")
        fitted = getattr(self.image_hasher, "is_fitted", True)
        if coded < library:
            (notes if not fitted else problems).append(f"{library - coded} images have no code yet")
        missing = [name for (name,) in db.execute("SELECT stored FROM images WHERE stored IS NOT NULL")
                   if not (self.path / IMAGES_DIR / name).is_file()]
        if missing:
            problems.append(f"{len(missing)} stored copies are missing from {IMAGES_DIR}/, e.g. {missing[0]}")
        if isinstance(self.image_hasher, FeatureHasher) and fitted:
            if self._state("fit_digest") != self.image_hasher.fit_digest:
                problems.append("the codes were made by another fit than the saved hasher's")
            problems += self._check_codes_match_features()
        problems += self._check_index()
        if self._read_index_state() != self._index_state():
            notes.append(f"{INDEX_FILE} is stale; it is rewritten on close")
        return CheckReport(counts, problems, notes)

    def _check_codes_match_features(self) -> list[str]:
        rows = self._db.execute("SELECT feature_row, code FROM images WHERE code IS NOT NULL AND feature_row < ?",
                                (len(self._features),)).fetchall()
        bad = 0
        for i in range(0, len(rows), _CHUNK):
            block = rows[i:i + _CHUNK]
            expected = self.image_hasher.codes_from_features(self._features.read([r[0] for r in block]))
            bad += sum(e.tobytes() != r[1] for e, r in zip(expected, block))
        return [f"{bad} codes differ from the codes of their stored features"] if bad else []

    def _check_index(self) -> list[str]:
        """Same ids in the same (insertion) order, and each id found at Hamming 0 from its SQLite code."""
        rows = self._db.execute("SELECT id, code FROM images WHERE in_library AND code IS NOT NULL ORDER BY id")
        rows = rows.fetchall()
        index = self._searchable_index()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        if not np.array_equal(index.ids(), ids):
            return [f"the index holds {len(index)} ids, not the {len(ids)} searchable ids in {META_DB} in id order"]
        if not len(ids):
            return []
        pick = np.sort(np.random.default_rng(0).permutation(len(ids))[:_CHECK_SAMPLE])
        codes = np.frombuffer(b"".join(rows[i][1] for i in pick), np.uint8).reshape(len(pick), -1)
        found = index.range_search(codes, 0)
        bad = sum(ids[i] not in hit_ids for i, (_, hit_ids) in zip(pick, found))
        return [f"{bad} of {len(pick)} sampled codes differ between {META_DB} and the index"] if bad else []

    # ------------------------------------------------------------------ internals
    def _recover(self) -> None:
        """Cut unreferenced feature rows, fill codes a crash left missing, load the index map."""
        top = self._db.execute("SELECT MAX(feature_row) FROM images").fetchone()[0]
        n_rows = 0 if top is None else top + 1
        if self._features.n_bytes > n_rows * self._features.row_bytes:
            log.info("%s: dropping %d feature rows of an unfinished batch", self.path,
                     len(self._features) - n_rows)
            self._features.truncate(n_rows)
        self._sync_codes()
        rows = np.array(self._db.execute("SELECT id, feature_row FROM images WHERE in_library ORDER BY id")
                        .fetchall(), dtype=np.int64).reshape(-1, 2)
        self._lib_ids, self._lib_rows = rows[:, 0].copy(), rows[:, 1].copy()
        if self._read_index_state() == self._index_state():
            try:
                self._index = load_index(self.path / INDEX_FILE, **self._index_options())
                ids = self._index.ids()  # a live backend (Milvus) may have changed behind the saved state
                saved = self._read_index_state()
                if len(ids) != saved["count"] or (len(ids) and ids.max() != saved["max_id"]):
                    raise ValueError(f"the index holds {len(ids)} ids, not the saved state's")
                self._index_generation = self._generation
            except (OSError, ValueError, RuntimeError, KeyError) as err:
                log.warning("%s: rebuilding the unreadable index (%s)", self.path, err)
                self._close_index()
                (self.path / INDEX_STATE).unlink()

    def _searchable_index(self) -> BinaryIndex:
        """The in-memory index, rebuilt from the codes in SQLite when it is behind."""
        self._require_open()
        if self._index is None or self._index_generation != self._generation:
            rows = self._db.execute("SELECT id, code FROM images WHERE in_library AND code IS NOT NULL ORDER BY id")
            rows = rows.fetchall()
            self._close_index()  # milvus-lite: one live client per collection; a server: drop, then refill
            index = self._new_index()
            if rows:
                codes = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(len(rows), -1)
                index.add(codes, np.array([r[0] for r in rows], dtype=np.int64))
            self._index, self._index_generation = index, self._generation
        return self._index

    def _index_options(self) -> dict:
        """The stored options of the backend, plus one FAISS thread for FAISS kinds (see ``_index_options``)."""
        return {**self.index_options, **_index_options(self.index_kind)}

    def _new_index(self) -> BinaryIndex:
        """An empty index. Milvus: the first build refuses a collection name already taken (someone
        else's data); later builds (rebuilds from SQLite) drop and recreate the collection."""
        if not _is_milvus(self.index_kind):
            return create_index(self.index_kind, self.n_bits, **self._index_options())
        first = self._state("milvus_created") is None
        if first:  # recorded before creating, so a crash right after creation still rebuilds with "drop"
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('milvus_created', '1')")
        try:
            return create_index(self.index_kind, self.n_bits, **self._index_options(),
                                if_exists="error" if first else "drop")
        except ValueError:
            if first:
                self._db.execute("DELETE FROM state WHERE key = 'milvus_created'")
            raise

    def _close_index(self) -> None:
        """Release the index (a Milvus connection; milvus-lite then frees its file)."""
        index, self._index, self._index_generation = self._index, None, -1
        if index is not None and hasattr(index, "close"):
            index.close()

    def _library_added(self, ids: np.ndarray, rows: np.ndarray, codes: np.ndarray | None) -> None:
        """Follow a committed insert in memory; the index only when it was current (else it is rebuilt)."""
        self._lib_ids = np.concatenate([self._lib_ids, ids])
        self._lib_rows = np.concatenate([self._lib_rows, rows])
        if codes is None:
            return
        index_ready = getattr(self._index, "is_trained", True)  # an IVF index trains on all codes at rebuild
        if self._index is not None and self._index_generation == self._generation - 1 and index_ready:
            self._index.add(np.ascontiguousarray(codes), ids)
            self._index_generation = self._generation

    @contextmanager
    def _transaction(self, searchable: bool) -> Iterator[sqlite3.Connection]:
        """One atomic SQLite transaction; ``searchable`` changes bump the generation the index is checked by."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            if searchable:
                self._db.execute("UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if searchable:
            self._generation += 1

    def _state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _index_state(self) -> dict:
        count, top = self._db.execute(
            "SELECT COUNT(*), MAX(id) FROM images WHERE in_library AND code IS NOT NULL").fetchone()
        state = {"generation": self._generation, "count": count, "max_id": top, "kind": self.index_kind}
        if self.index_options:  # another Milvus collection named in collection.json: rebuild there
            state["options"] = self.index_options
        return state

    def _read_index_state(self) -> dict | None:
        try:
            return json.loads((self.path / INDEX_STATE).read_text())
        except (OSError, ValueError):
            return None

    def _in_library(self, image_id: int) -> bool:
        pos = np.searchsorted(self._lib_ids, image_id)
        return bool(pos < len(self._lib_ids) and self._lib_ids[pos] == image_id)

    def _require_open(self) -> None:
        if self._db is None:
            raise ValueError(f"collection {self.path} is closed")

    def _require_searchable(self) -> None:
        self._require_open()
        if not getattr(self.image_hasher, "is_fitted", True):
            raise ValueError(f"collection {self.path} has no codes yet: add at least 2 images")

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r}, images={len(self)}, n_bits={self.n_bits}, index={self.index_kind!r})"


def _index_options(kind: str) -> dict:
    """One FAISS thread: a query is scanned by one thread anyway, and idle OpenMP threads spinning
    beside the other work of a busy machine made a 8,677-code scan 30x slower."""
    return {"threads": 1} if issubclass(INDEXES.get(kind), FaissBinaryIndex) else {}


def _is_milvus(kind: str) -> bool:
    return kind == "milvus"


def _checked_index_options(kind: str, n_bits: int, path: Path, options: dict | None) -> dict:
    """The options to store for a new collection's index, checked without touching any server."""
    options = dict(options or {})
    if "token" in options:
        raise ValueError("a Milvus token is never stored: set HASHSEEK_MILVUS_TOKEN instead")
    if "if_exists" in options:
        raise ValueError("if_exists is chosen by the collection (it rebuilds its index from SQLite)")
    if not _is_milvus(kind):
        create_index(kind, n_bits, **options)  # fail early on an unknown kind or option (in memory)
        return options
    import inspect

    from hashseek.index import milvus_index

    milvus_index._pymilvus()  # fail early when pymilvus is missing
    uri = options.get("uri")
    if uri is None:
        raise ValueError("the milvus index needs a uri: http://host:19530 or a milvus-lite file.db")
    uri = str(uri)
    if milvus_index.is_lite(uri):
        uri = str(Path(uri).expanduser().resolve())  # absolute: the collection opens from any directory
    options["uri"] = uri
    if options.get("collection_name") is None:
        base = re.sub(r"[^A-Za-z0-9_]", "_", path.resolve().name)[:200]
        if not base or base[0].isdigit():
            base = "c_" + base
        options["collection_name"] = f"{base}_{uuid.uuid4().hex[:8]}"
    inspect.signature(milvus_index.MilvusIndex).bind(n_bits, **options)  # unknown keywords raise TypeError
    milvus_index.check_settings(**options)  # the binding above left only its keywords
    return options


def _source_of(dataset: ImageDataset, image_id: str) -> str:
    """The original path of a folder image, ``archive::member`` for an archive member."""
    if isinstance(dataset, FolderDataset):
        return str(dataset.path(image_id))
    where = str(dataset.path) if isinstance(dataset, ArchiveDataset) else dataset.source_key()
    return f"{where}::{image_id}"


def _stored_name(item: _Pending) -> str | None:
    if item.upload is None:
        return None
    suffix = Path(item.name).suffix.lower() if is_image_name(item.name) else ""
    return item.source.removeprefix("upload:") + suffix


def _record(row: tuple) -> Record:
    values = list(row)
    values[-1] = bool(values[-1])
    return Record(*values)
