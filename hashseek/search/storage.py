"""The refusals of a disk or of SQLite to write or read, as the typed errors a user can act on.

A full disk (ENOSPC, a quota, an I/O error) is a ``StorageFullError`` that names its real cause,
a read-only file system a ``ReadOnlyError``, a damaged SQLite file a ``DamagedError`` naming the
file; anything else stays what it was (a bug keeps its traceback). And the writer's lock: readers
take none, so a collection on a read-only file system can be read.
"""
from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO

from hashseek.core.errors import ConflictError, DamagedError, HashseekError, ReadOnlyError, StorageFullError
from hashseek.search.layout import LOCK_FILE

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_READONLY = 13, 10, 11, 26, 8
_SQLITE_READONLY_ROLLBACK = 776


def os_error(err: OSError, path: Path, doing: str) -> HashseekError | None:
    """The typed error of an ``OSError`` met while ``doing`` something to ``path``, or None."""
    if err.errno in _FULL_ERRNOS:
        return StorageFullError(f"{path}: {doing} failed: {err.strerror or err} (errno {err.errno}); "
                                "nothing of it was kept. Free some space and try again")
    if err.errno in _READ_ONLY_ERRNOS:
        return ReadOnlyError(f"{path}: {doing} failed: {err.strerror or err}: the collection is read-only here")
    return None


def sqlite_error(err: sqlite3.Error, path: Path, repair: str) -> HashseekError | None:
    """The typed error of a SQLite error on the database ``path``, or None; ``repair`` says what to run."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is None:
        return None
    if code == _SQLITE_READONLY_ROLLBACK:
        return DamagedError(f"{path} holds a transaction a crashed writer left unfinished, which a read-only "
                            f"open cannot roll back: open the collection writable once ({repair})")
    primary = code & 0xFF
    if primary in (_SQLITE_FULL, _SQLITE_IOERR):
        return StorageFullError(f"{path}: {err} ({getattr(err, 'sqlite_errorname', code)}); nothing of this "
                                "change was kept. Free some space and try again")
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return DamagedError(f"{path} is damaged ({err}): it holds the collection's metadata, the one part "
                            "that cannot be rebuilt; restore it from a backup")
    if primary == _SQLITE_READONLY:
        return ReadOnlyError(f"{path} is read-only ({err})")
    return None


def can_write(directory: Path) -> bool:
    """Whether this process may create files in ``directory`` (False on a read-only file system)."""
    return os.access(directory, os.W_OK)


def take_lock(path: Path) -> IO:
    """The writer's lock file of the collection at ``path``, held until closed: one writer at a time."""
    try:
        lock = open(path / LOCK_FILE, "a")
    except OSError as err:
        typed = os_error(err, path / LOCK_FILE, "taking the writer's lock")
        if isinstance(typed, ReadOnlyError):
            raise ReadOnlyError(f"{path} cannot be written here ({err.strerror}): open it read-only "
                                "(Collection.open(path, read_only=True); hashseek info, check, search and "
                                "classify do)") from None
        raise (typed or err) from err
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConflictError(f"collection {path} is open in another process") from None
    return lock


def writer_lock(path: Path, read_only: bool | None) -> tuple[bool, IO | None]:
    """(read-only?, the lock held): a writer takes the lock, a reader none. ``read_only=None``: read-only
    exactly when the directory cannot be written (a read-only file system, another user's files)."""
    read_only = not can_write(path) if read_only is None else read_only
    return read_only, None if read_only else take_lock(path)
