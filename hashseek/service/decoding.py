"""Decoding under a memory bound: a cap on concurrent decodes, and memory handed back after a burst.

Every decode the service does (uploads, thumbnails) runs through ``DecodeSlots``: at most
``max_decodes`` at once, in the thread pool. A decode may hold an image at full size for a
moment (see ``hashseek.data.images.load_image``); once the last decode of a burst is done, glibc
is asked to return its freed memory (``malloc_trim``). Without that, the arenas of the pool's
threads kept a burst's peak: 8 uploads of a 7000 x 7000 PNG left 2.2 GB held.
"""
from __future__ import annotations

import asyncio
import ctypes
import sys
from typing import Callable, TypeVar

from fastapi.concurrency import run_in_threadpool

T = TypeVar("T")


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)   # glibc only (musl has none)
    except OSError:
        return None


_MALLOC_TRIM = _malloc_trim()


def release_memory() -> None:
    """Return the C heap's free pages to the system (a no-op where the C library cannot)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class DecodeSlots:
    """At most ``slots`` decodes at once; memory released when none is running or waiting."""

    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError(f"max_decodes must be at least 1, got {slots}")
        self._slots = asyncio.Semaphore(slots)
        self._pending = 0     # running or waiting for a slot

    async def run(self, fn: Callable[..., T], *args) -> T:
        self._pending += 1
        try:
            async with self._slots:
                return await run_in_threadpool(fn, *args)
        finally:
            self._pending -= 1
            if self._pending == 0:
                await run_in_threadpool(release_memory)
