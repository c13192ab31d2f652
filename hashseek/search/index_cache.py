"""A collection's binary index: a cache of the codes in SQLite, loaded, followed, checkpointed or rebuilt.

The index file is used on open only if ``index.state.json`` names the current SQLite generation
(bumped by every change to the searchable codes) and the index holds the count and largest id that
state says; otherwise it is rebuilt from the codes in SQLite, which takes well under a second per
million codes.

A remote index (Milvus) keeps its codes on a server, where uploading them again costs about 100 s
per million, so it is reconciled rather than rebuilt: when it is behind SQLite (a crash between a
commit and the server write, an outage, a change made elsewhere) the server's ids and codes are
listed and only the difference is sent (``MilvusIndex.reconcile``). When most codes changed (a
refit, a reindex), the codes go to a NEW server collection, ``<collection_name>_<8 hex>``, and
one SQLite state write switches to it (state ``remote_index_live`` names the live collection
with the uri and configured name it belongs to); the old collection is dropped after the switch,
and one left over by a crash in between is dropped on the next switch. The first build refuses
a name already taken on the server (someone else's data). A follow-up write that the server
refuses for being down leaves the index behind: the images are committed in SQLite and the next
search reconciles, or answers UnavailableError (503) while the server is still down.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import numpy as np

from hashseek.core.atomic import atomic_path, atomic_write_json
from hashseek.core.errors import UnavailableError
from hashseek.index import INDEXES, BinaryIndex, create_index, load_index
from hashseek.search.layout import INDEX_FILE, INDEX_STATE
from hashseek.search.metadata import Metadata

log = logging.getLogger(__name__)
_REMOTE_CREATED = "remote_index_created"   # state key: the collection made its remote index once
_OLD_REMOTE_CREATED = "milvus_created"     # the same, as collections before the split recorded it
_REMOTE_LIVE = "remote_index_live"         # state key: JSON {uri, base, name} of the live server collection
_REMOTE_RETIRED = "remote_index_retired"   # state key: JSON list of replaced server collections to drop
SWITCH_SHARE = 0.5   # more changed codes than this share of the collection: fill a new one, then switch


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
        if self.backend.is_remote:   # the live server collection; ties by id, which grows with insertion
            return {**self.options, "collection_name": self.live_name(), "tie_order": "id"}
        return {**self.options, **({"threads": 1} if self.backend.threaded else {})}

    def live_name(self) -> str:
        """The server collection holding the codes: the configured name, or what a switch recorded for it."""
        base = self.options.get("collection_name")
        try:
            live = json.loads(self.meta.state(_REMOTE_LIVE) or "{}")
        except ValueError:
            live = {}
        if live.get("uri") == self.options.get("uri") and live.get("base") == base and live.get("name"):
            return str(live["name"])
        return str(base)

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
        except UnavailableError as err:   # the server is down: the first search attaches (or answers 503)
            log.warning("%s: the index server does not answer (%s)", self.path, err)
            self.close()
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            log.warning("%s: rebuilding the unreadable index (%s)", self.path, err)
            self.close()
            if not self.meta.read_only:  # a read-only open rebuilds in memory and rewrites nothing
                (self.path / INDEX_STATE).unlink(missing_ok=True)

    def current(self) -> BinaryIndex:
        """The in-memory index, rebuilt from the codes in SQLite when it is behind."""
        if self._index is None or self._generation != self.meta.generation:
            if self.backend.is_remote:
                generation = self.meta.generation
                self._index = self._reconciled()
                self._generation = generation
                return self._index
            ids, codes = self.meta.searchable_codes()
            self.close()
            index = self._new()
            if len(ids):
                index.add(codes, ids)
            self._index, self._generation = index, self.meta.generation
        return self._index

    def _reconciled(self) -> BinaryIndex:
        """The remote index made to hold SQLite's codes: the difference sent, or a new collection switched to."""
        ids, codes = self.meta.searchable_codes()
        index = self._index or self._new()
        if self.meta.read_only:   # a read-only open writes nothing, not even to the server
            return index
        plan = index.reconcile(ids, codes, max_changed_share=SWITCH_SHARE)
        if plan.get("refused"):
            index = self._switch(index, ids, codes)
        elif plan["added"] or plan["deleted"]:
            log.info("%s: the server collection caught up with SQLite (%s)", self.path, plan)
        return index

    def _switch(self, old: BinaryIndex, ids: np.ndarray, codes: np.ndarray) -> BinaryIndex:
        """Fill a new server collection, record it as live in one state write, then drop the old one."""
        self._drop_retired()
        name = f"{self.options['collection_name'][:240]}_{uuid.uuid4().hex[:8]}"
        self._retire(name)   # a crash before the switch leaves it behind: dropped next time
        new = create_index(self.kind, self.n_bits, **{**self.run_options(), "collection_name": name},
                           if_exists="drop")
        try:
            new.reconcile(ids, codes)
        except BaseException:
            new.close()
            raise
        live = {"uri": self.options.get("uri"), "base": self.options.get("collection_name"), "name": name}
        retired = self._retired()
        retired = [n for n in retired if n != name] + [old.collection_name]
        with self.meta.transaction(searchable=False) as db:
            self.meta.set_state(_REMOTE_LIVE, json.dumps(live), db)
            self.meta.set_state(_REMOTE_RETIRED, json.dumps(retired), db)
        old.close()
        self._index = new
        self._drop_retired()
        log.info("%s: %d codes written to the new server collection %s, which is now live", self.path, len(ids), name)
        return new

    def _retired(self) -> list[str]:
        try:
            return list(json.loads(self.meta.state(_REMOTE_RETIRED) or "[]"))
        except ValueError:
            return []

    def _retire(self, name: str) -> None:
        self.meta.set_state(_REMOTE_RETIRED, json.dumps(self._retired() + [name]))

    def _drop_retired(self) -> None:
        """Drop the replaced (or half-built) server collections still recorded; keep the live one."""
        live, left = self.live_name(), []
        for name in self._retired():
            if name == live:
                continue
            try:
                index = create_index(self.kind, self.n_bits, **{**self.run_options(), "collection_name": name},
                                     if_exists="attach")
                index.drop()
            except ValueError:     # already gone
                pass
            except UnavailableError:
                left.append(name)
        self.meta.set_state(_REMOTE_RETIRED, json.dumps(left) if left else None)

    def follow_add(self, ids: np.ndarray, codes: np.ndarray | None, replaced: np.ndarray | None = None) -> None:
        """After a committed insert of codes (that may have deleted the ``replaced`` ids in the same
        transaction): follow it when the index was current just before (an index that still needs
        training is rebuilt on all codes instead)."""
        if self._just_behind() and self._index.is_trained:
            try:
                if replaced is not None and len(replaced):
                    self._index.remove(np.asarray(replaced, dtype=np.int64))
                if codes is not None:
                    self._index.add(np.ascontiguousarray(codes), np.asarray(ids, dtype=np.int64))
            except UnavailableError as err:   # committed in SQLite: the next search reconciles
                log.warning("%s: the index server is down (%s); the index catches up when it is back", self.path, err)
                return
            self._generation = self.meta.generation

    def follow_remove(self, ids: np.ndarray) -> None:
        if self._just_behind():
            try:
                self._index.remove(np.asarray(ids, dtype=np.int64))
            except UnavailableError as err:
                log.warning("%s: the index server is down (%s); the index catches up when it is back", self.path, err)
                return
            self._generation = self.meta.generation

    def _just_behind(self) -> bool:
        return self._index is not None and self._generation == self.meta.generation - 1

    def checkpoint(self) -> None:
        """Write the index file (atomically) with the SQLite state it reflects, so the next open loads it.

        A full disk, or a server that is down, only logs a warning: the file is a cache, and the next open
        rebuilds (or reconciles) it."""
        try:
            index, state = self.current(), self.state()
        except UnavailableError as err:
            log.warning("%s: the index cache was not saved (%s); the next open reconciles it", self.path, err)
            return
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
        if self.backend.is_remote:
            state["live"] = self.live_name()
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
        """An empty local index; a remote one attached (it is reconciled next), or created when missing:
        with ``if_exists="error"`` the first time, so a name taken on the server is refused."""
        if not self.backend.is_remote:
            return create_index(self.kind, self.n_bits, **self.run_options())
        first = self.meta.state(_REMOTE_CREATED) is None and self.meta.state(_OLD_REMOTE_CREATED) is None
        if self.meta.read_only:   # reads what the server holds, writes nothing
            return create_index(self.kind, self.n_bits, **self.run_options(), if_exists="attach")
        if not first:
            try:
                return create_index(self.kind, self.n_bits, **self.run_options(), if_exists="attach")
            except ValueError as err:   # gone from the server, or not codes of this length: made again
                log.warning("%s: making the server collection %s again (%s)", self.path, self.live_name(), err)
                return create_index(self.kind, self.n_bits, **self.run_options(), if_exists="drop")
        self.meta.set_state(_REMOTE_CREATED, "1")   # before creating: a crash right after still attaches
        try:
            return create_index(self.kind, self.n_bits, **self.run_options(), if_exists="error")
        except ValueError:
            self.meta.set_state(_REMOTE_CREATED, None)
            raise
