"""A collection's model: refitting a zero-training hasher, reindexing with another model, and restoring the
model a reindex replaced (each switch in one call, or staged so that the encoding runs beside the searches).

``ModelMethods`` is a part of ``Collection`` (its base class); it works on the collection's stores.
"""
from __future__ import annotations

from pathlib import Path
from time import perf_counter
from typing import Callable

from hashseek.core.errors import ConflictError
from hashseek.core.hasher import ImageHasher
from hashseek.search import reindex as reindexing
from hashseek.search.layout import HASHER_DIR
from hashseek.search.metadata import Metadata
from hashseek.search.refit_policy import RefitPolicy, RefitReport, refit_due, stored_policy
from hashseek.search.staged_reindex import StagedReindex
from hashseek.search.store import LibraryStore


class ModelMethods:
    """Refit, reindex and restore (``Collection``'s; see its docstring for the threading rule)."""

    path: Path
    read_only: bool
    image_hasher: ImageHasher
    config: dict
    batch_size: int
    workers: int | None
    _meta: Metadata
    _store: LibraryStore
    _staged: StagedReindex | None

    def _refit_if_due(self) -> None:
        if not self.read_only and refit_due(self._meta, self.image_hasher, len(self)):
            self.refit()

    def refit(self) -> RefitReport:
        """Fit a refittable hasher on the library's stored features and recompute every code, atomically
        (``LibraryStore.refit``); nothing is decoded again. ``add_*`` calls it when the refit policy says
        (``search.refit_policy``); a trained model's collection refuses with a ``ConflictError``.
        """
        self._require_open()
        start = perf_counter()
        self._store.refit(self.image_hasher, self.path / HASHER_DIR)
        return RefitReport(len(self), self.image_hasher.n_fit, round(perf_counter() - start, 3),
                           self.image_hasher.fit_digest)

    @property
    def refit_policy(self) -> RefitPolicy | None:
        """When the hasher is refitted as the library grows; None for a trained model (never refitted)."""
        return stored_policy(self._meta) if self.image_hasher.can_refit else None

    def reindex(self, image_hasher: ImageHasher, *, progress: bool = True,
                on_batch: Callable[[list[int]], None] | None = None) -> reindexing.ReindexReport:
        """Re-encode every library image with another model (or hasher) and swap it in atomically.

        The new features and codes are staged beside the live ones (resumable: calling again with
        the same model continues); searches use the old model until the swap, which keeps it
        restorable with ``restore_previous``. Images that cannot be read leave the library at the swap.
        ``begin_reindex`` runs the same steps with the encoding on another thread.
        """
        return self._run_staged(self.begin_reindex(image_hasher), progress, on_batch)

    def begin_reindex(self, image_hasher: ImageHasher) -> StagedReindex:
        """Stage a reindex whose ``encode`` may run on any thread while this collection keeps answering
        searches and reads from the live model; changes are refused (``ConflictError``) until
        ``commit_reindex`` swaps it in or ``end_reindex`` gives it up (see ``search.staged_reindex``)."""
        self._require_open()
        self._store.require_writable()
        return self._stage(image_hasher, "being re-encoded with a new model")

    def begin_restore(self) -> StagedReindex:
        """``begin_reindex`` with the model the last reindex replaced (``restore_previous``'s first step);
        it stays restorable until the swap, and a restore given up is continued by the next one."""
        self._require_open()
        self._store.require_writable()
        return self._stage(reindexing.stage_previous(self.path, self._meta), "switching back to its previous model")

    def _stage(self, image_hasher: ImageHasher, doing: str) -> StagedReindex:
        self._staged = StagedReindex(self.path, self._meta, self.config, image_hasher, self._library_records(),
                                     self.batch_size, self.workers)
        self._store.busy = (f"collection {self.path.name!r} is {doing}: it cannot change until the switch "
                            "(searches and reads keep answering meanwhile)")
        return self._staged

    def _run_staged(self, staged: StagedReindex, progress: bool,
                    on_batch: Callable[[list[int]], None] | None) -> reindexing.ReindexReport:
        try:
            staged.encode(progress, on_batch)
            return self.commit_reindex(staged)
        finally:
            self.end_reindex(staged)

    def commit_reindex(self, staged: StagedReindex) -> reindexing.ReindexReport:
        """Swap an encoded staging in (one SQLite transaction, then the files; see ``search.reindex``)."""
        self._require_open()
        if staged is not self._staged or staged.report is None:
            raise ConflictError(f"{self.path}: this reindex is not staged completely")
        reindexing.commit_swap(self.path, self._meta, staged.slot, staged.image_hasher)
        reindexing.finish_swap(self.path, self._meta)
        self._staged = None
        self._reload(staged.image_hasher)
        return staged.report

    def end_reindex(self, staged: StagedReindex) -> None:
        """Give a staged reindex up (after a failure): changes are accepted again; its slot stays, so the
        same model continues it. Nothing to do once it was committed."""
        if staged is self._staged:
            self._staged = None
            self._store.busy = None

    def restore_previous(self, *, progress: bool = True) -> reindexing.ReindexReport:
        """Swap the model a reindex replaced back in (images added since are encoded with it); the same
        staged steps as ``reindex``, ``begin_restore`` first."""
        return self._run_staged(self.begin_restore(), progress, None)

    def _reload(self, image_hasher: ImageHasher | None = None) -> None:
        """After a swap: the model files changed under this object."""
        self._store.close()
        self._load_model(image_hasher)

    @property
    def previous_hasher(self) -> dict | None:
        """How the model the last reindex replaced made its codes (``restore_previous`` brings it back)."""
        self._require_open()
        return reindexing.previous_model(self.path, self._meta)
