"""Decode any image the wild hands us into an upright, fully loaded RGB picture.

Retrieval databases are filled from crawls, uploads and camera rolls, so the
loader must turn every odd mode into plain RGB, and turn every broken or hostile
file into one exception type the caller can catch and log.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageChops, UnidentifiedImageError

from hashseek.core.errors import InvalidInputError
from hashseek.data import heif  # noqa: F401  (registers the HEIF/HEIC opener when pillow-heif is installed)

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO

# What Pillow's decoders raise on damaged input; anything else is a bug and propagates.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


# Modes whose pixels can be averaged as they are; "1" is averaged as "L", palette and 16-bit images after
# conversion (averaging palette indices or packed 16-bit samples means nothing).
_REDUCIBLE = {"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"}
_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


class ImageDecodeError(InvalidInputError):
    """An input that cannot become an image, with the source and the reason (the service answers 422)."""

    status = 422

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot load image from {source}: {reason}")
        self.source = source
        self.reason = reason


def load_image(
    source: ImageSource, *, draft_size: int | None = None, max_pixels: int = 80_000_000
) -> Image.Image:
    """Decode ``source`` (path, bytes or binary file object) to an upright RGB image.

    The first frame of an animation is used; transparency is composited on white.
    The pixel count is checked from the header, before any decoding, so a
    decompression bomb costs nothing. With ``draft_size``, the image comes back
    at the largest reduction whose shorter side is still >= ``draft_size``: JPEGs
    are decoded at that scale (draft mode), other formats are box-reduced right
    after decoding, before any mode conversion, so a huge image never exists as
    full-size RGB.
    Raises :class:`ImageDecodeError` for anything that does not decode cleanly.
    """
    if draft_size is not None and draft_size < 1:
        raise ValueError(f"draft_size must be positive, got {draft_size}")
    name = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            fp: BinaryIO = open(source, "rb")
        except OSError as exc:
            raise ImageDecodeError(name, f"cannot read file ({exc.strerror or exc})") from exc
        with fp:
            return _decode(fp, name, draft_size, max_pixels)
    data = source if isinstance(source, (bytes, bytearray, memoryview)) else source.read()
    return _decode(io.BytesIO(data), name, draft_size, max_pixels)


def resize_square(
    image: Image.Image, size: int, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> Image.Image:
    """Squash ``image`` to ``size`` x ``size``, ignoring aspect: the encoders' input geometry."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    return image.resize((size, size), resample)


def to_normalized_array(
    image: Image.Image, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Channel-first float32 ``((pixel / 255) - mean) / std``, shape (3, H, W)."""
    mean_c = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std_c = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    if np.any(std_c <= 0):
        raise ValueError(f"std must be positive, got {list(std)}")
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    out = pixels.transpose(2, 0, 1).astype(np.float32, order="C")
    out /= 255
    out -= mean_c
    out /= std_c
    return out


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return str(getattr(source, "name", f"<{type(source).__name__}>"))


def _decode(fp: BinaryIO, name: str, draft_size: int | None, max_pixels: int) -> Image.Image:
    if fp.seek(0, io.SEEK_END) == 0:
        raise ImageDecodeError(name, "empty input (0 bytes)")
    fp.seek(0)
    try:
        with Image.open(fp) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    name,
                    f"{width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels}"
                    " (possible decompression bomb)",
                )
            if draft_size is not None:
                im.draft("RGB", (draft_size, draft_size))   # JPEG: decode at 1/2, 1/4 or 1/8 scale
            im.load()                                        # the first frame
            orientation = im.getexif().get(_ORIENTATION)
            image = _reduce(im, draft_size) if draft_size is not None else im
            rgb = _to_rgb(image, im.format)
            return rgb.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else rgb
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(name, "not a recognised image format") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(name, f"possible decompression bomb ({exc})") from exc
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(name, f"corrupt or truncated ({type(exc).__name__}: {exc})") from exc


def _reduce(im: Image.Image, size: int) -> Image.Image:
    """``im`` box-reduced by the largest whole factor that keeps its shorter side >= ``size``."""
    factor = min(im.size) // size
    if factor < 2:
        return im
    if im.mode == "1":
        im = im.convert("L")                       # Pillow holds "1" as a byte a pixel: no bigger
    elif im.mode not in _REDUCIBLE or "transparency" in im.info:
        im = _to_rgb(im, im.format)                # a colour key would be blurred away
    return im.reduce(factor)


def _to_rgb(im: Image.Image, file_format: str | None) -> Image.Image:
    """A new RGB image (never ``im`` itself, which is closed with its file)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        return Image.fromarray(_deep_to_uint8(np.asarray(im), im.mode), "L").convert("RGB")
    if im.mode == "CMYK" and file_format == "JPEG" and "adobe" not in im.info:
        # Pillow reads every CMYK JPEG as Adobe-inverted; without the Adobe marker it is not.
        im = ImageChops.invert(im)
    if im.has_transparency_data:
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", im.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB")


def _deep_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit data keeps its brightness (/257: 65535 -> 255, a dark scan stays dark); 32-bit
    integers beyond 16 bits and floats have no fixed white point, so their range is stretched."""
    if mode.startswith("I;16") or (mode == "I" and values.min() >= 0 and values.max() <= 65535):
        return ((values.astype(np.float32) / 257.0) + 0.5).astype(np.uint8)
    return _stretch_to_uint8(values)


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map the finite data range linearly onto 0..255: 16-bit, 32-bit and float alike."""
    values = values.astype(np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    values = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return ((values - lo) * scale + 0.5).astype(np.uint8)
