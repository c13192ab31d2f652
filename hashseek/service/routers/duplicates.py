"""Duplicate groups of a collection, and resolving one: keep an image, remove the others (guarded)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from hashseek.core.errors import InvalidInputError
from hashseek.search.duplicates import DUPLICATE_DEFAULTS, DuplicateReport
from hashseek.service.dependencies import MAX_ID, Digits, LibraryDep, WriteAllowed, library_record
from hashseek.service.media import forget_thumbnail
from hashseek.service.responses import FILE_PATH, thumbnail_url
from hashseek.service.schemas import NOT_FOUND, WRITE, Error, RemoveResponse

router = APIRouter(prefix="/api/collections/{name}/duplicates", tags=["duplicates"], responses=NOT_FOUND)
LibraryId = Annotated[int, Field(ge=0, le=MAX_ID, strict=True)]


class DuplicateMemberOut(BaseModel):
    id: int
    name: str
    label: str | None
    hamming: int | None = Field(description="Hamming distance of its code to the keeper's (None: no code yet)")
    distance: float = Field(description="cosine distance of its float feature to the keeper's")
    same_bytes: bool = Field(description="byte-identical to the keeper")
    width: int | None
    height: int | None
    added_at: float = Field(description="unix time")
    keeper: bool = Field(description="the suggested image to keep: the largest, then the oldest")
    thumbnail_url: str
    image_url: str


class DuplicateGroupOut(BaseModel):
    keeper: int
    kind: str = Field(description="exact (all share the keeper's bytes) or near")
    members: list[DuplicateMemberOut]


class DuplicatesResponse(BaseModel):
    images: int
    duplicates: int = Field(description="images a user could remove: every member but the keepers")
    max_hamming: int
    max_distance: float
    min_similarity: float
    candidates: int = Field(description="code pairs within max_hamming")
    confirmed: int = Field(description="of those, within max_distance and min_similarity")
    took_ms: float
    groups: list[DuplicateGroupOut]


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep: LibraryId = Field(description="the image to keep")
    remove: list[LibraryId] = Field(min_length=1, max_length=10_000, description="the images to remove")


class ResolveResponse(RemoveResponse):
    kept: int


@router.get("", response_model=DuplicatesResponse,
            responses={422: {"model": Error, "description": "a setting out of range"}})
async def list_duplicates(library: LibraryDep,
                          max_hamming: Annotated[Digits | None, Query(
                              ge=0, le=1024, description=f"default {DUPLICATE_DEFAULTS.max_hamming}")] = None,
                          max_distance: Annotated[float | None, Query(
                              ge=0, le=2, description=f"default {DUPLICATE_DEFAULTS.max_distance:g}")] = None,
                          min_similarity: Annotated[float | None, Query(
                              ge=-1, le=1, description=f"default {DUPLICATE_DEFAULTS.min_similarity:g}")] = None
                          ) -> DuplicatesResponse:
    """Groups of exact and near-duplicate images, largest first, each member with its distances to the keeper."""
    report: DuplicateReport = await library.run(library.collection.duplicates, max_hamming, max_distance,
                                                min_similarity)
    groups = [DuplicateGroupOut(keeper=g.keeper, kind=g.kind, members=[
        DuplicateMemberOut(**vars(m), keeper=m.id == g.keeper, thumbnail_url=thumbnail_url(library, m.id),
                           image_url=FILE_PATH.format(name=library.url_name, image_id=m.id)) for m in g.members])
        for g in report.groups]
    return DuplicatesResponse(images=report.images, duplicates=report.duplicates, max_hamming=report.max_hamming,
                              max_distance=report.max_distance, min_similarity=report.min_similarity,
                              candidates=report.candidates,
                              confirmed=report.confirmed, took_ms=1000 * report.seconds, groups=groups)


@router.post("/resolve", response_model=ResolveResponse, responses=WRITE, dependencies=[WriteAllowed])
async def resolve(library: LibraryDep, body: ResolveRequest) -> ResolveResponse:
    """Keep one image and remove the others of its group: all of them, or none when one is not in the library."""
    if body.keep in body.remove:
        raise InvalidInputError(f"image {body.keep} cannot be both kept and removed")
    await library_record(library, body.keep)   # an unknown or removed keeper is a 404 before anything goes
    removed = await library.run(library.collection.remove, body.remove)
    for image_id in body.remove:
        forget_thumbnail(library.path, image_id)
    return ResolveResponse(kept=body.keep, removed=removed, images=len(library.collection))
