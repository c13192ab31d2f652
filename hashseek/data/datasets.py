"""Labelled image collections read from a folder or a tar archive, without unpacking to disk.

An image's id is its path inside the dataset (``class/file.jpg``; an archive's single
top-level folder is dropped), and its label is the name of the folder that holds it.
Files directly in the root are unlabelled (label -1).
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from hashseek.data.heif import HEIF_EXTENSIONS, HEIF_HINT, HEIF_READABLE

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
) | (HEIF_EXTENSIONS if HEIF_READABLE else frozenset())
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class ImageRecord:
    id: str
    label: int


SYSTEM_FOLDERS = frozenset({"__MACOSX", "@eaDir"})   # a Mac zip's resource forks, a Synology NAS's thumbnails
COLLECTION_MARKER = "collection.json"   # hashseek.search.collection.COLLECTION_JSON: the folder is a collection


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not os.path.basename(name).startswith(".")


def file_kind(name: str) -> str:
    """How a file passed over for its name is counted (``ignored``): its suffix, or its name when it has none."""
    base = posixpath.basename(name.replace(os.sep, "/"))
    return os.path.splitext(base)[1].lower() or base


def not_read_note(ignored: dict[str, int]) -> str | None:
    """One line on the files left unread because their names are not images' (``ImageDataset.ignored``),
    with how to read them where there is a way (.heic without pillow-heif); None when there were none."""
    if not ignored:
        return None
    found = ", ".join(f"{suffix} {n}" for suffix, n in sorted(ignored.items(), key=lambda kv: -kv[1]))
    hint = f"; {HEIF_HINT}" if HEIF_EXTENSIONS & set(ignored) and not HEIF_READABLE else ""
    return (f"{sum(ignored.values())} file(s) not read, not images by their names ({found}); images are "
            f"{' '.join(sorted(IMAGE_EXTENSIONS))}{hint}")


def is_hidden_name(name: str) -> bool:
    """A hidden file or folder (``.git``, ``.thumbnails``, ``.Trash``) or a system one: no user's photos, and
    no class (a thumbnail cache would otherwise become a class of copies)."""
    return name.startswith(".") or name in SYSTEM_FOLDERS


BAD_NAME = "its name is not UTF-8 text (an old camera's or archive's encoding), so it cannot be stored: rename it"


def is_bad_name(name: str) -> bool:
    """A name Python could only decode with surrogates (Latin-1 bytes on a UTF-8 system)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable_name(name: str) -> str:
    """A bad name as text that can be shown and stored (``caf\\xe9.jpg``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def is_collection_folder(path: str | Path) -> bool:
    """A hashseek collection (its thumbnails and stored uploads are no photos of the folder it sits in)."""
    return (Path(path) / COLLECTION_MARKER).is_file()


def is_skipped_folder(path: str | Path) -> bool:
    """A folder no walk over a user's photos enters: hidden, a system folder, or a collection."""
    return is_hidden_name(os.path.basename(path)) or is_collection_folder(path)


def is_hidden_path(path: str) -> bool:
    """Any part of a ``/``-separated path hidden (``./`` at the front of an archive's members is not)."""
    return any(is_hidden_name(part) for part in path.split("/") if part not in ("", "."))


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


class ImageDataset:
    """Records (id, label) plus byte access; subclasses say where the bytes live."""

    def __init__(self, name: str, ids: list[str], labels: list[int] | None = None,
                 classes: list[str] | None = None):
        """Labels come from the folder names unless given (with their ``classes``)."""
        self.name = name
        if labels is None:
            classes = sorted({_class_of(i) for i in ids} - {None})
            index = {c: n for n, c in enumerate(classes)}
            labels = [index.get(_class_of(i), -1) for i in ids]
        self.classes: list[str] = list(classes or [])
        self.records: list[ImageRecord] = [ImageRecord(i, int(label)) for i, label in zip(ids, labels)]
        self._position = {r.id: n for n, r in enumerate(self.records)}
        self.ignored: dict[str, int] = {}   # files not read for their name (no image suffix), by suffix
        self.left_out: dict[str, str] = {}  # files and folders that cannot be images here (a bad name) -> why

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def labels(self, ids: Iterable[str] | None = None) -> np.ndarray:
        if ids is None:
            return np.array([r.label for r in self.records], dtype=np.int64)
        return np.array([self.records[self._position[i]].label for i in ids], dtype=np.int64)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._position

    def read_bytes(self, image_id: str) -> bytes:
        raise NotImplementedError

    def source_key(self) -> str:
        """Identifies the bytes on disk cheaply (name and size, not location)."""
        raise NotImplementedError

    def fingerprint(self, ids: Iterable[str] | None = None) -> str:
        """Stable key for caches: the source plus the exact list of ids."""
        h = hashlib.sha256(self.source_key().encode())
        for image_id in ids if ids is not None else self.ids:
            h.update(image_id.encode() + b"\0")
        return h.hexdigest()[:16]


def _class_of(image_id: str) -> str | None:
    parent = os.path.dirname(image_id)
    return os.path.basename(parent) if parent else None


def folder_label_notes(ids: Iterable[str], under_split_folders: bool = False) -> list[str]:
    """What the folder rule did that a user may not expect: a class folder nested inside another class folder
    is a class of its own, and folders of the same name in different places are one class (expected, and not
    said, across a source's own ``train/`` and ``test/`` folders: ``under_split_folders``)."""
    if under_split_folders:
        ids = [i.partition("/")[2] for i in ids]
    folders = sorted({os.path.dirname(i) for i in ids} - {""})
    holding = set(folders)
    nested = [f for f in folders if any(a in holding for a in _ancestors(f))]
    by_name: dict[str, list[str]] = {}
    for f in folders:
        by_name.setdefault(os.path.basename(f), []).append(f)
    merged = {name: fs for name, fs in by_name.items() if len(fs) > 1}
    notes = []
    if nested:
        notes.append(f"{len(nested)} class folder(s) inside another class folder are classes of their own (the "
                     f"folder that holds an image names its class): {', '.join(nested[:5])}"
                     f"{', ...' if len(nested) > 5 else ''}; move their images up if they belong to the outer class")
    if merged:
        shown = "; ".join(f"{name} ({', '.join(fs[:3])}{', ...' if len(fs) > 3 else ''})"
                          for name, fs in sorted(merged.items())[:3])
        notes.append(f"{len(merged)} class(es) gather folders of the same name from different places: {shown}"
                     f"{'; ...' if len(merged) > 3 else ''}")
    return notes


def _ancestors(folder: str) -> list[str]:
    parts = folder.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


class FolderDataset(ImageDataset):
    """Images under a folder, one sub-folder per class (any depth; the parent folder names the class).
    Hidden and system folders and collections are not entered; linked folders are not followed (no loop), linked
    files are read."""

    def __init__(self, root: str | Path, name: str | None = None):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"not a folder: {self.root}")
        ids, ignored, left_out = [], Counter(), {}
        for folder, subfolders, files in os.walk(self.root):
            rel = Path(folder).relative_to(self.root)
            left_out |= {printable_name((rel / d).as_posix()) + "/": BAD_NAME for d in subfolders if is_bad_name(d)}
            subfolders[:] = [d for d in subfolders
                             if not (is_bad_name(d) or is_skipped_folder(os.path.join(folder, d)))]
            for f in files:
                if is_image_name(f) and is_bad_name(f):
                    left_out[printable_name((rel / f).as_posix())] = BAD_NAME
                elif is_image_name(f):
                    if os.path.isfile(os.path.join(folder, f)):
                        ids.append((rel / f).as_posix())
                elif not is_hidden_name(f):
                    ignored[file_kind(f)] += 1
        super().__init__(name or self.root.name, sorted(ids))
        self.ignored, self.left_out = dict(ignored), left_out

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def read_bytes(self, image_id: str) -> bytes:
        if image_id not in self._position:
            raise KeyError(image_id)
        return self.path(image_id).read_bytes()

    def source_key(self) -> str:
        return f"folder:{self.root}"


class ArchiveDataset(ImageDataset):
    """Images inside a tar archive, read in place.

    An uncompressed ``.tar`` is read by offset (random access, nothing held in memory).
    A compressed archive cannot be seeked cheaply, so one streaming pass keeps the
    (already compressed) image bytes in memory; unpack it or repack as ``.tar`` for
    collections larger than memory. A link member reads its target inside the archive; one whose
    target the archive does not hold (``tar`` keeps symlinks as links) is an image that cannot be read,
    so the source check lists it instead of it vanishing.
    """

    def __init__(self, path: str | Path, name: str | None = None):
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise FileNotFoundError(f"archive not found: {self.path}")
        self._offsets: dict[str, tuple[int, int]] = {}
        self._blobs: dict[str, bytes] = {}
        self._broken: dict[str, str] = {}   # a link -> the target the archive does not hold
        self._lock = threading.Lock()
        self._fd: int | None = None
        compressed = not self.path.name.lower().endswith(".tar")
        names: list[str] = []
        links: dict[str, str] = {}
        ignored, left_out = Counter(), {}
        with tarfile.open(self.path, "r|*" if compressed else "r:") as tar:
            for member in tar:
                if is_hidden_path(member.name):
                    continue
                if is_bad_name(member.name):
                    left_out[printable_name(member.name)] = BAD_NAME
                    continue
                if not is_image_name(member.name):
                    if member.isfile():
                        ignored[file_kind(member.name)] += 1
                    continue
                if member.isfile():
                    names.append(member.name)
                    if compressed:
                        self._blobs[member.name] = tar.extractfile(member).read()
                    else:
                        self._offsets[member.name] = (member.offset_data, member.size)
                elif member.issym() or member.islnk():
                    links[member.name] = member.linkname if member.islnk() else posixpath.join(
                        posixpath.dirname(member.name), member.linkname)
        stored = self._blobs if compressed else self._offsets
        by_path = {posixpath.normpath(n): n for n in names}
        for link, target in links.items():
            if posixpath.normpath(target) in by_path:
                stored[link] = stored[by_path[posixpath.normpath(target)]]
            else:
                self._broken[link] = target
            names.append(link)
        self._strip = _common_top_folder(names)
        ids = [n[len(self._strip):] for n in names]
        if compressed:
            self._blobs = {i: self._blobs[n] for i, n in zip(ids, names) if n in self._blobs}
        else:
            self._offsets = {i: self._offsets[n] for i, n in zip(ids, names) if n in self._offsets}
        self._broken = {i: self._broken[n] for i, n in zip(ids, names) if n in self._broken}
        super().__init__(name or archive_stem(self.path), sorted(ids))
        self.ignored, self.left_out = dict(ignored), left_out

    def read_bytes(self, image_id: str) -> bytes:
        if image_id in self._broken:
            raise OSError(f"a link to {self._broken[image_id]}, which the archive does not hold")
        if self._blobs:
            return self._blobs[image_id]
        offset, size = self._offsets[image_id]
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
        return os.pread(self._fd, size, offset)

    def source_key(self) -> str:
        return f"archive:{self.path.name}:{self.path.stat().st_size}"

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"], state["_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def archive_stem(path: str | Path) -> str:
    """An archive's name without its archive suffix (``photos.tar.gz`` -> ``photos``)."""
    name = Path(path).name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _common_top_folder(names: list[str]) -> str:
    """'top/' when every member sits under the same single top-level folder, else ''."""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""


def open_images(path: str | Path, name: str | None = None) -> ImageDataset:
    """A folder or an archive of labelled images."""
    path = Path(path).expanduser()
    if path.is_dir():
        return FolderDataset(path, name)
    if is_archive(path):
        return ArchiveDataset(path, name)
    raise ValueError(f"{path} is neither a folder nor a tar archive ({', '.join(ARCHIVE_SUFFIXES)})")
