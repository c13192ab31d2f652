"""Image bytes for HTTP: originals found through the collection's metadata, cached thumbnails, uploads.

No request path ever names a file: a route receives an integer id, the collection's
SQLite row says where the bytes live (a stored upload under ``images/``, a file, or an
archive member), and thumbnails are cached under ``thumbnails/<id>.jpg`` (ids are never
reused, so a cached thumbnail can never show another image).
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from hashseek.core.atomic import atomic_path
from hashseek.core.errors import NotFoundError
from hashseek.data.images import ImageDecodeError, load_image
from hashseek.search.collection import Collection, Record

THUMBNAILS_DIR = "thumbnails"
THUMBNAIL_SIZE = 256      # longest side, px: sharp in a ~160 px tile on a high-density screen
THUMBNAIL_QUALITY = 85


class ImageUnavailable(NotFoundError):
    """The record's bytes are gone (moved archive, deleted file) or were never kept."""


def original_bytes(collection: Collection, record: Record) -> bytes:
    """The bytes of a library image, read where its metadata says it is."""
    try:
        return collection.image_bytes(record)
    except (OSError, KeyError) as err:
        raise ImageUnavailable(f"the file of image {record.id} cannot be read ({err})") from err


def media_type(data: bytes) -> str:
    """The MIME type Pillow recognises in the bytes, never one taken from a client-given file name."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except (OSError, ValueError):
        return "application/octet-stream"


def thumbnail(collection: Collection, record: Record, max_pixels: int) -> Path:
    """The cached JPEG thumbnail of a library image, made on first request."""
    target = collection.path / THUMBNAILS_DIR / f"{record.id}.jpg"
    if target.is_file():
        return target
    try:
        image = load_image(original_bytes(collection, record), draft_size=THUMBNAIL_SIZE, max_pixels=max_pixels)
    except ImageDecodeError as err:
        raise ImageUnavailable(f"image {record.id} cannot be decoded: {err.reason}") from err
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BICUBIC)
    target.parent.mkdir(exist_ok=True)
    with atomic_path(target) as tmp:   # two requests for one thumbnail may race: the last replace wins
        image.save(tmp, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return target


def forget_thumbnail(collection_dir: Path, image_id: int) -> None:
    (collection_dir / THUMBNAILS_DIR / f"{image_id}.jpg").unlink(missing_ok=True)


def decode_upload(data: bytes, name: str, input_size: int, max_pixels: int) -> Image.Image:
    """Decode an uploaded image straight to about the model's input size (see ``load_image``), under the
    service's pixel limit (checked from the header, so a decompression bomb costs nothing)."""
    try:
        return load_image(data, draft_size=input_size, max_pixels=max_pixels)
    except ImageDecodeError as err:
        raise ImageDecodeError(name, err.reason) from None
