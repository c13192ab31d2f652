"""Switching a served collection to a finished run's model, or back to its previous one, while it keeps answering.

The reindex is staged on the collection's thread (``Collection.begin_reindex``, or ``begin_restore``:
from then on adds, removals, relabels and refits answer 409 saying why), its re-encoding runs on a
worker thread beside the searches and reads, which keep using the live model, and the atomic swap runs
on the collection's thread again (``Collection.commit_reindex``): requests queued behind it get the new model.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hashseek.core.errors import HashseekError
from hashseek.core.hasher import load_image_hasher
from hashseek.search.staged_reindex import StagedReindex
from hashseek.service.library import Library

log = logging.getLogger(__name__)
STOP_WAIT_S = 60   # a server shutting down waits this long for the batch under way


@dataclass
class Applying:
    """The switch of the collection to a run's model: re-encoding every library image, then the swap."""

    DONE = "applied"
    state: str = "applying"          # applying | applied | failed
    total: int = 0
    encoded: int = 0
    error: str | None = None
    staged: StagedReindex | None = field(default=None, repr=False)
    stopped: bool = False            # the server is shutting down: the collection closes without it

    @property
    def under_way(self) -> bool:
        return self.state not in (self.DONE, "failed")

    def out(self) -> dict:
        return {"state": self.state, "total": self.total, "encoded": self.encoded, "error": self.error}

    def failed(self, err: BaseException, what: str) -> None:
        if isinstance(err, HashseekError):
            self.error = str(err)
        else:   # a bug: the server's log has the traceback, the page a plain message
            log.error("%s failed", what, exc_info=err)
            self.error = "internal error (the server's log has the details)"
        self.state = "failed"

    def stop(self) -> None:
        """Server shutdown: the encoding stops after its batch (the slot stays staged for a rerun)."""
        self.stopped = True
        if self.staged is not None:
            self.staged.stop(STOP_WAIT_S)


@dataclass
class Restoring(Applying):
    """The switch back to the model the last switch replaced: encoding the images added since, then the swap."""

    DONE = "restored"
    state: str = "restoring"         # restoring | restored | failed


async def begin(library: Library, applying: Applying, folder: Path) -> None:
    """Load the run's model and stage the reindex (changes are refused from here on)."""
    try:
        image_hasher = await asyncio.to_thread(load_image_hasher, folder)
        staged = await library.run(library.collection.begin_reindex, image_hasher)
    except BaseException as err:
        applying.failed(err, f"applying training run {folder}")
        raise
    applying.staged, applying.total, applying.encoded = staged, staged.total, staged.done


async def begin_restore(library: Library, restoring: Restoring) -> None:
    """Stage the restore (changes are refused from here on); a collection without a previous model raises."""
    staged = await library.run(library.collection.begin_restore)
    restoring.staged, restoring.total, restoring.encoded = staged, staged.total, staged.done


async def finish(library: Library, applying: Applying, what: str) -> None:
    """Re-encode beside the searches, then swap; a failure leaves the old model (and its slot staged)."""
    staged = applying.staged
    if applying.stopped:   # the server began shutting down while the switch was being staged
        return

    def counted(ids: list[int]) -> None:
        applying.encoded = staged.done

    def swap() -> None:   # the state changes on the collection's thread: a request served after it sees it
        library.collection.commit_reindex(staged)
        applying.state = applying.DONE

    try:
        await asyncio.to_thread(staged.encode, False, counted)
        await library.run(swap)
    except Exception as err:
        applying.failed(err, what)
    finally:
        if not applying.stopped:   # changes are accepted again (a no-op after the swap)
            await library.run(library.collection.end_reindex, staged)
