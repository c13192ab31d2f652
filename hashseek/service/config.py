"""The service's settings, defined once: ``create_app`` and ``hashseek serve`` fall back to these."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceConfig:
    # A request body larger than this (an upload of several images included) is answered 413 unread.
    max_upload_bytes: int = 20 * 1024 * 1024
    # Pixels an uploaded or library image may have, read from its header before decoding: about
    # 8,000 x 6,000, any photo, not a decompression bomb.
    max_pixels: int = 50_000_000
    # Images decoded at once. Each decode may briefly hold the image at full size (up to about 4 bytes
    # a pixel) before it is reduced to the model's input size, so this bounds the memory a burst of
    # uploads can take; decoding is CPU-bound, so more than the cores gains nothing.
    max_decodes: int = 2


SERVICE_DEFAULTS = ServiceConfig()
