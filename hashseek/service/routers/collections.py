"""The served collections: which there are, and what each holds."""
from __future__ import annotations

from fastapi import APIRouter, Request

from hashseek.service.dependencies import LibraryDep
from hashseek.service.schemas import CollectionInfo, CollectionSummary, Error

router = APIRouter(prefix="/api/collections", tags=["collections"])


@router.get("", response_model=list[CollectionSummary])
async def list_collections(request: Request) -> list[CollectionSummary]:
    guard = request.app.state.guard
    return [CollectionSummary(name=name, images=len(lib.collection), n_bits=lib.collection.n_bits,
                              writable=guard.writable and not lib.collection.read_only,
                              needs_api_key=guard.api_key is not None)
            for name, lib in request.app.state.libraries.items()]


@router.get("/{name}", response_model=CollectionInfo,
            responses={404: {"model": Error, "description": "no such collection"}})
async def collection_info(library: LibraryDep) -> CollectionInfo:
    """Counts, images per label (the page's label filter), code length and how the codes are made."""
    return CollectionInfo(name=library.name, **await library.run(library.collection.info))
