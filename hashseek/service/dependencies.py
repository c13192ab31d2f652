"""What routes ask FastAPI for: the served library, the write guard's verdict, strict integer parameters,
and decoded uploads."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from time import perf_counter
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from PIL import Image
from pydantic import BeforeValidator

from hashseek.core.errors import NotFoundError
from hashseek.search.collection import Record
from hashseek.service.library import Library
from hashseek.service.media import decode_upload

_DIGITS = re.compile(r"0|[1-9][0-9]*")


def _plain_digits(value: object) -> object:
    """Integers in URLs are written in plain decimal digits: ``+1``, ``01`` and ``1_0`` are refused, not
    read as 1, 1 and 10 (two spellings of one id would defeat caches and audit logs)."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("must be a whole number written in plain decimal digits "
                         "(no sign, leading zeros, spaces or underscores)")
    return value


Digits = Annotated[int, BeforeValidator(_plain_digits)]
MAX_ID = 2**63 - 1   # SQLite's largest integer
ImageId = Annotated[Digits, Path(ge=0, le=MAX_ID, description="the image's id in the collection")]
Seed = Annotated[Digits | None, Query(ge=0, le=MAX_ID, description="draw with this seed (a fresh one if not given)")]


def get_library(request: Request, name: str) -> Library:
    try:
        return request.app.state.libraries[name]
    except KeyError:
        raise NotFoundError(f"no collection named {name!r}") from None


def require_write(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> None:
    request.app.state.guard.check(x_api_key, request.headers.get("origin"), request.headers.get("host"))


LibraryDep = Annotated[Library, Depends(get_library)]
WriteAllowed = Depends(require_write)


async def library_record(library: Library, image_id: int) -> Record:
    """The record of an image in the library (a removed one is not found)."""
    record = await library.run(library.collection.get, image_id)
    if not record.in_library:
        raise NotFoundError(f"image {image_id} was removed from the collection")
    return record


@dataclass
class Upload:
    """A decoded upload: the image, the sha256 of its bytes (a library image with the same bytes is the
    query's self-match), and the seconds decoding took, waiting for a slot included."""

    image: Image.Image
    content_hash: str
    seconds: float


async def decode(request: Request, library: Library, data: bytes, name: str | None) -> Upload:
    """Decode an upload to about the collection's input size, in a decode slot (not on the collection's
    thread)."""
    start = perf_counter()
    image = await request.app.state.decode_slots.run(
        decode_upload, data, name or "upload", library.collection.image_hasher.preprocess.input_size,
        request.app.state.config.max_pixels)
    return Upload(image, hashlib.sha256(data).hexdigest(), perf_counter() - start)
