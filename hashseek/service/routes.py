"""The REST routes: browse a collection, search it (by a library image, at random, by an upload),
classify an upload, and edit it (add, remove; guarded by ``WriteGuard``)."""
from __future__ import annotations

import secrets
from time import perf_counter
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Header, HTTPException, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from PIL import Image

from hashseek.search.collection import Record
from hashseek.search.engine import SearchResult
from hashseek.service.app import Library
from hashseek.service.media import decode_upload, forget_thumbnail, media_type, original_bytes, thumbnail
from hashseek.service.schemas import (AddResponse, ClassifyParams, ClassifyResponse, CollectionInfo,
                                      CollectionSummary, Error, Health, Hit, ImageOut, ImagePage, RemoveResponse,
                                      SearchParams, SearchResponse)

router = APIRouter()
# Paths that responses link to, formatted directly (``url_path_for`` costs 0.1 ms a call, 20+ calls a search).
THUMBNAIL_PATH = "/api/collections/{name}/images/{image_id}/thumbnail"
FILE_PATH = "/api/collections/{name}/images/{image_id}/file"
_NOT_FOUND = {404: {"model": Error, "description": "no such collection or image"}}
_BAD_IMAGE = {413: {"description": "upload too large"},
              422: {"model": Error, "description": "not a usable image (corrupt, truncated, empty, too many pixels)"}}
_WRITE = {401: {"model": Error, "description": "missing or wrong X-API-Key"},
          403: {"model": Error, "description": "writes are disabled on this address, or came from another site"}}


def get_library(request: Request, name: str) -> Library:
    try:
        return request.app.state.libraries[name]
    except KeyError:
        raise HTTPException(404, f"no collection named {name!r}") from None


def require_write(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    request.app.state.guard.check(x_api_key, request.headers.get("origin"), request.headers.get("host"))


LibraryDep = Annotated[Library, Depends(get_library)]
ImageId = Annotated[int, Path(ge=0, le=2**63 - 1, description="the image's id in the collection")]
Search = Annotated[SearchParams, Query()]


# ---------------------------------------------------------------------------------------- service
@router.get("/health", response_model=Health, tags=["service"])
async def health(request: Request) -> Health:
    """Alive, and how many images each collection holds (read without queueing behind a running add)."""
    libraries = request.app.state.libraries
    return Health(status="ok", collections={name: len(lib.collection) for name, lib in libraries.items()})


@router.get("/api/collections", response_model=list[CollectionSummary], tags=["collections"])
async def list_collections(request: Request) -> list[CollectionSummary]:
    guard = request.app.state.guard
    return [CollectionSummary(name=name, images=len(lib.collection), n_bits=lib.collection.n_bits,
                              writable=guard.writable, needs_api_key=guard.api_key is not None)
            for name, lib in request.app.state.libraries.items()]


@router.get("/api/collections/{name}", response_model=CollectionInfo, responses=_NOT_FOUND, tags=["collections"])
async def collection_info(library: LibraryDep) -> CollectionInfo:
    """Counts, images per label (the page's label filter), code length and how the codes are made."""
    return CollectionInfo(name=library.name, **await library.run(library.collection.info))


# ---------------------------------------------------------------------------------------- library
@router.get("/api/collections/{name}/images", response_model=ImagePage, responses=_NOT_FOUND, tags=["library"])
async def list_images(library: LibraryDep, offset: Annotated[int, Query(ge=0)] = 0,
                      limit: Annotated[int, Query(ge=1, le=500)] = 60, label: str | None = None) -> ImagePage:
    """One page of the library in insertion order, optionally of one label: never the whole list."""
    records = await library.run(library.collection.list, offset, limit + 1, label)
    return ImagePage(offset=offset, limit=limit, has_more=len(records) > limit,
                     items=[_image_out(library, r) for r in records[:limit]])


@router.get("/api/collections/{name}/images/{image_id}", response_model=ImageOut, responses=_NOT_FOUND,
            tags=["library"])
async def get_image(library: LibraryDep, image_id: ImageId) -> ImageOut:
    return _image_out(library, await _library_record(library, image_id))


@router.get(THUMBNAIL_PATH, response_class=FileResponse,
            responses={**_NOT_FOUND, 200: {"content": {"image/jpeg": {}}}}, tags=["library"])
async def get_thumbnail(request: Request, library: LibraryDep, image_id: ImageId) -> FileResponse:
    """A JPEG of at most 256 px a side, made on first request and cached in the collection."""
    record = await _library_record(library, image_id)
    path = await run_in_threadpool(thumbnail, library.collection, record, request.app.state.max_pixels)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get(FILE_PATH, response_class=Response,
            responses={**_NOT_FOUND, 200: {"content": {"image/*": {}}}}, tags=["library"])
async def get_image_file(library: LibraryDep, image_id: ImageId) -> Response:
    """The original bytes, typed by what they are (not by their name)."""
    record = await _library_record(library, image_id)
    data = await run_in_threadpool(original_bytes, library.collection, record)
    return Response(data, media_type=media_type(data), headers={"X-Content-Type-Options": "nosniff"})


@router.post("/api/collections/{name}/images", response_model=AddResponse, status_code=201,
             responses={**_NOT_FOUND, **_BAD_IMAGE, **_WRITE}, dependencies=[Depends(require_write)],
             tags=["library"])
async def add_images(request: Request, library: LibraryDep, files: list[UploadFile],
                     label: Annotated[str | None, Form()] = None) -> AddResponse:
    """Add uploaded images with one label; nothing is added unless every file decodes."""
    data = [await file.read() for file in files]
    for file, blob in zip(files, data):
        await _decode(request, library, blob, file.filename)
    report = await library.run(library.collection.add_images, data, [f.filename or "upload" for f in files],
                               [label or None] * len(files))
    return AddResponse(ids=report.ids, skipped=report.skipped, restored=report.restored,
                       failed=[reason for _, reason in report.failed], images=len(library.collection))


@router.delete("/api/collections/{name}/images/{image_id}", response_model=RemoveResponse,
               responses={**_NOT_FOUND, **_WRITE}, dependencies=[Depends(require_write)], tags=["library"])
async def remove_image(library: LibraryDep, image_id: ImageId) -> RemoveResponse:
    removed = await library.run(library.collection.remove, [image_id])
    forget_thumbnail(library.path, image_id)
    return RemoveResponse(removed=removed, images=len(library.collection))


# ---------------------------------------------------------------------------------------- search
@router.get("/api/collections/{name}/images/{image_id}/similar", response_model=SearchResponse,
            responses=_NOT_FOUND, tags=["search"])
async def search_by_id(library: LibraryDep, image_id: ImageId, params: Search) -> SearchResponse:
    """Images like a library image (the page's "click any picture"); the image itself is left out."""
    result = await library.run(library.collection.search, image_id, **params.model_dump())
    return _search_response(library, result)


@router.get("/api/collections/{name}/search/random", response_model=SearchResponse, responses=_NOT_FOUND,
            tags=["search"])
async def search_random(library: LibraryDep, params: Search,
                        seed: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None) -> SearchResponse:
    """Search by a library image drawn with ``seed`` (a fresh seed when none is given; the answer names it)."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    result = await library.run(library.collection.search_random, seed, **params.model_dump())
    return _search_response(library, result)


@router.post("/api/collections/{name}/search", response_model=SearchResponse,
             responses={**_NOT_FOUND, **_BAD_IMAGE}, tags=["search"])
async def search_by_upload(request: Request, library: LibraryDep, file: UploadFile,
                           params: Search) -> SearchResponse:
    image, decode_s = await _decode(request, library, await file.read(), file.filename)
    result = await library.run(library.collection.search, image, **params.model_dump())
    return _search_response(library, result, {"upload": file.filename}, decode_s)


@router.post("/api/collections/{name}/classify", response_model=ClassifyResponse,
             responses={**_NOT_FOUND, **_BAD_IMAGE}, tags=["search"])
async def classify_upload(request: Request, library: LibraryDep, file: UploadFile,
                          params: Annotated[ClassifyParams, Query()]) -> ClassifyResponse:
    """The label most of the ``k`` nearest labelled images share, with every class's vote share;
    a new class needs no training, only images added with its label."""
    image, decode_s = await _decode(request, library, await file.read(), file.filename)
    result = await library.run(library.collection.classify, image, **params.model_dump())
    return ClassifyResponse(label=result.label, distribution=result.distribution,
                            neighbours=_search_response(library, result.neighbours,
                                                        {"upload": file.filename}, decode_s))


# ---------------------------------------------------------------------------------------- helpers
async def _library_record(library: Library, image_id: int) -> Record:
    record = await library.run(library.collection.get, image_id)
    if not record.in_library:
        raise HTTPException(404, f"image {image_id} was removed from the collection")
    return record


async def _decode(request: Request, library: Library, data: bytes, name: str | None) -> tuple[Image.Image, float]:
    """Decode an upload in the thread pool (not on the collection's thread): the image and the seconds it took."""
    start = perf_counter()
    image = await run_in_threadpool(decode_upload, data, name or "upload",
                                    library.collection.image_hasher.preprocess.input_size,
                                    request.app.state.max_pixels)
    return image, perf_counter() - start


def _thumbnail_url(library: Library, image_id: int) -> str:
    return THUMBNAIL_PATH.format(name=library.url_name, image_id=image_id)


def _image_out(library: Library, record: Record) -> ImageOut:
    return ImageOut(id=record.id, name=record.name, label=record.label, added_at=record.added_at,
                    thumbnail_url=_thumbnail_url(library, record.id),
                    image_url=FILE_PATH.format(name=library.url_name, image_id=record.id))


def _search_response(library: Library, result: SearchResult, query: dict | None = None,
                     decode_s: float = 0.0) -> SearchResponse:
    """Hits with their thumbnail URLs; the server time, the upload's decoding included."""
    timings = dict(result.timings)
    if decode_s:
        timings = {"decode": decode_s, **timings, "total": timings["total"] + decode_s}
    hits = [Hit(id=h.id, name=h.name, label=h.label, hamming=h.hamming, distance=h.distance,
                thumbnail_url=_thumbnail_url(library, h.id)) for h in result.hits]
    return SearchResponse(query=query or result.query, mode=result.mode, n_candidates=result.n_candidates,
                          took_ms=1000 * timings["total"], timings_ms={k: 1000 * v for k, v in timings.items()},
                          hits=hits)
