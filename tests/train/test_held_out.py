"""The held-out validation figure: the validation images searching each other, their own entry left out."""
from __future__ import annotations

import numpy as np
import pytest

from hashseek.train.evaluator import Encoded, held_out_figures


def _encoded(codes: list[int], labels: list[int]) -> Encoded:
    return Encoded([f"img{n}" for n in range(len(codes))], np.array(codes, dtype=np.uint8)[:, None],
                   np.zeros((len(codes), 2), np.float32), np.array(labels, dtype=np.int64))


def test_each_image_searches_the_others_and_never_finds_itself():
    # each image's one classmate is its nearest code: mAP 1
    assert held_out_figures(_encoded([0x00, 0x01, 0xFF, 0xFE], [0, 0, 1, 1]))["map_all"] == pytest.approx(1.0)
    # each image's classmate is its farthest code (8 bits, against 1 and 7 for the others): its precision 1/3
    figures = held_out_figures(_encoded([0x00, 0xFF, 0x01, 0xFE], [0, 0, 1, 1]))
    assert figures["map_all"] == pytest.approx(1 / 3) and figures["tie_aware"]["map_all"] == pytest.approx(1 / 3)
    assert figures["n_query"] == 4
    assert held_out_figures(_encoded([0x00], [0])) is None   # one image has nothing to search
