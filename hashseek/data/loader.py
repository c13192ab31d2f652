"""Decode, resize and normalise images in background threads, batch by batch.

Pillow releases the GIL while decoding and resizing, so threads keep every core busy
beside the model without the start-up cost of processes.
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from hashseek.data.images import ImageDecodeError, load_image, resize_square, to_normalized_array


@dataclass(frozen=True)
class Preprocess:
    """Decoded image -> a backbone's normalised (3, size, size) float32 input."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_config(cls, config: dict) -> "Preprocess":
        return cls(int(config["input_size"]), tuple(config["mean"]), tuple(config["std"]))

    def __call__(self, source) -> np.ndarray:
        """A path, bytes, file object or an already decoded PIL image -> (3, size, size) float32."""
        image = source.convert("RGB") if isinstance(source, Image.Image) else load_image(source, draft_size=self.input_size)
        return to_normalized_array(resize_square(image, self.input_size), self.mean, self.std)


@dataclass
class Batch:
    ids: list[str]
    inputs: np.ndarray                  # (n, 3, size, size) float32
    failed: list[tuple[str, str]]       # (id, reason) of images that could not be decoded


def iter_batches(
    ids: Sequence[str],
    read: Callable[[str], object],
    preprocess: Callable[[object], np.ndarray],
    batch_size: int = 32,
    workers: int | None = None,
) -> Iterator[Batch]:
    """Batches in the order of ``ids``; unreadable images are reported in ``Batch.failed``, never raised."""
    workers = workers or os.cpu_count() or 1

    def work(chunk: Sequence[str]) -> Batch:
        arrays, ok, failed = [], [], []
        for image_id in chunk:
            try:
                arrays.append(preprocess(read(image_id)))
                ok.append(image_id)
            except (ImageDecodeError, OSError) as err:
                failed.append((image_id, str(err)))
        inputs = np.stack(arrays) if arrays else np.empty((0, 3, 0, 0), np.float32)
        return Batch(ok, inputs, failed)

    chunks = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(work, chunk))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def decode_ms(ids: Sequence[str], read: Callable[[str], object], input_size: int, sample: int = 16) -> float | None:
    """Milliseconds to read, decode, resize and normalise one of these images on one core, from ``sample``
    of them spread over the list (the first not counted when others are: it warms the file cache and
    Pillow). Thumbnails cost a fraction of a millisecond an image, phone photos tens of milliseconds: a
    run's plan counts what its own images cost. None when none of them decodes."""
    preprocess = Preprocess(input_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    picked = [ids[i * len(ids) // sample] for i in range(min(sample, len(ids)))]
    seconds = []
    for image_id in picked:
        start = time.perf_counter()
        try:
            preprocess(read(image_id))
        except (ImageDecodeError, OSError):
            continue
        seconds.append(time.perf_counter() - start)
    timed = seconds[1:] or seconds
    return 1000 * sum(timed) / len(timed) if timed else None
