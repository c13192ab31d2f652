"""Refit a zero-training collection's hasher by hand (guarded): every code recomputed from the stored
features, atomically (``Collection.refit``); the refit policy does it on its own as the library grows."""
from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hashseek.service.dependencies import LibraryDep, WriteAllowed
from hashseek.service.schemas import NOT_FOUND, WRITE, Error

router = APIRouter(prefix="/api/collections/{name}", tags=["collections"], responses=NOT_FOUND)


class RefitResponse(BaseModel):
    images: int = Field(description="library images coded with the new fit")
    sampled: int = Field(description="of them, the rows the fit used")
    seconds: float
    fit_digest: str = Field(description="identifies the new fit")
    next_refit_at: int = Field(description="library size at which the refit policy refits next")


@router.post("/refit", response_model=RefitResponse, dependencies=[WriteAllowed],
             responses={**WRITE, 409: {"model": Error, "description": "a trained model's collection (never "
                                                                     "refitted), or fewer than 2 images"}})
async def refit(library: LibraryDep) -> RefitResponse:
    """Fit the hasher again on the whole library and recompute every code; searches see the old codes
    or the new ones, never a mix."""
    collection = library.collection
    report = await library.run(collection.refit)
    return RefitResponse(**vars(report), next_refit_at=collection.refit_policy.next_fit_at(report.images))
