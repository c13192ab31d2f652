"""A reindex whose slow part runs beside the live collection: the re-encoding of every library image.

``Collection.begin_reindex`` (or ``begin_restore``, with the previous model) picks the staging slot
(``search.reindex.stage_slot``) and snapshots the library's records; from then on the collection
refuses changes (they would miss the slot), while searches and reads keep answering from the live
model. ``StagedReindex.encode`` may run on
any thread: it has its own SQLite connection and its own image reader, and writes only the slot
(its folder and its ``slot_rows``), which nothing live reads. ``Collection.commit_reindex`` then
swaps the slot in, atomically, on the collection's own thread; ``Collection.end_reindex`` gives up
(the slot stays staged: the same model continues it later).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from hashseek.core.errors import ConflictError
from hashseek.core.hasher import ImageHasher
from hashseek.search import reindex as reindexing
from hashseek.search.layout import META_DB
from hashseek.search.library import ImageFiles
from hashseek.search.metadata import Metadata, Record


class StagedReindex:
    """The staging of one reindex: its slot, the records it encodes, and its progress."""

    def __init__(self, path: Path, meta: Metadata, config: dict, image_hasher: ImageHasher, records: list[Record],
                 batch_size: int, workers: int | None):
        """Called on the collection's thread (``Collection.begin_reindex``)."""
        self.path, self.config, self.image_hasher, self.records = path, config, image_hasher, records
        self.batch_size, self.workers, self.repair = batch_size, workers, meta.repair
        self.slot = reindexing.stage_slot(path, meta, image_hasher)
        staged = {row[0] for row in meta.query("SELECT id FROM slot_rows WHERE slot = ?", (self.slot,))}
        self.total = len(records)
        self.done = sum(record.id in staged for record in records)   # staged by an interrupted run
        self.report: reindexing.ReindexReport | None = None
        self._stop, self._idle = threading.Event(), threading.Event()
        self._idle.set()

    def encode(self, progress: bool = True, on_batch: Callable[[list[int]], None] | None = None) -> None:
        """Encode the library into the slot (any thread; the collection keeps answering meanwhile)."""
        def counted(ids: list[int]) -> None:
            self.done += len(ids)
            if on_batch is not None:
                on_batch(ids)
            self._check_stop()   # after the batch's commit: a rerun continues from here

        self._idle.clear()
        try:
            self._check_stop()   # stopped before it began (a server shut down right after starting it)
            meta = Metadata(self.path / META_DB, repair=self.repair)   # SQLite connections are not shared
            try:
                self.report = reindexing.encode(self.path, meta, self.slot, self.config, self.image_hasher,
                                                self.records, ImageFiles(self.path).read, self.batch_size,
                                                self.workers, progress, counted)
                self.done = self.total   # kept codes and unreadable images count too
            finally:
                meta.close()
        finally:
            self._idle.set()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise ConflictError(f"the reindex of {self.path} was stopped; running it again with the same "
                                "model continues where it stopped")

    def stop(self, timeout: float | None = None) -> None:
        """Make ``encode`` stop after the batch under way (a server shutting down), and wait for it."""
        self._stop.set()
        self._idle.wait(timeout)
