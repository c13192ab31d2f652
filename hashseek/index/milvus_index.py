"""Milvus backend ``milvus``: the codes live in a Milvus collection, so the index can outgrow one machine.

``create_index("milvus", n_bits, uri=..., collection_name="hashseek")`` makes a collection of
``id`` (INT64 primary key), ``code`` (BINARY_VECTOR of ``8 * ceil(n_bits/8)`` bits, HAMMING),
``seq`` (INT64 insertion number), ``label`` and ``name`` (VARCHAR, ``""`` when absent).
``uri`` is a server (``http://host:19530``, Zilliz Cloud) or a milvus-lite file (``*.db``,
one process per file); the token comes from ``token=`` or ``HASHSEEK_MILVUS_TOKEN`` and is
never saved. ``save`` flushes and writes the sidecar; ``load_index`` reconnects.

Tie rule. Milvus orders equal distances arbitrarily, so every hit carries its ``seq`` and
results are sorted here by (distance, seq). A query asks for ``2k`` hits; only when the
k-th distance still ties the last hit (the tie group may go on) is it asked again for 4x
more, up to Milvus's cap of 16384 hits per query. Past the cap, the missing distance levels
are gathered by range searches over halves of the seq range until none is cut, which is
exact whatever the tie group's size (many round trips: short codes on big collections).

Range search. For HAMMING Milvus keeps ``range_filter <= d < radius`` (checked on milvus-lite
2.5.1); ours is inclusive, so it asks for ``radius + 1``. It works on binary vectors in
milvus-lite 2.5.1, so no emulation is needed.

One writer. The ids are mirrored here (insertion order) for duplicate checks and ``ids()``;
Milvus does not refuse a duplicate primary key, so only one process may add to or remove
from a collection. Readers that ``load_index`` later see its state at that time.
Consistency. Searches use Milvus's ``Session`` level by default: they see every add and remove
made through this index (the one writer), and other processes' writes within the server's time
tick (~0.2 s). ``consistency="Strong"`` makes every search wait for that tick (about 0.2 s per
search on a server, measured); counts and listings are always Strong.

Faults. While a server does not answer, every call raises ``UnavailableError`` (a 503 in the
service); the client reconnects by itself, and a collection that a restarted server has not
loaded yet is loaded on the first call that needs it. An add cut by a failure leaves the server
holding part of it: ``reconcile(ids, codes)`` then lists what the server holds and sends only
the difference (missing rows added; extra, duplicated or changed rows deleted), which is also
how a collection catches up after a crash or an outage instead of uploading everything again.
``tie_order="id"`` (what collections use: their ids grow with insertion) stores ``seq = id``,
so a row re-sent by ``reconcile`` keeps its place among ties.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from hashseek.core.errors import InvalidInputError, UnavailableError
from hashseek.index.base import INDEXES, MISSING_DISTANCE, BinaryIndex
from hashseek.index.milvus_connect import (INSTALL_HINT, LABEL_BYTES, NAME_BYTES, TOKEN_ENV, check_label, check_name,
                                           check_settings, connect, import_pymilvus, is_lite, label_filter,
                                           quiet_pymilvus, remote_errors, text_column)

MAX_HITS = 16384  # Milvus refuses a larger limit (top-k) per query, for search and query alike
_BATCH = 50_000  # rows per insert / ids per delete request (a 64-bit row is ~40 B on the wire)
_RESULTS_PER_CALL = 1 << 18  # hits per search call (queries x limit), bounds each response

_LITE_USERS: dict[str, int] = {}  # open indexes per milvus-lite file in this process

Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # distances int32, ids int64, seqs int64


def _concat(parts: list[Hits]) -> Hits:
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(3))  # type: ignore[return-value]


def _positions(ids: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Index in ``ids`` of each of ``found``, -1 where absent."""
    if not len(ids):
        return np.full(len(found), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids, found, sorter=order), len(ids) - 1)
    hit = ids[order[pos]] == found
    return np.where(hit, order[pos], -1)


def _cut(distances: np.ndarray, k: int, fetch: int) -> bool:
    """A full list whose k-th distance ties its last (or that is shorter than k): more may tie."""
    if len(distances) < fetch:
        return False
    return fetch < k or np.partition(distances, k - 1)[k - 1] == distances.max()


@INDEXES.register("milvus")
class MilvusIndex(BinaryIndex):
    """Binary codes in a Milvus collection, searched by Milvus with hashseek's tie rule.

    ``if_exists`` says what to do when the collection is already there: ``"error"`` (the
    default, so a mistyped name cannot wipe a cluster's data), ``"drop"`` (start empty, as
    a rebuild wants) or ``"attach"`` (adopt it, as ``load`` does). ``index_type`` is
    ``BIN_FLAT`` (exact) or ``BIN_IVF_FLAT`` (``nlist`` lists, ``nprobe`` scanned per query,
    approximate); milvus-lite builds only BIN_FLAT and falls back to it with a warning.
    """

    kind = "milvus"
    is_remote = True
    _STORED_OPTIONS = ("uri", "collection_name", "index_type", "nlist", "nprobe", "consistency")

    @classmethod
    def check_options(cls, n_bits: int, path: str | Path, options: dict[str, Any] | None) -> dict[str, Any]:
        """The options a collection at ``path`` stores: the uri made absolute for a milvus-lite file, a
        ``collection_name`` made from the directory name when none is given. Never stores a token."""
        options = dict(options or {})
        if "token" in options:
            raise InvalidInputError(f"a Milvus token is never stored: set {TOKEN_ENV} instead")
        if "if_exists" in options:
            raise InvalidInputError("if_exists is chosen by the collection (it rebuilds its index from SQLite)")
        unknown = sorted(set(options) - set(cls._STORED_OPTIONS))
        if unknown:
            raise InvalidInputError(f"unknown milvus index options {unknown}; known: {list(cls._STORED_OPTIONS)}")
        import_pymilvus()  # fail early when pymilvus is missing
        if options.get("uri") is None:
            raise InvalidInputError("the milvus index needs a uri: http://host:19530 or a milvus-lite file.db")
        uri = str(options["uri"])
        options["uri"] = str(Path(uri).expanduser().resolve()) if is_lite(uri) else uri
        if options.get("collection_name") is None:
            base = re.sub(r"[^A-Za-z0-9_]", "_", Path(path).resolve().name)[:200]
            if not base or base[0].isdigit():
                base = "c_" + base
            options["collection_name"] = f"{base}_{uuid.uuid4().hex[:8]}"
        try:
            check_settings(**options)
        except ValueError as err:
            raise InvalidInputError(str(err)) from None
        return options

    def __init__(self, n_bits: int, uri: str, token: str | None = None, collection_name: str = "hashseek",
                 index_type: str = "BIN_FLAT", nlist: int = 1024, nprobe: int = 16,
                 if_exists: Literal["error", "drop", "attach"] = "error",
                 tie_order: Literal["insertion", "id"] = "insertion",
                 consistency: Literal["Session", "Strong", "Bounded"] = "Session"):
        super().__init__(n_bits)
        self.storage_bytes = self.n_bytes  # Milvus takes any multiple of 8 bits: pad only a partial byte
        uri = str(uri) if isinstance(uri, (str, Path)) else ""
        check_settings(uri, collection_name, index_type, nlist, nprobe, consistency)
        if if_exists not in ("error", "drop", "attach"):
            raise ValueError(f"if_exists must be 'error', 'drop' or 'attach', got {if_exists!r}")
        if tie_order not in ("insertion", "id"):
            raise ValueError(f"tie_order must be 'insertion' or 'id', got {tie_order!r}")
        self.tie_order, self.consistency = tie_order, consistency
        if is_lite(uri):  # absolute, so a saved sidecar reconnects from any working directory
            path = Path(uri).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = str(path)
        self.uri, self.collection_name = uri, collection_name
        self.index_type, self.nlist, self.nprobe = index_type, nlist, nprobe
        self._ids = np.empty(0, dtype=np.int64)  # insertion order, as ``seq`` ranks them
        self._unsure = False   # a write was cut by an outage: the server may hold part of it
        self._schema: dict[str, Any] | None = None   # the collection's description, for column inserts
        self._next_seq = 0
        self._metadata: tuple[Sequence[str | None] | None, Sequence[str | None] | None] = (None, None)
        self._client: Any = connect(uri, token if token is not None else os.environ.get(TOKEN_ENV))
        if is_lite(uri):
            _LITE_USERS[uri] = _LITE_USERS.get(uri, 0) + 1
        try:
            exists = self.client.has_collection(collection_name)
            if exists and if_exists == "error":
                raise ValueError(f"Milvus collection {collection_name!r} already exists at {uri}: "
                                 f"load_index(path) reopens a saved index, if_exists='drop' replaces it")
            if if_exists == "attach":
                if not exists:
                    raise ValueError(f"no Milvus collection {collection_name!r} at {uri}")
                self._attach()
            else:
                if exists:
                    self.client.drop_collection(collection_name)
                self._create()
        except BaseException:
            self.close()
            raise
        self.exact = self.index_type == "BIN_FLAT"

    # ----------------------------------------------------------------- public API
    def __len__(self) -> int:
        """Rows in the collection, counted by Milvus."""
        rows = self.client.query(self.collection_name, filter="", output_fields=["count(*)"],
                                 consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def add(self, codes: np.ndarray, ids: np.ndarray, labels: Sequence[str | None] | None = None,
            names: Sequence[str | None] | None = None) -> None:
        """Store codes under new ids, with optional ``labels`` (for ``search(label=...)``) and ``names``.

        After an add or remove cut by an ``UnavailableError``, the next add first asks the server what it
        holds: calling it again with the cut batch sends only the rows that did not arrive."""
        if self._unsure:
            codes, ids, labels, names = self._resume(codes, ids, labels, names)
        self._metadata = (labels, names)
        try:
            super().add(codes, ids)
        finally:
            self._metadata = (None, None)

    def remove(self, ids: np.ndarray) -> int:
        if self._unsure:
            self._resume(np.empty((0, self.n_bytes), np.uint8), np.empty(0, np.int64), None, None)
        return super().remove(ids)

    def _resume(self, codes: np.ndarray, ids: np.ndarray, labels: Any, names: Any) -> tuple[Any, Any, Any, Any]:
        """Mirror what the server holds after a cut write; the part of this batch it does not hold yet
        (rows of the batch held with another code, and ids held twice, are deleted to be sent again)."""
        ids = np.asarray(ids, dtype=np.int64)
        want = self._prepare_codes(codes, "codes")
        have_ids, have_seqs, have_codes = self._listing(codes=True)
        unique, counts = np.unique(have_ids, return_counts=True)
        where = _positions(ids, have_ids) if len(ids) == len(want) else np.full(len(have_ids), -1)
        arrived = where >= 0
        arrived[arrived] = (have_codes[arrived] == want[where[arrived]]).all(axis=1)
        bad = ((where >= 0) & ~arrived) | np.isin(have_ids, unique[counts > 1])
        self._delete(np.unique(have_ids[bad]))
        self._mirror(have_ids[~bad], have_seqs[~bad])
        self._unsure = False
        todo = ~np.isin(ids, have_ids[arrived & ~bad])
        if todo.all():
            return codes, ids, labels, names
        pick = lambda column: None if column is None else [v for v, t in zip(column, todo) if t]  # noqa: E731
        return codes[todo], ids[todo], pick(labels), pick(names)

    def search(self, codes: np.ndarray, k: int, label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """k nearest by (Hamming distance, insertion order); ``label`` keeps only items added with it."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        where = "" if label is None else label_filter(label)
        queries = self._prepare_codes(codes, "queries")
        if len(queries) == 0:
            return np.empty((0, k), np.int32), np.empty((0, k), np.int64)
        return self._search_where(queries, int(k), where)

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def params(self) -> dict[str, Any]:
        return {"uri": self.uri, "collection_name": self.collection_name, "index_type": self.index_type,
                "nlist": self.nlist, "nprobe": self.nprobe, "tie_order": self.tie_order,
                "consistency": self.consistency}

    def reconcile(self, ids: np.ndarray, codes: np.ndarray, max_changed_share: float | None = None) -> dict[str, Any]:
        """Make the collection hold exactly ``ids`` (in insertion order) with ``codes`` by sending only the
        difference: rows the server lacks are added; extra, duplicated or changed rows are deleted (a
        changed one is added again). With ``tie_order="insertion"``, rows past the first one out of
        place are sent again too, so the tie order stays that of ``ids``. When more than
        ``max_changed_share`` of ``ids`` are held with another code (a refit), nothing is sent and the
        answer says ``refused``: a new collection is then cheaper. Returns what it did."""
        started = time.perf_counter()
        ids = np.asarray(ids, dtype=np.int64)
        want = self._prepare_codes(codes, "codes")
        if len(ids) != len(want):
            raise InvalidInputError(f"got {len(want)} codes but {len(ids)} ids")
        have_ids, have_seqs, have_codes = self._listing(codes=True)
        listed = len(have_ids)
        unique, counts = np.unique(have_ids, return_counts=True)
        where = _positions(ids, have_ids)                  # each listed row's place in ``ids``, -1 if none
        same = where >= 0
        same[same] = (have_codes[same] == want[where[same]]).all(axis=1)
        if self.tie_order == "id":
            same &= have_seqs == have_ids
        changed = int(((where >= 0) & ~same).sum())
        if max_changed_share is not None and changed > max_changed_share * max(len(ids), 1):
            return {"listed": listed, "changed": changed, "refused": True,
                    "seconds": round(time.perf_counter() - started, 3)}
        same &= ~np.isin(have_ids, unique[counts > 1])
        if self.tie_order == "insertion" and same.any():  # kept rows must be the first of ``ids``, in order
            kept = where[same][np.argsort(have_seqs[same], kind="stable")]
            gaps = np.flatnonzero(kept != np.arange(len(kept)))
            same &= where < (gaps[0] if len(gaps) else len(ids))   # from the first one out of place on: re-sent
        doomed = np.unique(have_ids[~same])
        self._delete(doomed)
        kept_ids = have_ids[same]
        self._mirror(kept_ids, have_seqs[same])
        self._unsure = False
        missing = np.flatnonzero(~np.isin(ids, kept_ids))
        if len(missing):
            self.add(np.ascontiguousarray(codes[missing]), ids[missing])
        return {"listed": listed, "changed": changed, "deleted": int(len(doomed)), "added": int(len(missing)),
                "seconds": round(time.perf_counter() - started, 3)}

    def wait_indexed(self, timeout: float = 600.0) -> float:
        """Flush, then wait until the server has built the index over every row (a search scans rows
        not indexed yet one by one: exact but slow for BIN_IVF_FLAT). Returns the seconds waited."""
        started = time.perf_counter()
        self.client.flush(self.collection_name)
        while time.perf_counter() - started < timeout:
            info = self.client.describe_index(self.collection_name, "code")
            if int(info.get("pending_index_rows", 0)) == 0 and int(info.get("indexed_rows", 0)) >= int(
                    info.get("total_rows", 0)):
                return time.perf_counter() - started
            time.sleep(0.5)
        raise UnavailableError(f"the Milvus server at {self.uri} did not finish indexing {self.collection_name!r} "
                               f"in {timeout:.0f} s")

    def drop(self) -> None:
        """Delete the collection from the server (a replaced one after a switch), then close."""
        self.client.drop_collection(self.collection_name)
        self.close()

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "MilvusIndex":
        """Reconnect to the collection a saved index names; pass ``token=`` or set ``HASHSEEK_MILVUS_TOKEN``."""
        return super().load(path, **{**overrides, "if_exists": "attach"})  # type: ignore[return-value]

    @property
    def client(self) -> Any:
        """The ``pymilvus.MilvusClient``, for what hashseek does not wrap (e.g. reading ``name``)."""
        if self._client is None:
            raise ValueError(f"the Milvus index on {self.collection_name!r} is closed")
        return self._client

    def close(self) -> None:
        """Release the connection; closing the last index on a milvus-lite file stops its embedded
        server, which otherwise keeps the file locked against other processes until this one exits."""
        if self._client is None:
            return
        self._client.close()
        self._client = None
        if is_lite(self.uri):
            _LITE_USERS[self.uri] -= 1
            if not _LITE_USERS[self.uri]:
                del _LITE_USERS[self.uri]
                from milvus_lite.server_manager import server_manager_instance
                server_manager_instance.release_server(self.uri)

    # ---------------------------------------------------------- collection set-up
    def _create(self) -> None:
        pymilvus = import_pymilvus()
        types = pymilvus.DataType
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                                     description=f"hashseek {self.n_bits}-bit codes")
        schema.add_field("id", types.INT64, is_primary=True)
        schema.add_field("code", types.BINARY_VECTOR, dim=8 * self.n_bytes)
        schema.add_field("seq", types.INT64)
        schema.add_field("label", types.VARCHAR, max_length=LABEL_BYTES)
        schema.add_field("name", types.VARCHAR, max_length=NAME_BYTES)
        self.client.create_collection(self.collection_name, schema=schema, consistency_level="Strong")
        try:
            with quiet_pymilvus():
                self.client.create_index(self.collection_name, self._index_params())
        except pymilvus.exceptions.MilvusException as err:
            if self.index_type == "BIN_FLAT" or not is_lite(self.uri):
                raise
            warnings.warn(f"milvus-lite cannot build {self.index_type} ({err.message}); using BIN_FLAT, an exact "
                          f"scan. A Milvus server (standalone or distributed) builds {self.index_type}.",
                          RuntimeWarning, stacklevel=4)
            self.index_type = "BIN_FLAT"
            self.client.create_index(self.collection_name, self._index_params())
        self.client.load_collection(self.collection_name)

    def _index_params(self) -> Any:
        params = self.client.prepare_index_params()
        params.add_index(field_name="code", index_type=self.index_type, metric_type="HAMMING",
                         params={"nlist": self.nlist} if self.index_type == "BIN_IVF_FLAT" else {})
        return params

    def _attach(self) -> None:
        """Adopt an existing collection after checking it holds codes of this length, and mirror its ids."""
        description = self.client.describe_collection(self.collection_name)
        fields = {f["name"]: f for f in description["fields"]}
        dim = int(fields.get("code", {}).get("params", {}).get("dim", -1))
        if set(fields) != {"id", "code", "seq", "label", "name"} or dim != 8 * self.n_bytes:
            raise ValueError(f"Milvus collection {self.collection_name!r} at {self.uri} is not a hashseek index of "
                             f"{self.n_bits}-bit codes (fields {sorted(fields)}, code dim {dim})")
        info = self.client.describe_index(self.collection_name, "code")
        self.index_type = info.get("index_type", self.index_type)
        self.nlist = int(info.get("nlist", self.nlist))
        self.client.load_collection(self.collection_name)
        self._mirror(*self._listing(codes=False)[:2])

    def _listing(self, codes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """What the server holds: (ids, seqs, codes or None), in no particular order (a duplicated id twice)."""
        ids, seqs, raw = [], [], []
        fields = ["seq", "code"] if codes else ["seq"]
        with quiet_pymilvus():  # milvus-lite has no MVCC timestamp for iterators; pymilvus warns and copes
            iterator = self.client.query_iterator(self.collection_name, batch_size=MAX_HITS, output_fields=fields,
                                                  consistency_level="Strong")
        while batch := iterator.next():
            ids += [row["id"] for row in batch]
            seqs += [row["seq"] for row in batch]
            if codes:
                raw += [bytes(row["code"][0] if isinstance(row["code"], list) else row["code"]) for row in batch]
        iterator.close()
        table = (np.frombuffer(b"".join(raw), np.uint8).reshape(len(raw), self.n_bytes) if codes else None)
        return np.array(ids, dtype=np.int64), np.array(seqs, dtype=np.int64), table

    def _mirror(self, ids: np.ndarray, seqs: np.ndarray) -> None:
        """Set the id mirror (insertion order) and the next seq from the server's rows."""
        order = np.argsort(seqs, kind="stable")
        self._ids = ids[order]
        self._next_seq = int(seqs.max()) + 1 if len(seqs) else 0
        self._sorted_ids = np.sort(ids)

    # ---------------------------------------------------------- backend hooks
    def _add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        n = len(ids)
        labels = text_column(self._metadata[0], n, "labels", check_label)
        names = text_column(self._metadata[1], n, "names", check_name)
        raw, width = codes.tobytes(), self.n_bytes
        seqs = ids.tolist() if self.tie_order == "id" else list(range(self._next_seq, self._next_seq + n))
        columns = [ids.tolist(), [raw[j * width:(j + 1) * width] for j in range(n)], seqs, labels, names]
        try:
            for start in range(0, n, _BATCH):
                self._insert([column[start:start + _BATCH] for column in columns])
        except UnavailableError:
            self._unsure = True   # part of the batch may be on the server: the next write asks it
            raise
        except BaseException:
            self._delete(ids)  # undo the batches that went in, so Milvus and the id mirror agree
            raise
        self._next_seq = max(self._next_seq + n, int(ids.max()) + 1 if self.tie_order == "id" else 0)
        self._ids = np.concatenate([self._ids, ids])
        if self.tie_order == "id":   # insertion order is seq order, which is id order
            self._ids = np.sort(self._ids)

    def _insert(self, columns: list[list[Any]]) -> None:
        """One insert request, column by column: pymilvus 2.6 packs rows one value at a time (about 8,000
        codes/s on this project's machine) and columns in bulk (10x faster), but offers columns only
        on its connection handler; where that is missing, rows."""
        handler = getattr(self.client.raw, "_get_connection", None)
        if handler is None:
            fields = ("id", "code", "seq", "label", "name")
            self.client.insert(self.collection_name, [dict(zip(fields, row)) for row in zip(*columns)])
            return
        types = import_pymilvus().DataType
        entities = [{"name": name, "type": kind, "values": values} for name, kind, values in zip(
            ("id", "code", "seq", "label", "name"),
            (types.INT64, types.BINARY_VECTOR, types.INT64, types.VARCHAR, types.VARCHAR), columns)]
        if self._schema is None:
            self._schema = self.client.describe_collection(self.collection_name)
        with remote_errors(self.uri), quiet_pymilvus():
            handler().batch_insert(self.collection_name, entities, schema=self._schema)

    def _remove(self, ids: np.ndarray) -> None:
        try:
            self._delete(ids)
        except UnavailableError:
            self._unsure = True
            raise
        self._ids = self._ids[~np.isin(self._ids, ids)]

    def _delete(self, ids: np.ndarray) -> None:
        for start in range(0, len(ids), _BATCH):
            self.client.delete(self.collection_name, ids=ids[start:start + _BATCH].tolist())

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search_where(queries, k, "")

    def _range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for query, hits in zip(queries, self._hits(queries, MAX_HITS, "", (0, radius))):
            if len(hits[0]) == MAX_HITS:  # cut at Milvus's cap
                hits = self._collect(query, 0, radius, "", overflows=True)
            order = np.lexsort((hits[2], hits[0]))
            out.append((hits[0][order], hits[1][order]))
        return out

    def _save(self, path: Path) -> None:
        self.client.flush(self.collection_name)
        path.write_text(f"hashseek 'milvus' index: the codes are in Milvus collection {self.collection_name!r} at "
                        f"{self.uri}; the .json sidecar says how to reconnect.\n")

    def _load(self, path: Path, meta: dict[str, Any]) -> None:
        if meta["count"] != len(self._ids):
            warnings.warn(f"{path} was saved with {meta['count']} items; Milvus collection "
                          f"{self.collection_name!r} now holds {len(self._ids)}", RuntimeWarning, stacklevel=3)

    def _versions(self) -> dict[str, str]:
        versions = {**super()._versions(), "pymilvus": import_pymilvus().__version__}
        if is_lite(self.uri):  # a server's own version is the cluster operator's record
            versions["milvus-lite"] = importlib.metadata.version("milvus-lite")
        return versions

    # ---------------------------------------------------------- searching
    def _search_params(self, distances: tuple[int, int] | None) -> dict[str, Any]:
        params: dict[str, Any] = {"nprobe": self.nprobe} if self.index_type == "BIN_IVF_FLAT" else {}
        if distances is not None:  # Milvus keeps range_filter <= d < radius
            params.update(range_filter=distances[0], radius=distances[1] + 1)
        return {"metric_type": "HAMMING", "params": params}

    def _hits(self, queries: np.ndarray, limit: int, where: str,
              distances: tuple[int, int] | None = None) -> list[Hits]:
        """Each query's hits (distance, id, seq), up to ``limit``, within ``distances`` (inclusive) if given."""
        out: list[Hits] = []
        step = max(1, _RESULTS_PER_CALL // limit)
        for start in range(0, len(queries), step):
            results = self.client.search(
                self.collection_name, data=[q.tobytes() for q in queries[start:start + step]], anns_field="code",
                limit=limit, filter=where, output_fields=["seq"], search_params=self._search_params(distances),
                consistency_level=self.consistency)
            for hits in results:
                out.append((np.rint(np.asarray(hits.distances, dtype=np.float64)).astype(np.int32),
                            np.asarray(hits.ids, dtype=np.int64),
                            np.array([hit["entity"]["seq"] for hit in hits], dtype=np.int64)))
        return out

    def _search_where(self, queries: np.ndarray, k: int, where: str) -> tuple[np.ndarray, np.ndarray]:
        fetch = min(2 * k, MAX_HITS)
        hits = self._hits(queries, fetch, where)
        todo = [i for i, h in enumerate(hits) if _cut(h[0], k, fetch)]
        while todo and fetch < MAX_HITS:
            fetch = min(4 * fetch, MAX_HITS)
            for i, h in zip(todo, self._hits(queries[todo], fetch, where)):
                hits[i] = h
            todo = [i for i in todo if _cut(hits[i][0], k, fetch)]
        for i in todo:
            hits[i] = self._complete(queries[i], hits[i], k, where)
        distances = np.full((len(queries), k), MISSING_DISTANCE, dtype=np.int32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for i, (d, found, seq) in enumerate(hits):
            order = np.lexsort((seq, d))[:k]
            distances[i, :len(order)], ids[i, :len(order)] = d[order], found[order]
        return distances, ids

    def _complete(self, query: np.ndarray, hits: Hits, k: int, where: str) -> Hits:
        """Past the cap: keep the hits closer than the last distance (all there), then gather whole levels."""
        last = int(hits[0].max())
        closer = hits[0] < last
        parts = [(hits[0][closer], hits[1][closer], hits[2][closer])]
        found = int(closer.sum())
        for level in range(last, 8 * self.n_bytes + 1):
            if found >= k:
                break
            parts.append(self._collect(query, level, level, where, overflows=found == 0 and level == last))
            found += len(parts[-1][0])
        return _concat(parts)

    def _collect(self, query: np.ndarray, low: int, high: int, where: str, overflows: bool = False) -> Hits:
        """Every item at distance ``low..high``: range searches over halves of the seq range until none is
        cut. ``overflows``: a search just returned a full list of them, so start from the halves."""
        middle = self._next_seq // 2
        windows = [(middle, self._next_seq), (0, middle)] if overflows else [(0, self._next_seq)]
        parts: list[Hits] = []
        while windows:
            first, end = windows.pop()
            window = f"seq >= {first} and seq < {end}" + (f" and ({where})" if where else "")
            hits = self._hits(query[None], MAX_HITS, window, (low, high))[0]
            if len(hits[0]) < MAX_HITS:
                parts.append(hits)
            else:
                middle = (first + end) // 2
                windows += [(middle, end), (first, middle)]
        return _concat(parts)


__all__ = ["INSTALL_HINT", "MAX_HITS", "TOKEN_ENV", "MilvusIndex", "is_lite", "label_filter"]
