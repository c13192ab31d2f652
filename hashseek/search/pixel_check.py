"""The last check of a candidate duplicate pair: do the two pictures line up, edge for edge?

The pooled features of a pretrained classifier are semantic: on Caltech101, distinct catalogue shots
of one motorbike model or photos of one leopard pose are closer (cosine) than a copy rotated by
5 degrees is to its original. So pairs that pass the codes and the features are confirmed on the
pixels: each picture becomes a small map of its grey-level gradient magnitude (``SIDE`` px square,
mean-free, unit length) of its centre, and the similarity of a pair is the best correlation of
one picture's map, taken at a few scales and turns (``CROPS`` x ``TURNS``: crops, resizes and small
rotations line up again), with the other's plain map. Copies score high; distinct pictures with the
same layout (white backgrounds, centred objects) score low, since their edges fall elsewhere.
Pictures are decoded small (JPEG draft mode) and only for pairs that reached this stage.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image

SIDE = 48                      # the gradient map's side (px)
WORK = 160                     # the picture is first resized to WORK x WORK (aspect ignored: resizes line up)
CROPS = (0.75, 0.675, 0.833)   # centre fractions: the plain map, then the other picture cropped or widened by ~10%
TURNS = (0, 5, -5)             # degrees
BLOCK = 512                    # pictures whose variant maps are held at once


def _maps(data: bytes, variants: bool) -> np.ndarray | None:
    """(len(CROPS) * len(TURNS) or 1, (SIDE - 1)**2) float32 unit maps; None for bytes that do not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("L", (2 * WORK, 2 * WORK))
            grey = image.convert("L").resize((WORK, WORK), Image.Resampling.BILINEAR)
    except Exception:   # a vanished or unreadable file: the pair keeps the features' verdict
        return None
    out, half = [], WORK / 2
    for turn in TURNS if variants else TURNS[:1]:
        turned = grey.rotate(turn, resample=Image.Resampling.BILINEAR) if turn else grey
        for crop in CROPS if variants else CROPS[:1]:
            r = half * crop
            a = np.asarray(turned.crop((half - r, half - r, half + r, half + r)).resize(
                (SIDE, SIDE), Image.Resampling.BOX), np.float32)
            edges = np.hypot(np.diff(a, axis=1)[:-1], np.diff(a, axis=0)[:, :-1]).ravel()
            edges -= edges.mean()
            out.append(edges / max(float(np.linalg.norm(edges)), 1e-6))
    return np.stack(out)


def pair_similarity(a: np.ndarray, b: np.ndarray, read: Callable[[int], bytes | None]) -> np.ndarray:
    """Similarity in [-1, 1] of each pair of library ids (a[n], b[n]); NaN where a picture cannot be read.

    ``read(id)`` gives an image's bytes (None: it has none). Each picture of ``a`` is decoded once
    with its variants, each other picture once more at most for its plain map."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    out = np.full(len(a), np.nan, np.float32)
    plain: dict[int, np.ndarray | None] = {}

    def maps(image_id: int, variants: bool) -> np.ndarray | None:
        data = read(image_id)
        return None if data is None else _maps(data, variants)

    firsts = np.unique(a)
    for start in range(0, len(firsts), BLOCK):
        block = firsts[start:start + BLOCK]
        variants = {int(i): maps(int(i), True) for i in block}
        for i, v in variants.items():
            plain[i] = None if v is None else v[0]
        chosen = np.flatnonzero(np.isin(a, block))
        for j in np.unique(b[chosen]).tolist():
            if j not in plain:
                found = maps(j, False)
                plain[j] = None if found is None else found[0]
        chosen = chosen[np.argsort(a[chosen], kind="stable")]
        cuts = np.flatnonzero(np.diff(a[chosen])) + 1
        for rows in np.split(chosen, cuts):     # one picture of the block against all its partners
            mine = variants[int(a[rows[0]])]
            rows = np.array([n for n in rows if plain[int(b[n])] is not None], np.int64)
            if mine is not None and len(rows):
                partners = np.stack([plain[int(b[n])] for n in rows])      # (partners, d)
                out[rows] = (partners @ mine.T).max(axis=1)
    return out
