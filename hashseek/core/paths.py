"""Where hashseek finds datasets and keeps its caches."""
from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """Folder holding the named dataset archives.

    ``HASHSEEK_DATA`` wins; otherwise ``../shared/datasets`` beside the current
    directory or beside the source checkout.
    """
    env = os.environ.get("HASHSEEK_DATA")
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = base.parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "datasets"


def cache_root() -> Path:
    """Folder for feature caches and exported models (``HASHSEEK_CACHE``, default ~/.cache/hashseek)."""
    env = os.environ.get("HASHSEEK_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "hashseek"
    root.mkdir(parents=True, exist_ok=True)
    return root


def disk_bytes(path: str | Path) -> int:
    """Size of a file, or of every file under a folder (a checkpoint, a collection). A file that goes away
    during the walk (a thumbnail's temporary file renamed into place by another thread) counts as nothing
    instead of failing the whole count."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    return sum(_size(p) for p in path.rglob("*"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except FileNotFoundError:
        return 0
