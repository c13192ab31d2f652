"""The SQLite side of a collection: one row per image (the journal and the truth), a state table,
atomic transactions that bump the generation the index cache is checked by, and the queries.

``images.content_hash`` is the sha256 of an image's bytes (NULL for rows added as features), so a
query image can be recognised as a library image. ``slot_rows`` holds the codes and feature rows of
a model beside the live one (a reindex being staged, or the previous model; see ``search.reindex``).
"""
from __future__ import annotations

import logging
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from hashseek.core.errors import DamagedError, ReadOnlyError
from hashseek.search.storage import sqlite_error

log = logging.getLogger(__name__)

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
    in_library  INTEGER NOT NULL DEFAULT 1,         -- 0: removed (kept so re-adding restores it)
    content_hash TEXT                               -- sha256 hex of the image bytes; NULL for feature rows
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO state VALUES ('generation', '0');
CREATE TABLE IF NOT EXISTS slot_rows (
    slot        TEXT NOT NULL,
    id          INTEGER NOT NULL,                   -- the image's id in images
    feature_row INTEGER NOT NULL,                   -- row in the slot's features.f16
    code        BLOB,
    PRIMARY KEY (slot, id)
);
"""
_CONTENT_INDEX = "CREATE INDEX IF NOT EXISTS images_content_hash ON images (content_hash)"
_COLUMNS = "id, name, source, stored, label, code, feature_row, added_at, in_library"
_INSERT = ("INSERT INTO images (name, source, stored, label, code, feature_row, added_at, content_hash) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")


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


@dataclass(frozen=True)
class NewRow:
    """What an add knows of an image before its features are stored."""

    name: str
    source: str
    stored: str | None = None
    label: str | None = None
    content_hash: str | None = None


class Metadata:
    """One SQLite connection to ``meta.sqlite``, synchronous = FULL: a committed change survives power loss."""

    def __init__(self, path: Path, read_only: bool = False, repair: str = "hashseek check --repair"):
        """``read_only``: SQLite's ``mode=ro``, which writes nothing (not even a hot journal's rollback:
        that is reported instead). A damaged file is a ``DamagedError`` naming it; ``repair`` is the
        command the messages suggest."""
        self.path, self.read_only, self.repair = path, read_only, repair
        self.db = None
        try:
            if read_only:
                if not path.is_file():  # mode=ro would say "unable to open database file"
                    raise DamagedError(f"{path} is missing: it holds the collection's metadata")
                self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                          check_same_thread=False)
                self._migrate_in_memory()
            else:
                self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self.db.execute("PRAGMA synchronous = FULL")
                self.db.executescript(_SCHEMA)
                self._migrate()
            self.generation = int(self.state("generation"))
        except sqlite3.Error as err:
            if self.db is not None:
                self.db.close()
            raise (sqlite_error(err, path, repair) or err) from err

    def _migrate(self) -> None:
        """Columns added since format 1 was first written, added in place to older collections."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(images)")}
        if "content_hash" not in columns:
            self.db.execute("ALTER TABLE images ADD COLUMN content_hash TEXT")
        self.db.execute(_CONTENT_INDEX)

    def _migrate_in_memory(self) -> None:
        """A read-only open of an older file sees the newer schema through TEMP objects, which shadow
        the file's own and live in memory: the file is not written."""
        columns = {row[1] for row in self.db.execute("PRAGMA main.table_info(images)")}
        if "content_hash" not in columns:
            self.db.execute("CREATE TEMP VIEW images AS SELECT *, NULL AS content_hash FROM main.images")
        tables = {row[0] for row in self.db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
        if "slot_rows" not in tables:
            self.db.execute("CREATE TEMP TABLE slot_rows (slot TEXT, id INTEGER, feature_row INTEGER, code BLOB)")

    def close(self) -> None:
        self.db.close()

    def quick_check(self) -> list[str]:
        """SQLite's own check of the file (every page read once): its complaints, none when sound."""
        try:
            found = [row[0] for row in self.db.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as err:
            return [str(err)]
        return [] if found == ["ok"] else found

    @contextmanager
    def transaction(self, searchable: bool) -> Iterator[sqlite3.Connection]:
        """One atomic SQLite transaction; ``searchable`` changes bump the generation the index is checked by.

        A failure raises its own cause (a full disk is a ``StorageFullError`` saying "database or disk
        is full"): SQLite may have rolled the transaction back itself, and a ROLLBACK then would only
        say "no transaction is active".
        """
        if self.read_only:
            raise ReadOnlyError(f"{self.path.parent} is open read-only: this change needs a writable open")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db
            if searchable:
                self.db.execute("UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self.db.execute("COMMIT")
        except BaseException as err:
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error as rollback_err:
                    log.warning("%s: rollback after %r failed: %s", self.path, err, rollback_err)
            if isinstance(err, sqlite3.Error) and (typed := sqlite_error(err, self.path, self.repair)):
                raise typed from err
            raise
        if searchable:
            self.generation += 1

    def query(self, sql: str, args: Sequence = ()) -> list[tuple]:
        """Rows of a read-only query (for the checker and the reindexer's own tables)."""
        return self.db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ state
    def state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_state(self, key: str, value: str | None, db: sqlite3.Connection | None = None) -> None:
        """Set (or with None delete) a state value: inside ``db``'s transaction when given, else on its own."""
        db = db or self.db
        if value is None:
            db.execute("DELETE FROM state WHERE key = ?", (key,))
        else:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, str(value)))

    # ------------------------------------------------------------------ writing
    @staticmethod
    def insert(db: sqlite3.Connection, rows: Sequence[NewRow], codes: Sequence[bytes | None],
               feature_rows: Sequence[int], added_at: float) -> list[int]:
        """Insert rows inside a transaction; their new ids."""
        return [db.execute(_INSERT, (r.name, r.source, r.stored, r.label, code, int(row), added_at,
                                     r.content_hash)).fetchone()[0]
                for r, code, row in zip(rows, codes, feature_rows)]

    @staticmethod
    def mark_removed(db: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Tombstones: the rows (and their features) stay so re-adding a source restores it."""
        db.execute(f"UPDATE images SET in_library = 0, stored = NULL WHERE id IN ({','.join('?' * len(ids))})",
                   list(map(int, ids)))

    @staticmethod
    def drop(db: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Delete rows outright (repair: images whose features are lost and cannot be re-encoded)."""
        db.execute(f"DELETE FROM images WHERE id IN ({','.join('?' * len(ids))})", list(map(int, ids)))

    @staticmethod
    def relabel(db: sqlite3.Connection, image_id: int, label: str | None) -> None:
        db.execute("UPDATE images SET label = ? WHERE id = ?", (label, int(image_id)))

    def restore(self, db: sqlite3.Connection, old_id: int, row: NewRow, added_at: float) -> tuple[int, Record]:
        """A removed row back under a new id (the newest insertion) with its old code, feature row, and
        label and content hash unless ``row`` gives them: (new id, the old record)."""
        old = _record(db.execute(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (old_id,)).fetchone())
        content = row.content_hash or self.content_hash_of(old_id)
        db.execute("DELETE FROM images WHERE id = ?", (old_id,))
        new = NewRow(row.name, row.source, row.stored, old.label if row.label is None else row.label, content)
        return self.insert(db, [new], [old.code], [old.feature_row], added_at)[0], old

    def source_state(self, source: str) -> tuple[int, bool] | None:
        """(id, in_library) of the row with this source key, None when there is none."""
        row = self.db.execute("SELECT id, in_library FROM images WHERE source = ?", (source,)).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def content_hash_of(self, image_id: int) -> str | None:
        row = self.db.execute("SELECT content_hash FROM images WHERE id = ?", (image_id,)).fetchone()
        return None if row is None else row[0]

    def set_codes(self, db: sqlite3.Connection, ids: Sequence[int], codes: np.ndarray) -> None:
        db.executemany("UPDATE images SET code = ? WHERE id = ?", zip(map(bytes, codes), map(int, ids)))

    # ------------------------------------------------------------------ reading
    def get(self, image_id: int) -> Record | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM images WHERE id = ?", (int(image_id),)).fetchone()
        return None if row is None else _record(row)

    def records(self, offset: int = 0, limit: int = 100, label: str | None = None) -> list[Record]:
        """Library records in id (= insertion) order, optionally of one label."""
        where, args = ("AND label = ?", (label,)) if label is not None else ("", ())
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM images WHERE in_library {where} ORDER BY id "
                               "LIMIT ? OFFSET ?", (*args, limit, offset))
        return [_record(row) for row in rows]

    def names_and_labels(self, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        rows = self.db.execute(f"SELECT id, name, label FROM images WHERE id IN ({','.join('?' * len(ids))})",
                               list(map(int, ids)))
        return {row[0]: (row[1], row[2]) for row in rows}

    def stored_names(self, ids: Sequence[int]) -> list[str]:
        rows = self.db.execute(f"SELECT stored FROM images WHERE id IN ({','.join('?' * len(ids))}) "
                               "AND stored IS NOT NULL", list(map(int, ids)))
        return [row[0] for row in rows]

    def ids_with_content(self, sha256_hex: str) -> list[int]:
        """Library ids whose image bytes have this sha256 (several sources may hold the same bytes)."""
        rows = self.db.execute("SELECT id FROM images WHERE content_hash = ? AND in_library ORDER BY id",
                               (sha256_hex.lower(),))
        return [row[0] for row in rows]

    def library_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(library ids ascending, their feature rows)."""
        rows = np.array(self.db.execute("SELECT id, feature_row FROM images WHERE in_library ORDER BY id")
                        .fetchall(), dtype=np.int64).reshape(-1, 2)
        return rows[:, 0].copy(), rows[:, 1].copy()

    def library_labels(self) -> list[tuple[int, str | None]]:
        return self.db.execute("SELECT id, label FROM images WHERE in_library ORDER BY id").fetchall()

    def searchable_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending, packed codes) of every library image that has a code."""
        rows = self.db.execute("SELECT id, code FROM images WHERE in_library AND code IS NOT NULL ORDER BY id")
        rows = rows.fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        width = len(rows[0][1]) if rows else 0
        return ids, np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(len(rows), width)

    def searchable_summary(self) -> tuple[int, int | None]:
        """(count, largest id) of the searchable images: what an index file must hold."""
        return self.db.execute(
            "SELECT COUNT(*), MAX(id) FROM images WHERE in_library AND code IS NOT NULL").fetchone()

    def feature_rows_needing_codes(self, all_rows: bool) -> np.ndarray:
        """(n, 2) [id, feature_row] of the rows whose code must be (re)computed: all, or those without one."""
        where = "" if all_rows else "WHERE code IS NULL"
        return np.array(self.db.execute(f"SELECT id, feature_row FROM images {where} ORDER BY id").fetchall(),
                        dtype=np.int64).reshape(-1, 2)

    def feature_rows_used(self) -> int:
        """Rows of features.f16 that some row references (one past the largest)."""
        top = self.db.execute("SELECT MAX(feature_row) FROM images").fetchone()[0]
        return 0 if top is None else top + 1

    def counts(self) -> dict[str, int]:
        removed, unsearchable = self.db.execute(
            "SELECT SUM(NOT in_library), SUM(in_library AND code IS NULL) FROM images").fetchone()
        return {"removed": removed or 0, "not_searchable": unsearchable or 0}

    def classes(self) -> dict[str, int]:
        """Library images per label; unlabelled images under ''."""
        return dict(self.db.execute("SELECT COALESCE(label, ''), COUNT(*) FROM images WHERE in_library "
                                    "GROUP BY label ORDER BY label").fetchall())


def _record(row: tuple) -> Record:
    values = list(row)
    values[-1] = bool(values[-1])
    return Record(*values)
