"""What an ``add_*`` call takes in: images to add with their source keys, and the report it gives back.

A source key says where an image came from (a resolved path, ``archive::member``, or
``upload:<sha256>`` for uploaded bytes); adding a source already present is skipped, which is what
makes an interrupted bulk add resumable.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from hashseek.core.errors import InvalidInputError
from hashseek.core.hasher import ImageHasher
from hashseek.data.datasets import ArchiveDataset, FolderDataset, ImageDataset, is_image_name
from hashseek.data.loader import iter_batches
from hashseek.search.duplicates import library_duplicates
from hashseek.search.metadata import NewRow
from hashseek.search.store import LibraryStore

UPLOAD = "upload:"
log = logging.getLogger(__name__)


@dataclass
class AddReport:
    """What an ``add_*`` call did: new ids, sources already present, restored and unreadable ones."""

    ids: list[int] = field(default_factory=list)
    skipped: int = 0
    restored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (source, reason)
    duplicates: dict[int, list[int]] = field(default_factory=dict)  # new id -> library ids it duplicates
    not_images: dict[str, int] = field(default_factory=dict)  # files passed over for their names, by suffix

    @property
    def added(self) -> int:
        return len(self.ids)

    def __str__(self) -> str:
        return (f"added {self.added}, restored {self.restored}, already present {self.skipped}, "
                f"unreadable {len(self.failed)}" + (f", duplicates of library images {len(self.duplicates)}"
                                                    if self.duplicates else ""))


@dataclass(frozen=True)
class Pending:
    """One image to add: its source key and how to read its bytes (called in a worker thread)."""

    source: str
    name: str
    label: str | None
    read: Callable[[], bytes]
    upload: bytes | None = None     # bytes to keep a copy of under images/

    @property
    def stored_name(self) -> str | None:
        """The name of the copy under images/: the content hash plus the upload's image suffix."""
        if self.upload is None:
            return None
        suffix = Path(self.name).suffix.lower() if is_image_name(self.name) else ""
        return self.source.removeprefix(UPLOAD) + suffix

    def row(self, content_hash: str | None = None) -> NewRow:
        return NewRow(self.name, self.source, self.stored_name, self.label, content_hash)

    @property
    def uploads(self) -> dict[str, bytes]:
        return {} if self.upload is None else {self.stored_name: self.upload}


def add_pending(store: LibraryStore, image_hasher: ImageHasher, pending: list[Pending], batch_size: int,
                workers: int | None, progress: bool, on_batch: Callable[[list[str]], None] | None) -> AddReport:
    """Batches of decode -> encode -> append features -> one SQLite commit; sources already present are
    skipped, removed ones restored. An unfitted hasher stores features only (its fit codes them).
    Each new image's duplicates among the images before it are reported, never refused."""
    report, todo = AddReport(), {}
    for item in pending:
        state = None if item.source in todo else store.meta.source_state(item.source)
        if item.source in todo or (state is not None and state[1]):
            report.skipped += 1
        elif state is None:
            todo[item.source] = item
        else:
            report.ids.append(store.restore(state[0], item.row(), item.uploads))
            report.restored += 1
    hashes: dict[str, str] = {}

    def read(source: str) -> bytes:   # in a worker thread: keep the content hash of the bytes read
        data = todo[source].read()
        hashes[source] = hashlib.sha256(data).hexdigest()
        return data

    fitted = image_hasher.is_fitted
    bar = tqdm(total=len(todo), desc=f"adding to {store.path.name}", unit="img", disable=not progress)
    for batch in iter_batches(list(todo), read, image_hasher.preprocess, batch_size, workers):
        report.failed += batch.failed
        if batch.ids:
            items = [todo[s] for s in batch.ids]
            codes, features = (image_hasher.encode_arrays(batch.inputs) if fitted
                               else (None, image_hasher.features(batch.inputs)))
            ids = store.commit([item.row(hashes[item.source]) for item in items], features, codes,
                               {k: v for item in items for k, v in item.uploads.items()})
            report.ids += ids
            report.duplicates |= library_duplicates(store, ids, codes, features, [hashes[i.source] for i in items],
                                                    [i.read for i in items])
            if on_batch is not None:
                on_batch(list(batch.ids))
        bar.update(len(batch.ids) + len(batch.failed))
    bar.close()
    if report.failed:
        log.warning("skipped %d unreadable images, e.g. %s: %s", len(report.failed), *report.failed[0])
    return report


def from_paths(paths: Sequence[str | Path], labels: Sequence[str | None] | None) -> list[Pending]:
    labels = [None] * len(paths) if labels is None else list(labels)
    if len(labels) != len(paths):
        raise InvalidInputError(f"got {len(labels)} labels for {len(paths)} paths")
    pending = []
    for path, label in zip(paths, labels):
        path = Path(path).expanduser().resolve()
        pending.append(Pending(str(path), path.name, label, path.read_bytes))
    return pending


def from_dataset(dataset: ImageDataset, ids: Sequence[str] | None) -> list[Pending]:
    ids = dataset.ids if ids is None else list(ids)
    return [Pending(source_of(dataset, image_id), image_id, dataset.classes[label] if label >= 0 else None,
                    partial(dataset.read_bytes, image_id))
            for image_id, label in zip(ids, dataset.labels(ids))]


def from_uploads(images: Sequence[bytes], names: Sequence[str] | None, labels: Sequence[str | None] | None,
                 store: bool) -> list[Pending]:
    """Uploaded bytes; the source key is their content hash, so the same bytes twice add one image."""
    names = [f"upload-{n}" for n in range(len(images))] if names is None else list(names)
    labels = [None] * len(images) if labels is None else list(labels)
    if not len(images) == len(names) == len(labels):
        raise InvalidInputError(f"got {len(images)} images, {len(names)} names and {len(labels)} labels")
    pending = []
    for data, name, label in zip(images, names, labels):
        data = bytes(data)
        source = UPLOAD + hashlib.sha256(data).hexdigest()
        pending.append(Pending(source, name, label, partial(bytes, data), data if store else None))
    return pending


def source_of(dataset: ImageDataset, image_id: str) -> str:
    """The original path of a folder image, ``archive::member`` for an archive member."""
    if isinstance(dataset, FolderDataset):
        return str(dataset.path(image_id))
    where = str(dataset.path) if isinstance(dataset, ArchiveDataset) else dataset.source_key()
    return f"{where}::{image_id}"
