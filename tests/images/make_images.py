"""Generates the small image set the logic tests run on without the shared archives.

4 classes x 8 JPEGs (one folder per class, the layout ``hashseek index`` reads), each class a
distinct kind of shape and colour over a textured background, so a pretrained encoder separates
the classes while every picture still has edges, gradients and noise for the decoders to chew on.
Sizes vary (landscape, square, portrait; every side at least 168 px, so 160 px crops fit).

Run once from the repository root; the output is committed:  python3 tests/images/make_images.py
The seed is fixed: running it again rewrites the same pictures (byte-identical with the same Pillow).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SEED = 20261130
PER_CLASS = 8
SIZES = [(224, 168), (240, 168), (200, 200), (168, 224), (224, 168), (256, 176), (192, 192), (176, 232)]
HERE = Path(__file__).resolve().parent


def _background(rng: np.random.Generator, size: tuple[int, int], base: tuple[int, int, int]) -> Image.Image:
    """A two-colour gradient with a little per-pixel noise: texture, not a flat fill."""
    width, height = size
    other = np.clip(np.array(base) + rng.integers(-60, 61, 3), 0, 255)
    t = np.linspace(0, 1, width)[None, :, None] * rng.uniform(0.5, 1) + np.linspace(0, 1, height)[:, None, None] * 0.3
    pixels = np.array(base)[None, None] * (1 - t.clip(0, 1)) + other[None, None] * t.clip(0, 1)
    pixels += rng.normal(0, 4, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def _circles(draw: ImageDraw.ImageDraw, rng, size) -> None:
    for _ in range(rng.integers(3, 6)):
        r = int(rng.integers(14, 40))
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        colour = (int(rng.integers(200, 256)), int(rng.integers(40, 120)), int(rng.integers(0, 50)))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(90, 20, 0), width=3)


def _stripes(draw: ImageDraw.ImageDraw, rng, size) -> None:
    step, width = int(rng.integers(16, 28)), int(rng.integers(5, 10))
    slope = rng.uniform(-1.5, 1.5)
    colour = (int(rng.integers(0, 40)), int(rng.integers(60, 120)), int(rng.integers(180, 256)))
    for x0 in range(-2 * size[1], size[0] + 2 * size[1], step):
        draw.line((x0, 0, x0 + slope * size[1], size[1]), fill=colour, width=width)


def _checks(draw: ImageDraw.ImageDraw, rng, size) -> None:
    cell = int(rng.integers(18, 32))
    colour = (int(rng.integers(0, 60)), int(rng.integers(140, 220)), int(rng.integers(30, 90)))
    off = int(rng.integers(0, cell))
    for i, x in enumerate(range(-off, size[0], cell)):
        for j, y in enumerate(range(-off, size[1], cell)):
            if (i + j) % 2 == 0:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour)


def _triangles(draw: ImageDraw.ImageDraw, rng, size) -> None:
    for _ in range(rng.integers(2, 5)):
        cx, cy, r = rng.integers(0, size[0]), rng.integers(0, size[1]), rng.integers(25, 60)
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2])
        points = [(float(cx + r * np.cos(a)), float(cy + r * np.sin(a))) for a in angles]
        colour = (int(rng.integers(120, 190)), int(rng.integers(0, 50)), int(rng.integers(150, 230)))
        draw.polygon(points, fill=colour, outline=(255, 230, 60), width=4)


# class name -> (drawing function, background base colour)
CLASSES = {
    "circles": (_circles, (235, 225, 200)),
    "stripes": (_stripes, (220, 230, 240)),
    "checks": (_checks, (240, 240, 225)),
    "triangles": (_triangles, (60, 60, 70)),
}


def make(out: Path = HERE) -> list[Path]:
    rng = np.random.default_rng(SEED)
    written = []
    for name, (draw_shapes, base) in CLASSES.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(PER_CLASS):
            size = SIZES[k]
            image = _background(rng, size, base)
            draw_shapes(ImageDraw.Draw(image), rng, size)
            image = image.filter(ImageFilter.GaussianBlur(0.6))
            path = folder / f"{name}_{k:02d}.jpg"
            image.save(path, "JPEG", quality=80)
            written.append(path)
    return written


if __name__ == "__main__":
    paths = make()
    print(f"{len(paths)} images, {sum(p.stat().st_size for p in paths) / 1024:.0f} KiB under {HERE}")
