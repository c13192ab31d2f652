"""The library: page through it, fetch an image or its thumbnail; add, remove and relabel images (guarded)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from hashseek.core.errors import InvalidInputError, NotFoundError
from hashseek.search.collection import Collection
from hashseek.service.dependencies import (Digits, ImageId, LibraryDep, WriteAllowed, decode,
                                           library_record)
from hashseek.service.decoding import release_memory
from hashseek.service.media import forget_thumbnail, media_type, original_bytes, thumbnail
from hashseek.service.responses import FILE_PATH, THUMBNAIL_PATH, image_out
from hashseek.service.schemas import (BAD_IMAGE, MAX_LABEL, NOT_FOUND, WRITE, AddResponse, IdsRequest, ImageOut,
                                      ImagePage, RelabelRequest, RelabelResponse, RemoveResponse, clean_label)

router = APIRouter(prefix="/api/collections/{name}/images", tags=["library"], responses=NOT_FOUND)


@router.get("", response_model=ImagePage)
async def list_images(library: LibraryDep, offset: Annotated[Digits, Query(ge=0)] = 0,
                      limit: Annotated[Digits, Query(ge=1, le=500)] = 60, label: str | None = None) -> ImagePage:
    """One page of the library in insertion order, optionally of one label: never the whole list."""
    records = await library.run(library.collection.list, offset, limit + 1, label)
    return ImagePage(offset=offset, limit=limit, has_more=len(records) > limit,
                     items=[image_out(library, r) for r in records[:limit]])


@router.get("/{image_id}", response_model=ImageOut)
async def get_image(library: LibraryDep, image_id: ImageId) -> ImageOut:
    return image_out(library, await library_record(library, image_id))


@router.get(THUMBNAIL_PATH.removeprefix("/api/collections/{name}/images"), response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}})
async def get_thumbnail(request: Request, library: LibraryDep, image_id: ImageId) -> FileResponse:
    """A JPEG of at most 256 px a side, made on first request and cached in the collection."""
    record = await library_record(library, image_id)
    path = await request.app.state.decode_slots.run(thumbnail, library.collection, record,
                                                    request.app.state.config.max_pixels)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get(FILE_PATH.removeprefix("/api/collections/{name}/images"), response_class=Response,
            responses={200: {"content": {"image/*": {}}}})
async def get_image_file(library: LibraryDep, image_id: ImageId) -> Response:
    """The original bytes, typed by what they are (not by their name)."""
    record = await library_record(library, image_id)
    data = await run_in_threadpool(original_bytes, library.collection, record)
    return Response(data, media_type=media_type(data), headers={"X-Content-Type-Options": "nosniff"})


@router.post("", response_model=AddResponse, status_code=201, responses={**BAD_IMAGE, **WRITE},
             dependencies=[WriteAllowed])
async def add_images(request: Request, library: LibraryDep, files: list[UploadFile],
                     label: Annotated[str | None, Form(max_length=MAX_LABEL, description="one label for every file")] = None,
                     labels: Annotated[list[str] | None, Form(description="a label per file, in their order (a "
                                                                          "folder's sub-folder names); empty: none")] = None
                     ) -> AddResponse:
    """Add uploaded images with one label, or a label each; nothing is added unless every file decodes."""
    if labels is not None and label is not None:
        raise InvalidInputError("give one label for all files or a label per file, not both")
    if labels is not None and len(labels) != len(files):
        raise InvalidInputError(f"got {len(labels)} labels for {len(files)} files")
    if labels is not None and any(len(name) > MAX_LABEL for name in labels):
        raise InvalidInputError(f"a label may have at most {MAX_LABEL} characters")
    chosen = [clean_label(name) for name in labels] if labels is not None else [clean_label(label)] * len(files)
    data = [await file.read() for file in files]
    for file, blob in zip(files, data):
        await decode(request, library, blob, file.filename)
    try:
        report = await library.run(library.collection.add_images, data, [f.filename or "upload" for f in files], chosen)
    finally:
        await library.run(release_memory)   # the add decoded every image again, on the collection's thread
    return AddResponse(ids=report.ids, skipped=report.skipped, restored=report.restored,
                       failed=[reason for _, reason in report.failed], images=len(library.collection))


@router.delete("/{image_id}", response_model=RemoveResponse, responses=WRITE, dependencies=[WriteAllowed])
async def remove_image(library: LibraryDep, image_id: ImageId) -> RemoveResponse:
    removed = await library.run(library.collection.remove, [image_id])
    forget_thumbnail(library.path, image_id)
    return RemoveResponse(removed=removed, images=len(library.collection))


@router.post("/remove", response_model=RemoveResponse, responses=WRITE, dependencies=[WriteAllowed])
async def remove_images(library: LibraryDep, body: IdsRequest) -> RemoveResponse:
    """Remove several images at once: all of them, or none when one is not in the library (404)."""
    removed = await library.run(library.collection.remove, body.ids)
    for image_id in body.ids:
        forget_thumbnail(library.path, image_id)
    return RemoveResponse(removed=removed, images=len(library.collection))


@router.post("/relabel", response_model=RelabelResponse, responses=WRITE, dependencies=[WriteAllowed])
async def relabel_images(library: LibraryDep, body: RelabelRequest) -> RelabelResponse:
    """Give one or several images a label (or none): all of them, or none when one is not in the library (404)."""
    count = await library.run(_relabel, library.collection, sorted(set(body.ids)), body.label)
    info = await library.run(library.collection.info)
    return RelabelResponse(relabelled=count, classes=info["classes"])


def _relabel(collection: Collection, ids: list[int], label: str | None) -> int:
    """On the collection's thread: every id checked first, so an unknown one changes nothing."""
    missing = [i for i in ids if not _in_library(collection, i)]
    if missing:
        raise NotFoundError(f"not in the collection: {', '.join(map(str, missing[:20]))}")
    for image_id in ids:
        collection.relabel(image_id, label)
    return len(ids)


def _in_library(collection: Collection, image_id: int) -> bool:
    try:
        return collection.get(image_id).in_library
    except NotFoundError:
        return False
