"""decode_ms: what reading and decoding a source's own images costs, for a run's time plan."""
from __future__ import annotations

import io

from PIL import Image

from hashseek.data.loader import decode_ms


def _encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def test_large_photos_cost_more_than_thumbnails_and_undecodable_files_are_left_out(cars_bmw13):
    photos = [cars_bmw13.read_bytes(i) for i in cars_bmw13.ids[:8]]
    thumbnails = {f"t{n}": _encoded(Image.open(io.BytesIO(p)).convert("RGB").resize((32, 32)), "JPEG")
                  for n, p in enumerate(photos)}
    # lossless and 4 times the side: no JPEG draft mode shortens their decoding
    large = {f"l{n}": _encoded(Image.open(io.BytesIO(p)).convert("RGB").resize((1600, 1200)), "PNG")
             for n, p in enumerate(photos)}
    small_ms = decode_ms(list(thumbnails), thumbnails.__getitem__, 224)
    large_ms = decode_ms(list(large), large.__getitem__, 224)
    assert 0 < small_ms < large_ms / 5
    broken = {"bad": b"not an image", **thumbnails}
    assert decode_ms(list(broken), broken.__getitem__, 224) > 0
    assert decode_ms(["bad"], broken.__getitem__, 224) is None
    assert decode_ms(["t0"], thumbnails.__getitem__, 224) > 0      # a single image is timed, not only warmed
