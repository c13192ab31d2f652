"""A served collection and the one thread that owns it.

Calls to a ``Collection`` must not overlap, so each served collection gets one worker thread
that runs every call on it (and opens it, when given its directory): requests to one collection
queue there, while decoding uploads and making thumbnails run in the shared thread pool beside them.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import quote

from PIL import Image

from hashseek.core.errors import ConflictError
from hashseek.search.collection import Collection
from hashseek.search.defaults import SEARCH_DEFAULTS

T = TypeVar("T")


class Library:
    """A served collection and the one thread that owns it."""

    def __init__(self, name: str, collection: Collection | str | Path):
        self.name = name
        self.url_name = quote(name, safe="")
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"collection-{name}")
        self.owned = not isinstance(collection, Collection)
        # read_only=None: a directory the server cannot write (a read-only mount) is served read-only
        self.collection: Collection = (self._thread.submit(Collection.open, collection, read_only=None).result()
                                       if self.owned else collection)
        self.path = self.collection.path

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn`` on the collection's thread. Its typed errors reach the app's handlers as they are;
        anything else is a bug and answers 500."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, partial(fn, *args, **kwargs))

    def warm_up(self) -> None:
        """Search with a blank image once, so the first upload does not wait seconds for the model (and
        the re-rank kernels of the default distance) to load."""
        try:
            self._thread.submit(self.collection.search, Image.new("RGB", (64, 64)), 1,
                                rerank=SEARCH_DEFAULTS.rerank).result()
        except ConflictError:
            pass  # no codes yet: the model loads with the first images added

    def close(self) -> None:
        if self.owned:
            self._thread.submit(self.collection.close).result()
        self._thread.shutdown()
