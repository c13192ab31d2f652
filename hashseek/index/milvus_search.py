"""hashseek's tie rule on top of Milvus searches, for ``MilvusIndex``.

Milvus orders equal distances arbitrarily, so every hit carries its ``seq`` and results are sorted
here by (distance, seq). A query asks for ``2k`` hits; only when the k-th distance still ties the
last hit (the tie group may go on) is it asked again for 4x more, up to Milvus's cap of 16384
hits per query. Past the cap, the missing distance levels are gathered by range searches over
halves of the seq range until none is cut, which is exact whatever the tie group's size.
For HAMMING Milvus keeps ``range_filter <= d < radius``; ours is inclusive, so it asks for ``radius + 1``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hashseek.index.base import MISSING_DISTANCE
from hashseek.index.milvus_sync import MAX_HITS

_RESULTS_PER_CALL = 1 << 18  # hits per search call (queries x limit), bounds each response

Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # distances int32, ids int64, seqs int64


def _concat(parts: list[Hits]) -> Hits:
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(3))  # type: ignore[return-value]


def _cut(distances: np.ndarray, k: int, fetch: int) -> bool:
    """A full list whose k-th distance ties its last (or that is shorter than k): more may tie."""
    if len(distances) < fetch:
        return False
    return fetch < k or np.partition(distances, k - 1)[k - 1] == distances.max()


class TieRuleSearch:
    """Mixed into ``MilvusIndex``: uses its client, collection name, index settings and ``_next_seq``."""

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
