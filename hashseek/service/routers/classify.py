"""Classify an upload by a vote of its nearest labelled neighbours."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, UploadFile

from hashseek.service.dependencies import LibraryDep, decode
from hashseek.service.responses import search_response, upload_query
from hashseek.service.schemas import BAD_IMAGE, NOT_FOUND, ClassifyParams, ClassifyResponse

router = APIRouter(tags=["search"])


@router.post("/api/collections/{name}/classify", response_model=ClassifyResponse,
             responses={**NOT_FOUND, **BAD_IMAGE})
async def classify_upload(request: Request, library: LibraryDep, file: UploadFile,
                          params: Annotated[ClassifyParams, Query()]) -> ClassifyResponse:
    """The label most of the ``k`` nearest labelled images share, with every class's vote share (a new class
    needs no training, only images added with its label); or, with ``method=classifier``, the model's own."""
    upload = await decode(request, library, await file.read(), file.filename)
    result = await library.run(library.collection.classify, upload.image, content_hash=upload.content_hash,
                               **params.resolved())
    neighbours = search_response(library, result.neighbours, upload_query(result.neighbours, file.filename),
                                 upload.seconds)
    return ClassifyResponse(label=result.label, distribution=result.distribution, method=result.method,
                            vote=result.vote, classifier=result.classifier, neighbours=neighbours)
