"""The seed augmentation recipe of the HashNet-GAP vehicle paper.

Few labelled photos per class are blown up offline into many random views:
a fully random crop, colour jitter, a small rotation and, by default, a
left-right mirror (half the time), which the paper's list lacks but every
photo set of vehicles or objects admits: a car seen from its left is the same
model seen from its right. The paper's crop is a square; by default the crop
keeps the photo's aspect ratio instead (``crop_shape``), which fine-tuned
cars-bmw13 models 0.10-0.17 mAP better (docs/measurements.md). Every draw comes
from an explicit ``numpy`` Generator, and copy ``i`` of image ``j`` from
``default_rng([seed, j, i])`` alone, so any copy can be rebuilt on demand.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

CROP_SHAPES = ("square", "image")
_ENHANCERS = {
    "saturation": ImageEnhance.Color,
    "brightness": ImageEnhance.Brightness,
    "contrast": ImageEnhance.Contrast,
}


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the random choices, so a copy can be inspected or replayed."""

    crop_box: tuple[int, int, int, int] | None  # (left, top, right, bottom)
    jitter: tuple[tuple[str, float], ...]  # (enhancer, factor) in application order
    angle: float | None  # degrees, counter-clockwise
    mirrored: bool = False  # flipped left-right, last


@dataclass(frozen=True)
class SeedAugment:
    """Random crop -> colour jitter -> rotation -> mirror; each step switchable.

    The paper's crop (``crop_shape="square"``) is a square whose side is uniform in
    [``min_crop_fraction`` * l, l] (l = shorter side); ``crop_shape="image"`` keeps the
    image's own aspect ratio instead, each side a uniform fraction in
    [``min_crop_fraction``, 1] of the image's: squashed to the square input, such a crop
    has the geometry of the whole image squashed for encoding, where a square crop of a
    wide car photo shows half the car, stretched. Either crop sits at a uniform
    position; saturation, brightness and contrast factors are uniform in [1 - s, 1 + s]
    and applied in random order; the angle is uniform in [-``max_degrees``,
    ``max_degrees``], bicubic, same canvas, black corners; the mirror happens with
    probability 1/2 and is drawn last, so turning it off leaves every other draw of a
    seed unchanged.
    """

    crop: bool = True
    crop_shape: str = "image"
    min_crop_fraction: float = 0.5
    jitter: bool = True
    saturation: float = 0.4
    brightness: float = 0.4
    contrast: float = 0.4
    rotate: bool = True
    max_degrees: float = 30.0
    mirror: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.min_crop_fraction <= 1:
            raise ValueError(f"min_crop_fraction must be in (0, 1], got {self.min_crop_fraction}")
        if self.crop_shape not in CROP_SHAPES:
            raise ValueError(f"crop_shape must be one of {CROP_SHAPES}, got {self.crop_shape!r}")
        for name in _ENHANCERS:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_degrees < 0:
            raise ValueError(f"max_degrees must be >= 0, got {self.max_degrees}")

    def sample_params(self, size: tuple[int, int], rng: np.random.Generator) -> AugmentParams:
        """Draw the choices for an image of ``size`` = (width, height)."""
        crop_box = None
        if self.crop:
            width, height = size
            if self.crop_shape == "square":
                shorter = min(width, height)
                smallest = max(1, math.ceil(self.min_crop_fraction * shorter))
                crop_w = crop_h = int(rng.integers(smallest, shorter, endpoint=True))
            else:
                fraction = float(rng.uniform(self.min_crop_fraction, 1.0))
                crop_w, crop_h = max(1, round(fraction * width)), max(1, round(fraction * height))
            left = int(rng.integers(0, width - crop_w, endpoint=True))
            top = int(rng.integers(0, height - crop_h, endpoint=True))
            crop_box = (left, top, left + crop_w, top + crop_h)
        jitter: tuple[tuple[str, float], ...] = ()
        if self.jitter:
            names = list(_ENHANCERS)
            jitter = tuple(
                (name, float(rng.uniform(1 - getattr(self, name), 1 + getattr(self, name))))
                for name in (names[k] for k in rng.permutation(len(names)))
            )
        angle = float(rng.uniform(-self.max_degrees, self.max_degrees)) if self.rotate else None
        mirrored = bool(rng.random() < 0.5) if self.mirror else False
        return AugmentParams(crop_box, jitter, angle, mirrored)

    def apply(self, image: Image.Image, params: AugmentParams) -> Image.Image:
        """Apply drawn choices to an image (converted to RGB first)."""
        out = image if image.mode == "RGB" else image.convert("RGB")
        if params.crop_box is not None:
            out = out.crop(params.crop_box)
        for name, factor in params.jitter:
            out = _ENHANCERS[name](out).enhance(factor)
        if params.angle is not None:
            out = out.rotate(
                params.angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor="black"
            )
        if params.mirrored:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return out

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return self.apply(image, self.sample_params(image.size, rng))

    def to_config(self) -> dict[str, Any]:
        """Plain-JSON description, stored in checkpoints beside the data it made."""
        return {"type": type(self).__name__, **asdict(self)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SeedAugment:
        """Inverse of :meth:`to_config`; unknown keys are an error, not silently dropped."""
        params = dict(config)
        kind = params.pop("type", cls.__name__)
        if kind != cls.__name__:
            raise ValueError(f"config is for {kind!r}, not {cls.__name__}")
        unknown = set(params) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} settings: {sorted(unknown)}")
        return cls(**params)


def augment_copy(
    image: Image.Image,
    source_index: int,
    copy_index: int,
    seed: int = 0,
    augment: SeedAugment | None = None,
) -> Image.Image:
    """Copy ``copy_index`` of image ``source_index``, from (seed, source, copy) alone."""
    augment = SeedAugment() if augment is None else augment
    return augment(image, np.random.default_rng([seed, source_index, copy_index]))


def expand_offline(
    images: Iterable[Image.Image],
    copies: int = 30,
    seed: int = 0,
    augment: SeedAugment | None = None,
) -> Iterator[tuple[int, int, Image.Image]]:
    """Yield ``(source_index, copy_index, image)`` for ``copies`` views of every image.

    Each copy equals :func:`augment_copy` with the same indices, so a subset can be
    regenerated later in any order without replaying the others.
    """
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    augment = SeedAugment() if augment is None else augment
    return (
        (j, i, augment_copy(image, j, i, seed, augment))
        for j, image in enumerate(images)
        for i in range(copies)
    )
