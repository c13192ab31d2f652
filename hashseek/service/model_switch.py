"""Switching a served collection to a finished run's model while it keeps answering.

The reindex is staged on the collection's thread (``Collection.begin_reindex``: from then on adds,
removals, relabels and refits answer 409 saying why), its re-encoding runs on a worker thread
beside the searches and reads, which keep using the live model, and the atomic swap runs on the
collection's thread again (``Collection.commit_reindex``): requests queued behind it get the new model.
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

    state: str = "applying"          # applying | applied | failed
    total: int = 0
    encoded: int = 0
    error: str | None = None
    staged: StagedReindex | None = field(default=None, repr=False)
    stopped: bool = False            # the server is shutting down: the collection closes without it

    def out(self) -> dict:
        return {"state": self.state, "total": self.total, "encoded": self.encoded, "error": self.error}

    def failed(self, err: BaseException, folder: Path) -> None:
        if isinstance(err, HashseekError):
            self.error = str(err)
        else:   # a bug: the server's log has the traceback, the page a plain message
            log.error("applying training run %s failed", folder, exc_info=err)
            self.error = "internal error (the server's log has the details)"
        self.state = "failed"

    def stop(self) -> None:
        """Server shutdown: the encoding stops after its batch (the slot stays staged for a rerun)."""
        self.stopped = True
        if self.staged is not None:
            self.staged.stop(STOP_WAIT_S)


async def begin(library: Library, applying: Applying, folder: Path) -> None:
    """Load the run's model and stage the reindex (changes are refused from here on)."""
    try:
        image_hasher = await asyncio.to_thread(load_image_hasher, folder)
        staged = await library.run(library.collection.begin_reindex, image_hasher)
    except BaseException as err:
        applying.failed(err, folder)
        raise
    applying.staged, applying.total, applying.encoded = staged, staged.total, staged.done


async def finish(library: Library, applying: Applying, folder: Path) -> None:
    """Re-encode beside the searches, then swap; a failure leaves the old model (and its slot staged)."""
    staged = applying.staged

    def counted(ids: list[int]) -> None:
        applying.encoded = staged.done

    def swap() -> None:   # the state changes on the collection's thread: a request served after it sees it
        library.collection.commit_reindex(staged)
        applying.state = "applied"

    try:
        await asyncio.to_thread(staged.encode, False, counted)
        await library.run(swap)
    except Exception as err:
        applying.failed(err, folder)
    finally:
        if not applying.stopped:   # changes are accepted again (a no-op after the swap)
            await library.run(library.collection.end_reindex, staged)
