"""The app factory: it opens the collections and assembles the routers, handlers and middleware.

Layout (FastAPI's "bigger applications"): ``dependencies`` (the library lookup, the write
guard, strict integer parameters, decoding), one router per area under ``routers/``,
``errors`` (one handler per typed error, JSON bodies everywhere), ``middleware`` (body limit,
allowed hosts), ``library`` (one thread per collection), ``training`` (training runs in subprocesses),
``config`` (the settings' defaults).
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Mapping

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

import hashseek
from hashseek.core.errors import InvalidInputError
from hashseek.search.collection import Collection
from hashseek.service.config import SERVICE_DEFAULTS
from hashseek.service.decoding import DecodeSlots
from hashseek.service.errors import add_error_handlers
from hashseek.service.guard import WriteGuard
from hashseek.service.library import Library
from hashseek.service.middleware import AllowedHosts, BodyLimit, BugsAnswered
from hashseek.service.routers import classify, library, search, service, training
from hashseek.service.routers import collections as collection_routes, refit as refit_routes
from hashseek.service.routers import duplicates as duplicate_routes
from hashseek.service.routers.service import STATIC_DIR
from hashseek.service.training import TrainingJobs

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]


def create_app(collections: Mapping[str, Collection | str | Path] | str | Path, api_key: str | None = None, *,
               host: str = "127.0.0.1", max_upload_bytes: int | None = None, max_pixels: int | None = None,
               max_decodes: int | None = None, warm_up: bool = False) -> FastAPI:
    """The app serving ``collections`` (name -> open Collection or its directory; one directory
    is served under its folder name). Directories are opened here and closed at shutdown; open
    collections stay the caller's. ``host`` is the address the server binds, which decides
    whether writes need the ``api_key`` (see ``WriteGuard``); limits not given take the defaults
    of ``ServiceConfig``; ``warm_up`` loads the models before serving."""
    guard = WriteGuard(api_key, host)  # before any collection opens: a bad key refuses to start
    config = replace(SERVICE_DEFAULTS, **{key: value for key, value in
                                          {"max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels,
                                           "max_decodes": max_decodes}.items() if value is not None})
    decode_slots = DecodeSlots(config.max_decodes)
    libraries = _open(collections, warm_up)
    trainings = TrainingJobs()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        trainings.close()
        for served in libraries.values():
            served.close()

    app = FastAPIOffline(title="hashseek", version=hashseek.__version__, lifespan=lifespan,
                         description="Content-based image retrieval with deep hashing: browse and manage a collection, "
                                     "search by any of its images or by an upload, classify by a top-k vote.")
    app.state.libraries = libraries
    app.state.guard = guard
    app.state.config = config
    app.state.decode_slots = decode_slots
    app.state.training = trainings
    add_error_handlers(app)
    app.add_middleware(BugsAnswered)   # added first: the innermost, just outside the typed errors' handlers
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    if guard.loopback:  # a page of another site whose name resolves to 127.0.0.1 (DNS rebinding)
        app.add_middleware(AllowedHosts, hosts=LOOPBACK_NAMES + [host])
    for router in (service.router, collection_routes.router, library.router, search.router, classify.router,
                   training.router):
        app.include_router(router)
    app.include_router(refit_routes.router)
    app.include_router(duplicate_routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _open(collections: Mapping[str, Collection | str | Path] | str | Path, warm_up: bool) -> dict[str, Library]:
    """A ``Library`` per collection; on any failure the ones already opened are closed again."""
    if isinstance(collections, (str, Path)):
        collections = {Path(collections).expanduser().resolve().name: collections}
    if not collections:
        raise InvalidInputError("give at least one collection to serve")
    libraries: dict[str, Library] = {}
    try:
        for name, collection in collections.items():
            libraries[name] = Library(name, collection)
            if warm_up:
                libraries[name].warm_up()
    except BaseException:
        for served in libraries.values():
            served.close()
        raise
    return libraries
