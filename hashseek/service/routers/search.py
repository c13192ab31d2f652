"""Search a collection: by a library image, at random, by an upload; and the defaults of every search."""
from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, UploadFile

from hashseek.search.defaults import SEARCH_DEFAULTS
from hashseek.service.dependencies import ImageId, LibraryDep, Seed, decode
from hashseek.service.responses import search_response, upload_query
from hashseek.service.schemas import BAD_IMAGE, NOT_FOUND, SearchParams, SearchResponse

router = APIRouter(tags=["search"])
Search = Annotated[SearchParams, Query()]


@router.get("/api/search-defaults", response_model=dict[str, Any])
async def search_defaults() -> dict:
    """What a search uses for a parameter it is not given: ``k`` results, ``vote_k`` voters when classifying,
    the ``rerank`` distance (null: Hamming order only) over the top ``candidates`` (null: the collection's
    rule), and the rest of ``hashseek.search.defaults.SearchDefaults``. The page starts from these."""
    return SEARCH_DEFAULTS.to_dict()


@router.get("/api/collections/{name}/images/{image_id}/similar", response_model=SearchResponse,
            responses=NOT_FOUND)
async def search_by_id(library: LibraryDep, image_id: ImageId, params: Search) -> SearchResponse:
    """Images like a library image (the page's "click any picture"); the image itself is left out."""
    result = await library.run(library.collection.search, image_id, **params.resolved())
    return search_response(library, result)


@router.get("/api/collections/{name}/search/random", response_model=SearchResponse, responses=NOT_FOUND)
async def search_random(library: LibraryDep, params: Search, seed: Seed = None) -> SearchResponse:
    """Search by a library image drawn with ``seed`` (a fresh seed when none is given; the answer names it)."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    result = await library.run(library.collection.search_random, seed, **params.resolved())
    return search_response(library, result)


@router.post("/api/collections/{name}/search", response_model=SearchResponse, responses={**NOT_FOUND, **BAD_IMAGE})
async def search_by_upload(request: Request, library: LibraryDep, file: UploadFile, params: Search) -> SearchResponse:
    upload = await decode(request, library, await file.read(), file.filename)
    result = await library.run(library.collection.search, upload.image, content_hash=upload.content_hash,
                               **params.resolved())
    return search_response(library, result, upload_query(result, file.filename), upload.seconds)
