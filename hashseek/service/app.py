"""The FastAPI application: one or more collections behind a REST API, the page at ``/``.

Concurrency. Calls to a ``Collection`` must not overlap, so each served collection gets one
worker thread that runs every call on it (and opens it, when given its directory): requests
to one collection queue there, while decoding uploads and making thumbnails run in the shared
thread pool beside them.
"""
from __future__ import annotations

import asyncio
import ipaddress
import secrets
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image

import hashseek
from hashseek.data.images import ImageDecodeError
from hashseek.search.collection import Collection
from hashseek.service.media import ImageUnavailable

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000     # about 8,000 x 6,000: any photo, not a decompression bomb
STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]

T = TypeVar("T")


class Library:
    """A served collection and the one thread that owns it."""

    def __init__(self, name: str, collection: Collection | str | Path):
        self.name = name
        self.url_name = quote(name, safe="")
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"collection-{name}")
        self.owned = not isinstance(collection, Collection)
        self.collection: Collection = (self._thread.submit(Collection.open, collection).result()
                                       if self.owned else collection)
        self.path = self.collection.path

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn`` on the collection's thread; its KeyError (unknown id) becomes a 404 and its
        ValueError (an empty collection, a query it cannot answer) a 400."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, partial(fn, *args, **kwargs))
        except KeyError as err:
            raise HTTPException(404, err.args[0] if err.args else "not found") from err
        except ValueError as err:
            raise HTTPException(400, str(err)) from err

    def warm_up(self) -> None:
        """Search with a blank image once, so the first upload does not wait seconds for the model (and
        the re-rank kernels of the page's default distance) to load."""
        try:
            self._thread.submit(self.collection.search, Image.new("RGB", (64, 64)), 1, rerank="chi2").result()
        except ValueError:
            pass  # nothing searchable yet: the model loads with the first images added

    def close(self) -> None:
        if self.owned:
            self._thread.submit(self.collection.close).result()
        self._thread.shutdown()


class WriteGuard:
    """Who may add and remove: anyone on loopback without a key; with a key, only its holders;
    on any other address without a key, nobody (an open write API on a network is a mistake).
    A browser's write from another site's page (its Origin is not this server) is refused too."""

    def __init__(self, api_key: str | None, host: str):
        if api_key is not None and not api_key.strip():  # an unset variable expanded to "": no key at all
            raise ValueError("the API key is empty: give a non-empty --api-key or HASHSEEK_API_KEY, or none at all")
        self.api_key = api_key
        self.loopback = _is_loopback(host)

    @property
    def writable(self) -> bool:
        return self.api_key is not None or self.loopback

    def check(self, given_key: str | None, origin: str | None, host: str | None) -> None:
        if origin is not None and urlsplit(origin).netloc != host:
            raise HTTPException(403, f"writes from pages of another site ({origin}) are refused")
        if self.api_key is None:
            if not self.loopback:
                raise HTTPException(403, "writes are disabled on a non-loopback address without an API key "
                                         "(start the server with --api-key)")
            return
        if given_key is None or not secrets.compare_digest(given_key.encode(), self.api_key.encode()):
            raise HTTPException(401, "a valid X-API-Key header is required for this request",
                                headers={"WWW-Authenticate": "X-API-Key"})


def create_app(collections: Mapping[str, Collection | str | Path] | str | Path, api_key: str | None = None, *,
               host: str = "127.0.0.1", max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS, warm_up: bool = False) -> FastAPI:
    """The app serving ``collections`` (name -> open Collection or its directory; one directory
    is served under its folder name). Directories are opened here and closed at shutdown; open
    collections stay the caller's. ``host`` is the address the server binds, which decides
    whether writes need the ``api_key`` (see ``WriteGuard``); ``warm_up`` loads the models before serving."""
    from hashseek.service import routes  # here: the routes import Library from this module

    guard = WriteGuard(api_key, host)  # before any collection opens: a bad key refuses to start
    if isinstance(collections, (str, Path)):
        collections = {Path(collections).expanduser().resolve().name: collections}
    if not collections:
        raise ValueError("give at least one collection to serve")
    libraries: dict[str, Library] = {}
    try:
        for name, collection in collections.items():
            libraries[name] = Library(name, collection)
            if warm_up:
                libraries[name].warm_up()
    except BaseException:
        for library in libraries.values():
            library.close()
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for library in libraries.values():
            library.close()

    # max_body_size: FastAPI counts the body while it streams in and answers 413 past the limit.
    app = FastAPIOffline(title="hashseek", version=hashseek.__version__, lifespan=lifespan,
                         max_body_size=max_upload_bytes,
                         description="Content-based image retrieval with deep hashing: browse a collection, "
                                     "search by any of its images or by an upload, classify by a top-k vote.")
    app.state.libraries = libraries
    app.state.guard = guard
    app.state.max_pixels = max_pixels
    if app.state.guard.loopback:  # a page of another site whose name resolves to 127.0.0.1 (DNS rebinding)
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES + [host])

    @app.exception_handler(ImageDecodeError)
    async def bad_image(request: Request, err: ImageDecodeError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, 422)

    @app.exception_handler(ImageUnavailable)
    async def unavailable(request: Request, err: ImageUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, 404)

    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
