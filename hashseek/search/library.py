"""Reading a collection's library images back: where a record's bytes live, and the library as an
``ImageDataset`` (its images with their labels) that training code can take like any folder."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from hashseek.data.datasets import ImageDataset, open_images
from hashseek.search.layout import IMAGES_DIR
from hashseek.search.metadata import Record


class ImageFiles:
    """Reads a record's bytes where its metadata says they are (never from a request path): the stored
    copy under images/, an archive member (archives opened once, on demand) or the original file."""

    def __init__(self, collection_path: Path):
        self.collection_path = collection_path
        self._archives: dict[str, ImageDataset] = {}

    def read(self, record: Record) -> bytes:
        if record.stored is not None:
            return (self.collection_path / IMAGES_DIR / record.stored).read_bytes()
        where, separator, member = record.source.partition("::")
        if separator:
            archive = self._archives.get(where) or self._archives.setdefault(where, open_images(where))
            return archive.read_bytes(member)
        return Path(record.source).read_bytes()

    def __getstate__(self) -> dict:  # archives reopen in another process
        return {"collection_path": self.collection_path, "_archives": {}}


class LibraryDataset(ImageDataset):
    """A collection's library images: ids are the library ids as strings, labels its label names
    (unlabelled images: -1). It holds the records, not the collection, so it outlives ``close``
    and pickles into worker processes."""

    def __init__(self, name: str, records: Sequence[Record], files: ImageFiles, created: str):
        classes = sorted({r.label for r in records if r.label is not None})
        index = {c: n for n, c in enumerate(classes)}
        super().__init__(name, [str(r.id) for r in records], [index.get(r.label, -1) for r in records], classes)
        self._records = {str(r.id): r for r in records}
        self._files = files
        digest = hashlib.sha256("\n".join(f"{r.id}\t{r.source}" for r in records).encode()).hexdigest()[:16]
        self._key = f"hashseek-collection:{created}:{digest}"

    def read_bytes(self, image_id: str) -> bytes:
        return self._files.read(self._records[image_id])

    def record(self, image_id: str) -> Record:
        return self._records[image_id]

    def source_key(self) -> str:
        """Library ids are never reused and an id's bytes never change, so the ids and sources name them."""
        return self._key
