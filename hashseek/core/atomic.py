"""The one way hashseek writes a file: a unique temporary sibling, fsynced, then renamed over the target.

A reader, or a process restarted after a crash, sees the old file or the new one, never half of
either; concurrent writers never share a temporary name. The file gets the mode a plain write would
give it: an existing file's mode, else the process's umask applied to 0666. Some writers make their
file 0600 (safetensors), which would hide a collection from a web server reading it as another user.
"""
from __future__ import annotations

import json
import os
import stat
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary sibling of ``path`` to write; it replaces ``path`` once the body succeeds."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        mode = _plain_mode(path, tmp)
        yield tmp
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
            os.chmod(tmp, mode)
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _plain_mode(path: Path, tmp: Path) -> int:
    """The mode ``open(path, "w")`` would leave: the file's own, else what the kernel gives a new file
    (umask, default ACL), read off ``tmp`` created empty (``os.umask`` cannot be read without a
    thread-unsafe set and reset)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        pass
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return stat.S_IMODE(os.stat(tmp).st_mode)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, value: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=indent))


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
