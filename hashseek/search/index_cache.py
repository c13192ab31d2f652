"""A collection's binary index: a cache of the codes in SQLite, loaded, followed, checkpointed or rebuilt.

The index file is used on open only if ``index.state.json`` names the current SQLite generation
(bumped by every change to the searchable codes) and the index holds the count and largest id that
state says; otherwise it is rebuilt from the codes in SQLite, which takes well under a second per
million codes. A remote index (Milvus) keeps its codes on a server: the first build refuses a name
already taken there (someone else's data), later builds drop and refill it.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from hashseek.core.atomic import atomic_path, atomic_write_json
from hashseek.index import INDEXES, BinaryIndex, create_index, load_index
from hashseek.search.layout import INDEX_FILE, INDEX_STATE
from hashseek.search.metadata import Metadata

log = logging.getLogger(__name__)
_REMOTE_CREATED = "remote_index_created"   # state key: the collection made its remote index once
_OLD_REMOTE_CREATED = "milvus_created"     # the same, as collections before the split recorded it


def checked_options(kind: str, n_bits: int, path: Path, options: dict | None) -> dict:
    """The options a new collection at ``path`` stores for its index, checked by the backend itself."""
    return INDEXES.get(kind).check_options(n_bits, path, options)


class IndexCache:
    """The in-memory index of a collection and the file that caches it between runs."""

    def __init__(self, path: Path, meta: Metadata, kind: str, options: dict | None, n_bits: int):
        self.path, self.meta, self.kind, self.n_bits = path, meta, kind, n_bits
        self.options = dict(options or {})
        self.backend = INDEXES.get(kind)
        self._index: BinaryIndex | None = None
        self._generation = -1   # the SQLite generation the in-memory index reflects

    def run_options(self) -> dict:
        """The stored options, plus one thread for the scans of a threaded (FAISS) backend: a query is
        scanned by one thread anyway, and idle OpenMP threads spinning beside the other work of a
        busy machine made an 8,677-code scan 30x slower."""
        return {**self.options, **({"threads": 1} if self.backend.threaded else {})}

    def load(self) -> None:
        """Adopt the saved index file when it reflects the current SQLite state; else leave it to ``current``."""
        saved = self.saved_state()
        if saved != self.state():
            return
        try:
            self._index = load_index(self.path / INDEX_FILE, **self.run_options())
            ids = self._index.ids()  # a remote backend may have changed behind the saved state
            if len(ids) != saved["count"] or (len(ids) and ids.max() != saved["max_id"]):
                raise ValueError(f"the index holds {len(ids)} ids, not the saved state's {saved['count']}")
            self._generation = self.meta.generation
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            log.warning("%s: rebuilding the unreadable index (%s)", self.path, err)
            self.close()
            if not self.meta.read_only:  # a read-only open rebuilds in memory and rewrites nothing
                (self.path / INDEX_STATE).unlink(missing_ok=True)

    def current(self) -> BinaryIndex:
        """The in-memory index, rebuilt from the codes in SQLite when it is behind."""
        if self._index is None or self._generation != self.meta.generation:
            ids, codes = self.meta.searchable_codes()
            self.close()  # milvus-lite: one live client per collection; a server: drop, then refill
            index = self._new()
            if len(ids):
                index.add(codes, ids)
            self._index, self._generation = index, self.meta.generation
        return self._index

    def follow_add(self, ids: np.ndarray, codes: np.ndarray | None, replaced: np.ndarray | None = None) -> None:
        """After a committed insert of codes (that may have deleted the ``replaced`` ids in the same
        transaction): follow it when the index was current just before (an index that still needs
        training is rebuilt on all codes instead)."""
        if self._just_behind() and self._index.is_trained:
            if replaced is not None and len(replaced):
                self._index.remove(np.asarray(replaced, dtype=np.int64))
            if codes is not None:
                self._index.add(np.ascontiguousarray(codes), np.asarray(ids, dtype=np.int64))
            self._generation = self.meta.generation

    def follow_remove(self, ids: np.ndarray) -> None:
        if self._just_behind():
            self._index.remove(np.asarray(ids, dtype=np.int64))
            self._generation = self.meta.generation

    def _just_behind(self) -> bool:
        return self._index is not None and self._generation == self.meta.generation - 1

    def checkpoint(self) -> None:
        """Write the index file (atomically) with the SQLite state it reflects, so the next open loads it.

        A full disk only logs a warning: the file is a cache, and the next open rebuilds it."""
        index, state = self.current(), self.state()
        if self.saved_state() == state or not len(index):  # an empty index is rebuilt for free
            return
        sidecar = None
        try:
            with atomic_path(self.path / INDEX_FILE) as tmp:
                sidecar = tmp.with_name(tmp.name + ".json")
                index.save(tmp)
                os.replace(sidecar, self.path / (INDEX_FILE + ".json"))
            atomic_write_json(self.path / INDEX_STATE, state)
        except OSError as err:
            if sidecar is not None:
                sidecar.unlink(missing_ok=True)
            log.warning("%s: the index cache was not saved (%s); the next open rebuilds it", self.path, err)

    def state(self) -> dict:
        count, top = self.meta.searchable_summary()
        state = {"generation": self.meta.generation, "count": count, "max_id": top, "kind": self.kind}
        if self.options:  # another remote collection named in collection.json: rebuild there
            state["options"] = self.options
        return state

    def saved_state(self) -> dict | None:
        try:
            return json.loads((self.path / INDEX_STATE).read_text())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Release the index (a remote connection; milvus-lite then frees its file)."""
        index, self._index, self._generation = self._index, None, -1
        if index is not None:
            index.close()

    def _new(self) -> BinaryIndex:
        """An empty index; a remote one is created with ``if_exists`` "error" the first time, "drop" after."""
        if not self.backend.is_remote:
            return create_index(self.kind, self.n_bits, **self.run_options())
        first = self.meta.state(_REMOTE_CREATED) is None and self.meta.state(_OLD_REMOTE_CREATED) is None
        if first:  # recorded before creating, so a crash right after creation still rebuilds with "drop"
            self.meta.set_state(_REMOTE_CREATED, "1")
        try:
            return create_index(self.kind, self.n_bits, **self.run_options(), if_exists="error" if first else "drop")
        except ValueError:
            if first:
                self.meta.set_state(_REMOTE_CREATED, None)
            raise
