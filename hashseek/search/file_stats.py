"""What each synced file looked like when its content hash was taken, so a later sync reads only what changed.

A file whose size, mtime and ctime are those recorded beside the content hash its row still has
is taken as unchanged without reading it (ctime catches a rewrite that restored the mtime). Like
git's index, a stat taken within ``RACY_NS`` of the file's last change is not recorded: a write in
the same clock tick would go unseen. The table is a cache in its own table (created on first use,
so older collections need no migration): losing or ignoring it only costs reading the files again.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from hashseek.search.metadata import Metadata

RACY_NS = 2_000_000_000
_TABLE = ("CREATE TABLE IF NOT EXISTS file_stats (source TEXT PRIMARY KEY, size INTEGER NOT NULL, "
          "mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, content_hash TEXT NOT NULL)")


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> "FileStat":
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def load(meta: Metadata, prefix: str) -> dict[str, tuple[FileStat, str]]:
    """source -> (stat, content hash) recorded for the sources under ``prefix``."""
    if not meta.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'file_stats'"):
        return {}
    rows = meta.query("SELECT source, size, mtime_ns, ctime_ns, content_hash FROM file_stats "
                      "WHERE substr(source, 1, ?) = ?", (len(prefix), prefix))
    return {row[0]: (FileStat(*row[1:4]), row[4]) for row in rows}


def save(meta: Metadata, entries: Iterable[tuple[str, FileStat, str]], now_ns: int) -> None:
    """Record (source, stat taken before the bytes were read, their sha256) in one transaction."""
    kept = [(source, st.size, st.mtime_ns, st.ctime_ns, digest) for source, st, digest in entries
            if now_ns - max(st.mtime_ns, st.ctime_ns) > RACY_NS]
    if not kept:   # a sync that found nothing new writes nothing
        return
    with meta.transaction(searchable=False) as db:
        db.execute(_TABLE)
        db.executemany("INSERT OR REPLACE INTO file_stats VALUES (?, ?, ?, ?, ?)", kept)


def forget(meta: Metadata, sources: Iterable[str]) -> None:
    """Drop the records of sources that left the library."""
    sources = [(source,) for source in sources]
    if sources:
        with meta.transaction(searchable=False) as db:
            db.execute(_TABLE)
            db.executemany("DELETE FROM file_stats WHERE source = ?", sources)
