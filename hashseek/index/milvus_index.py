"""Milvus backend ``milvus``: the codes live in a Milvus collection, so the index can outgrow one machine.

``create_index("milvus", n_bits, uri=..., collection_name="hashseek")`` makes a collection of
``id`` (INT64 primary key), ``code`` (BINARY_VECTOR of ``8 * ceil(n_bits/8)`` bits, HAMMING),
``seq`` (INT64 insertion number), ``label`` and ``name`` (VARCHAR, ``""`` when absent).
``uri`` is a server (``http://host:19530``, Zilliz Cloud) or a milvus-lite file (``*.db``,
one process per file); the token comes from ``token=`` or ``HASHSEEK_MILVUS_TOKEN`` and is
never saved. ``save`` flushes and writes the sidecar; ``load_index`` reconnects.

Tie rule and range search: ``milvus_search`` (results sorted by (distance, seq) here, exact past
Milvus's 16,384 hits per query). Listing, reconciling and resuming: ``milvus_sync``.

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
holding part of it: the next ``add`` asks the server first, so the same call again sends only
what did not arrive; ``reconcile(ids, codes)`` lists what the server holds and sends only
the difference (missing rows added; extra, duplicated or changed rows deleted), which is also
how a collection catches up after a crash or an outage instead of uploading everything again.
``tie_order="id"`` (what collections use: their ids grow with insertion) stores ``seq = id``,
so a row re-sent by ``reconcile`` keeps its place among ties.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import uuid
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from hashseek.core.errors import InvalidInputError, UnavailableError
from hashseek.index.base import INDEXES, BinaryIndex
from hashseek.index.milvus_connect import (INSTALL_HINT, LABEL_BYTES, NAME_BYTES, TOKEN_ENV, check_label, check_name,
                                           check_settings, connect, import_pymilvus, is_lite, label_filter,
                                           quiet_pymilvus, remote_errors, text_column)
from hashseek.index.milvus_search import TieRuleSearch
from hashseek.index.milvus_sync import MAX_HITS, ServerSync

_BATCH = 50_000  # rows per insert / ids per delete request (a 64-bit row is ~40 B on the wire)

_LITE_USERS: dict[str, int] = {}  # open indexes per milvus-lite file in this process



@INDEXES.register("milvus")
class MilvusIndex(ServerSync, TieRuleSearch, BinaryIndex):
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


__all__ = ["INSTALL_HINT", "MAX_HITS", "TOKEN_ENV", "MilvusIndex", "is_lite", "label_filter"]
