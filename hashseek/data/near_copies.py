"""The five edits that make a near-duplicate of a photo, as the duplicate benchmark and tests plant them.

A resized, re-compressed, slightly cropped, brightened or rotated copy is what people's photo
folders hold beside the original; detection is measured against exactly these.
"""
from __future__ import annotations

import io

from PIL import Image, ImageEnhance

COPY_KINDS = ("resize50", "jpeg30", "crop90", "bright20", "rotate5")


def make_copy(image: Image.Image, kind: str) -> bytes:
    """One copy of an RGB image as JPEG bytes (quality 90, except the quality-30 copy)."""
    if kind not in COPY_KINDS:
        raise ValueError(f"unknown copy kind {kind!r}; choose from {', '.join(COPY_KINDS)}")
    quality = 30 if kind == "jpeg30" else 90
    if kind == "resize50":
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.BICUBIC)
    elif kind == "crop90":
        dx, dy = round(image.width * 0.05), round(image.height * 0.05)
        image = image.crop((dx, dy, image.width - dx, image.height - dy))
    elif kind == "bright20":
        image = ImageEnhance.Brightness(image).enhance(1.2)
    elif kind == "rotate5":
        image = image.rotate(5, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()
