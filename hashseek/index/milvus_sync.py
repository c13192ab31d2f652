"""Catching up with what a Milvus server holds, for ``MilvusIndex``: listing its rows, reconciling
them with the caller's truth by ids, resuming a write an outage cut, and waiting for index builds.

Milvus 2.3.5 answers one row per primary key (the latest) in queries and searches, so an id sent
twice is listed once; ``reconcile`` still deletes and re-sends an id listed twice where a server
does list both.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from hashseek.core.errors import InvalidInputError, UnavailableError
from hashseek.index.milvus_connect import quiet_pymilvus

MAX_HITS = 16384  # Milvus refuses a larger limit (top-k) per query, for search and query alike
_CODE_SAMPLE = 2048  # held codes compared by reconcile before it decides to read them all


def _positions(ids: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Index in ``ids`` of each of ``found``, -1 where absent."""
    if not len(ids):
        return np.full(len(found), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids, found, sorter=order), len(ids) - 1)
    hit = ids[order[pos]] == found
    return np.where(hit, order[pos], -1)



class ServerSync:
    """Mixed into ``MilvusIndex``: uses its client, collection name, code checks, id mirror and writes."""

    def reconcile(self, ids: np.ndarray, codes: np.ndarray, max_changed_share: float | None = None,
                  verify_codes: bool | None = None) -> dict[str, Any]:
        """Make the collection hold exactly ``ids`` (in insertion order) with ``codes`` by sending only the
        difference: rows the server lacks are added; extra, duplicated or changed rows are deleted (a
        changed one is added again). With ``tie_order="insertion"``, rows past the first one out of
        place are sent again too, so the tie order stays that of ``ids``.

        Listing codes costs about 3x listing ids (pymilvus decodes row by row), and a code changes in
        place only when all of them do (a refit, a reindex). So by default the codes of a random
        sample of 2,048 held rows are read and compared, and all codes only when one of those differs;
        ``verify_codes=True`` compares every code. When more than ``max_changed_share`` of ``ids`` are
        held with another code, nothing is sent and the answer says ``refused``: a new collection is
        then cheaper. Returns what it did, with the seconds spent listing and sending."""
        started = time.perf_counter()
        ids = np.asarray(ids, dtype=np.int64)
        want = self._prepare_codes(codes, "codes")
        if len(ids) != len(want):
            raise InvalidInputError(f"got {len(want)} codes but {len(ids)} ids")
        have_ids, have_seqs, have_codes = self._listing(codes=bool(verify_codes))
        where = _positions(ids, have_ids)                  # each listed row's place in ``ids``, -1 if none
        same = where >= 0
        if verify_codes is None:
            sample = np.random.default_rng(0).permutation(np.flatnonzero(same))[:_CODE_SAMPLE]
            share = float((self._codes_of(have_ids[sample]) != want[where[sample]]).any(axis=1).mean()) \
                if len(sample) else 0.0
            if max_changed_share is not None and share * same.sum() > max_changed_share * max(len(ids), 1):
                return {"listed": len(have_ids), "changed": round(share * same.sum()), "refused": True,
                        "listing_s": round(time.perf_counter() - started, 3)}
            if share:
                have_ids, have_seqs, have_codes = self._listing(codes=True)
                where = _positions(ids, have_ids)
                same = where >= 0
        if have_codes is not None:
            same[same] = (have_codes[same] == want[where[same]]).all(axis=1)
        if self.tie_order == "id":
            same &= have_seqs == have_ids
        changed, listed_s = int(((where >= 0) & ~same).sum()), time.perf_counter() - started
        report: dict[str, Any] = {"listed": len(have_ids), "changed": changed, "listing_s": round(listed_s, 3)}
        if max_changed_share is not None and changed > max_changed_share * max(len(ids), 1):
            return {**report, "refused": True}
        unique, counts = np.unique(have_ids, return_counts=True)
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
        return {**report, "deleted": int(len(doomed)), "added": int(len(missing)),
                "sending_s": round(time.perf_counter() - started - listed_s, 3),
                "seconds": round(time.perf_counter() - started, 3)}

    def _codes_of(self, ids: np.ndarray) -> np.ndarray:
        """The held codes of these ids (each held once), in their order."""
        rows: dict[int, bytes] = {}
        for start in range(0, len(ids), 1024):
            chunk = ids[start:start + 1024].tolist()
            for row in self.client.query(self.collection_name, filter=f"id in {chunk}", output_fields=["code"],
                                         consistency_level="Strong"):
                code = row["code"]
                rows[int(row["id"])] = bytes(code[0] if isinstance(code, list) else code)
        return np.frombuffer(b"".join(rows[int(i)] for i in ids), np.uint8).reshape(len(ids), self.n_bytes)

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

    def _resume(self, codes: np.ndarray, ids: np.ndarray, labels: Any, names: Any) -> tuple[Any, Any, Any, Any]:
        """Mirror what the server holds after a cut write; the part of this batch it does not hold yet.
        Rows of the batch that arrived carry the codes this batch sent (the same call again); an id
        held twice is deleted to be sent again."""
        ids = np.asarray(ids, dtype=np.int64)
        have_ids, have_seqs, _ = self._listing(codes=False)
        unique, counts = np.unique(have_ids, return_counts=True)
        bad = np.isin(have_ids, unique[counts > 1])
        self._delete(np.unique(have_ids[bad]))
        self._mirror(have_ids[~bad], have_seqs[~bad])
        self._unsure = False
        todo = ~np.isin(ids, have_ids[~bad])
        if todo.all():
            return codes, ids, labels, names
        def pick(column: Any) -> Any:
            return None if column is None else [value for value, keep in zip(column, todo) if keep]
        return codes[todo], ids[todo], pick(labels), pick(names)

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
