"""A collection: one self-contained directory of searchable images that a user can copy, open and close.

Its files are listed in ``search.layout``. Crash safety: SQLite is the truth
(``search.metadata``); everything else can be checked or rebuilt from it. A batch of images is
done when its SQLite transaction commits: its features are appended to ``features.f16`` and
fsynced first (``search.store``), so a committed row always finds its feature row. On open,
feature rows no committed row references are cut off, codes a crash left missing are filled,
the index is loaded or rebuilt (``search.index_cache``), and a reindex killed after its switch
is finished (``search.reindex``).

Removal keeps the row as a tombstone (``in_library = 0``) with its features, so adding the
same source again restores it without decoding it, under a new id: ids grow with
insertion, which is what the index's tie rule (insertion order) then follows.
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from hashseek.core.errors import ConflictError, InvalidInputError, NotFoundError
from hashseek.core.hasher import ImageHasher, load_image_hasher
from hashseek.core.paths import disk_bytes
from hashseek.data.datasets import ImageDataset, open_images
from hashseek.search import adding, reindex as reindexing, sync as syncing
from hashseek.search.adding import AddReport, Pending
from hashseek.search.checker import CheckReport, check
from hashseek.search.collection_models import ModelMethods
from hashseek.search.collection_search import SearchMethods
from hashseek.search.duplicates import DuplicateReport, find_duplicates
from hashseek.search.feature_hasher import FeatureHasher
from hashseek.search.index_cache import checked_options
from hashseek.search.layout import (COLLECTION_JSON, FEATURES_FILE, HASHER_DIR, IMAGES_DIR, INDEX_FILE, INDEX_STATE,
                                    META_DB, make_collection, read_config)
from hashseek.search.library import ImageFiles, LibraryDataset
from hashseek.search.metadata import Metadata, NewRow, Record
from hashseek.search.refit_policy import RefitPolicy, fit_summary, store_policy, stored_policy
from hashseek.search.repair import RepairReport, repair
from hashseek.search.staged_reindex import StagedReindex
from hashseek.search.storage import os_error, sqlite_error, writer_lock
from hashseek.search.store import LibraryStore

__all__ = ["AddReport", "CheckReport", "Collection", "Record", "COLLECTION_JSON", "FEATURES_FILE", "HASHER_DIR",
           "IMAGES_DIR", "INDEX_FILE", "INDEX_STATE", "META_DB"]

log = logging.getLogger(__name__)


class Collection(ModelMethods, SearchMethods):
    """An image library searchable by Hamming distance between codes, re-ranked by float features.

    Make one with ``Collection.create``, reopen it with ``Collection.open``; use it as a
    context manager (or call ``close``) so the index cache is written back. One process
    at a time may hold a collection open; calls may come from any thread but must not
    overlap (a server serialises them). Its searches are ``SearchMethods`` (``search.collection_search``),
    its model's refit, reindex and restore ``ModelMethods`` (``search.collection_models``).
    """

    def __init__(self, path: Path, batch_size: int = 32, workers: int | None = None,
                 image_hasher: ImageHasher | None = None, read_only: bool | None = False, damaged_ok: bool = False):
        """Use ``create`` or ``open``."""
        self.path, self.batch_size, self.workers, self._damaged_ok = path, batch_size, workers, damaged_ok
        self.read_only, self._lock = writer_lock(path, read_only)
        self._meta: Metadata | None = None
        self._staged: StagedReindex | None = None
        repair = f"hashseek check --repair {path}"
        try:
            self._meta = Metadata(path / META_DB, read_only=self.read_only, repair=repair)
            self._files = ImageFiles(path)
            reindexing.finish_swap(path, self._meta)   # a reindex killed after its switch (read-only: refused)
            self._load_model(image_hasher)
        except BaseException as err:
            if self._meta is not None:
                self._meta.close()
            if self._lock is not None:
                self._lock.close()
            if isinstance(err, sqlite3.Error) and (typed := sqlite_error(err, path / META_DB, repair)):
                raise typed from err
            raise

    def _load_model(self, image_hasher: ImageHasher | None = None) -> None:
        """Read collection.json, the hasher, the features and the index; repair what a crash left."""
        self.config = read_config(self.path)
        self.image_hasher = image_hasher or load_image_hasher(self.path / HASHER_DIR)
        self.n_bits = int(self.config["n_bits"])
        self.index_kind = self.config["index"]
        self.index_options = dict(self.config.get("index_options") or {})
        self._store = LibraryStore(self.path, self._meta, self.config, self.image_hasher, self._damaged_ok)

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, path: str | Path, image_hasher: ImageHasher | None = None, n_bits: int = 64,
               backbone: str = "efficientnet_lite0", index: str = "flat", hasher: str = "itq", seed: int = 0,
               index_options: dict | None = None, pooling: str | None = None,
               refit_policy: RefitPolicy | None = None, **kwargs) -> "Collection":
        """A new empty collection. Without ``image_hasher``, codes come from a pretrained ``backbone``
        and a ``hasher`` (ITQ) of ``n_bits`` fitted on the images added (zero training), refitted as the
        library grows by ``refit_policy`` (default ``REFIT_DEFAULTS``, see ``search.refit_policy``); ``pooling``
        aggregates the backbone's conv map instead of its pooled vector (``gem``, ``crow``, ...).

        ``index`` is the backend of the codes: a FAISS kind (``flat``, ``hash``, ``multihash``,
        ``ivf``) or ``milvus`` with ``index_options={"uri": ..., "collection_name": ...}``
        (optional: ``index_type``, ``nlist``, ``nprobe``). The options are stored in
        ``collection.json``; a Milvus token is not: it comes from ``HASHSEEK_MILVUS_TOKEN``.
        """
        path = Path(path).expanduser()
        if (path / COLLECTION_JSON).exists():
            raise ConflictError(f"{path} already holds a collection; use Collection.open")
        image_hasher = image_hasher or FeatureHasher(backbone, n_bits, method=hasher, seed=seed, pooling=pooling)
        index_options = checked_options(index, image_hasher.n_bits, path, index_options)  # fail early
        if refit_policy is not None and not image_hasher.can_refit:
            raise InvalidInputError("a refit policy is for zero-training collections; a trained model is not refitted")
        try:
            make_collection(path, image_hasher, index, index_options)
        except OSError as err:   # a full or read-only disk: collection.json, written last, is not there
            raise os_error(err, path, "creating the collection") or err
        collection = cls(path, image_hasher=image_hasher, **kwargs)
        if image_hasher.can_refit:
            store_policy(collection._meta, refit_policy or stored_policy(collection._meta))
        return collection

    @classmethod
    def open(cls, path: str | Path, **kwargs) -> "Collection":
        """Reopen a collection, repairing whatever an interrupted run left (see the module docstring).

        ``read_only=True`` takes no lock and writes nothing (what needs recovery, ``check`` reports);
        ``None``: read-only when the directory cannot be written. A damaged file is a ``DamagedError``
        naming it and ``hashseek check --repair`` unless ``damaged_ok`` (to check or repair it).
        """
        path = Path(path).expanduser()
        read_config(path)   # says why this is not a collection, before anything is opened
        return cls(path, **kwargs)

    def close(self) -> None:
        """Write the index cache back (unless read-only) and release the collection."""
        if self._meta is None:
            return
        try:
            if not self.read_only:
                self.checkpoint()
        finally:
            self._store.close()
            self._meta.close()
            self._meta = None
            if self._lock is not None:
                self._lock.close()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def checkpoint(self) -> None:
        """Write the index file (atomically) with the SQLite state it reflects, so the next open loads it."""
        self._require_open()
        self._store.index.checkpoint()

    # ------------------------------------------------------------------ adding
    def add_paths(self, paths: Sequence[str | Path], labels: Sequence[str | None] | None = None, *,
                  progress: bool = True, on_batch: Callable[[list[str]], None] | None = None) -> AddReport:
        """Add image files by path (the resolved path is the source key)."""
        return self._add(adding.from_paths(paths, labels), progress, on_batch)

    def add_folder(self, path: str | Path, **kwargs) -> AddReport:
        """Add a folder or tar archive of images; the folder holding an image names its label."""
        return self.add_dataset(open_images(path), **kwargs)

    def add_dataset(self, dataset: ImageDataset, ids: Sequence[str] | None = None, *, progress: bool = True,
                    on_batch: Callable[[list[str]], None] | None = None) -> AddReport:
        """Add a dataset's images (all, or ``ids`` in that order), labelled by their class names; the files it
        could not list as images (``dataset.left_out``: a bad name) are reported unreadable with all of it, and
        those whose names are no image's (``dataset.ignored``) are counted."""
        report = self._add(adding.from_dataset(dataset, ids), progress, on_batch)
        if ids is None:
            report.failed += list(dataset.left_out.items())
            report.not_images = dict(dataset.ignored)
        return report

    def add_images(self, images: Sequence[bytes], names: Sequence[str] | None = None,
                   labels: Sequence[str | None] | None = None, *, store: bool = True, progress: bool = False,
                   on_batch: Callable[[list[str]], None] | None = None) -> AddReport:
        """Add uploaded image bytes; with ``store`` a copy is kept under ``images/`` (named by content hash).

        The source key is the content hash, so uploading the same bytes twice adds one image.
        """
        return self._add(adding.from_uploads(images, names, labels, store), progress, on_batch)

    def add_features(self, features: np.ndarray, codes: np.ndarray | None, sources: Sequence[str],
                     names: Sequence[str], labels: Sequence[str | None]) -> list[int]:
        """Rows whose features and packed codes were computed elsewhere (imports, synthetic scale tests).

        They have no image file to show; ``sources`` must be new unique keys. One atomic batch.
        ``codes`` None: a zero-training collection codes the features itself, as it does added images
        (refit policy included).
        """
        self._require_open()
        if codes is None and not self.image_hasher.can_refit:
            raise InvalidInputError("a trained model's collection cannot code features: give their codes")
        if not len(features) == len(sources) == len(names) == len(labels) or (codes is not None and
                                                                              len(codes) != len(features)):
            raise InvalidInputError("features, codes, sources, names and labels must have the same length")
        rows = [NewRow(name, source, None, label) for source, name, label in zip(sources, names, labels)]
        if codes is not None:   # the caller's codes: no refit may replace them
            return self._store.commit(rows, features, np.asarray(codes, np.uint8))
        fitted = self.image_hasher.is_fitted
        codes = self.image_hasher.codes_from_features(np.asarray(features, np.float32)) if fitted else None
        ids = self._store.commit(rows, features, codes)
        self._refit_if_due()
        return ids

    def sync(self, folder: str | Path, *, labels_from_folders: bool = False, allow_empty: bool = False,
             progress: bool = True) -> syncing.SyncReport:
        """Bring the images that came from ``folder`` in step with it: new files added, deleted ones removed,
        rewritten ones re-encoded, the rest untouched (``search.sync``). ``labels_from_folders``: the folder
        holding a file names its label (else labels are left as they are). A folder without images is
        refused unless ``allow_empty`` (it would remove everything that came from it)."""
        self._require_open()
        self._store.require_writable()   # before the folder is read
        report = syncing.sync_folder(self._store, self.image_hasher, folder, self.path, labels_from_folders,
                                     allow_empty, self.batch_size, self.workers, progress)
        self._refit_if_due()
        self._store.index.current()
        return report

    def _add(self, pending: list[Pending], progress: bool, on_batch: Callable[[list[str]], None] | None) -> AddReport:
        self._require_open()
        self._store.require_writable()   # before any image is decoded
        report = adding.add_pending(self._store, self.image_hasher, pending, self.batch_size, self.workers,
                                    progress, on_batch)
        self._refit_if_due()
        self._store.index.current()
        return report

    # ------------------------------------------------------------------ editing and reading
    def remove(self, ids: Iterable[int]) -> int:
        """Take images out of the library (and delete their stored copies); unknown ids raise NotFoundError."""
        self._require_open()
        ids = sorted({int(i) for i in ids})
        self._store.remove(ids)
        return len(ids)

    def relabel(self, image_id: int, label: str | None) -> None:
        self._require_open()
        self._store.relabel(image_id, label)

    def get(self, image_id: int) -> Record:
        """The record of an image, removed ones included (``in_library`` says which)."""
        self._require_open()
        record = self._meta.get(image_id)
        if record is None:
            raise NotFoundError(f"no image with id {image_id}")
        return record

    def list(self, offset: int = 0, limit: int = 100, label: str | None = None) -> list[Record]:
        """Library records in id (= insertion) order, optionally of one label."""
        self._require_open()
        return self._meta.records(offset, limit, label)

    def image_bytes(self, image: int | Record) -> bytes:
        """The bytes of a library image, read where its metadata says it is (never from a request path).

        Given a ``Record`` it touches no SQLite, so it may run beside other calls.
        """
        return self._files.read(image if isinstance(image, Record) else self.get(image))

    def duplicates(self, max_hamming: int | None = None, max_distance: float | None = None,
                   min_similarity: float | None = None) -> DuplicateReport:
        """Groups of exact and near-duplicate library images, each with a suggested keeper (largest, then
        oldest); settings left None come from ``DUPLICATE_DEFAULTS`` (see ``search.duplicates``)."""
        self._require_open()
        return find_duplicates(self._meta, self._store, self._files.read, max_hamming, max_distance, min_similarity)

    def content_ids(self, sha256_hex: str) -> list[int]:
        """Library ids whose image bytes have this sha256 (hex): is a query image in the library?"""
        self._require_open()
        return self._meta.ids_with_content(sha256_hex)

    def as_dataset(self) -> LibraryDataset:
        """The library images with their labels as an ``ImageDataset`` (ids are library ids as strings,
        unlabelled images get label -1), e.g. to train a model on a collection."""
        return LibraryDataset(self.path.name, self._library_records(), self._files, self.config["created"])

    def _library_records(self) -> list[Record]:
        self._require_open()
        return self._meta.records(0, -1)

    def __len__(self) -> int:
        return len(self._store.ids)

    def info(self) -> dict:
        """Counts, classes (and those a trained model never trained on), code length, disk use, index kind and
        how the codes are made."""
        self._require_open()
        classes = self._meta.classes()
        unlabelled = classes.pop("", 0)
        disk = disk_bytes(self.path)   # thumbnails may be written meanwhile
        # a trained model's codes place labels it never trained on by what it learned of others: say which
        trained = set(getattr(self.image_hasher, "trained_classes", None) or ())
        return {"path": str(self.path), "images": len(self), **self._meta.counts(), "unlabelled": unlabelled,
                "classes": classes,
                "untrained_classes": {c: n for c, n in classes.items() if c not in trained} if trained else {},
                "n_bits": self.n_bits, "feature_dim": self._store.features.dim,
                "index": self.index_kind, "index_options": self.index_options, "bytes_on_disk": disk,
                "hasher": self.image_hasher.describe(), "created": self.config["created"],
                "fit": fit_summary(self._meta, self.image_hasher) if self.image_hasher.can_refit else None,
                "previous_hasher": self.previous_hasher}

    def check(self) -> CheckReport:
        """Verify that metadata, features and index agree; repairs nothing (``open`` and ``repair`` do)."""
        self._require_open()
        store = self._store
        return check(self.path, self._meta, store.features, store.index, self.image_hasher, self.n_bits)

    def repair(self, progress: bool = True) -> RepairReport:
        """Rebuild what can be rebuilt (``search.repair``: feature rows re-encoded, index rebuilt), then check."""
        self._require_open()
        self._store.require_writable()
        repaired, lost = repair(self._store, self.image_hasher, self._files, f"hashseek remove {self.path}",
                                self.batch_size, progress)
        return RepairReport(repaired, lost, self.check())

    def _require_open(self) -> None:
        if self._meta is None:
            raise ConflictError(f"collection {self.path} is closed")

    def __repr__(self) -> str:
        return f"Collection({str(self.path)!r}, images={len(self)}, n_bits={self.n_bits}, index={self.index_kind!r})"
