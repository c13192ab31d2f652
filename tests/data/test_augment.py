"""SeedAugment and offline expansion, on the shipped test images."""
from __future__ import annotations

import json
import math
from itertools import permutations

import numpy as np
import pytest
from PIL import Image

from hashseek.data.augment import AugmentParams, SeedAugment, augment_copy, expand_offline
from hashseek.data.images import load_image


@pytest.fixture(scope="module")
def pictures(image_set) -> list[Image.Image]:
    """Three shipped test images of three classes: landscape 240x168, square 200x200, portrait 168x224."""
    dataset, ids = image_set
    return [load_image(dataset.read_bytes(ids[n])) for n in (1, 10, 19)]


def _px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_same_seed_same_pixels_different_seed_different(pictures):
    augment = SeedAugment()
    image = pictures[0]
    first = augment(image, np.random.default_rng(5))
    again = augment(image, np.random.default_rng(5))
    other = augment(image, np.random.default_rng(6))
    assert first.mode == "RGB"
    np.testing.assert_array_equal(_px(first), _px(again))
    assert first.size != other.size or np.abs(_px(first) - _px(other)).mean() > 5


def test_sampled_parameters_stay_in_the_paper_ranges():
    augment = SeedAugment(crop_shape="square")
    rng = np.random.default_rng(0)
    width, height = 437, 146
    lo = math.ceil(height / 2)
    sides, angles, orders = [], [], set()
    for _ in range(600):
        params = augment.sample_params((width, height), rng)
        left, top, right, bottom = params.crop_box
        side = right - left
        assert bottom - top == side and lo <= side <= height
        assert 0 <= left and right <= width and 0 <= top and bottom <= height
        sides.append(side)
        assert -30 <= params.angle <= 30
        angles.append(params.angle)
        names = tuple(name for name, _ in params.jitter)
        assert sorted(names) == ["brightness", "contrast", "saturation"]
        orders.add(names)
        assert all(0.6 <= factor <= 1.4 for _, factor in params.jitter)
    assert min(sides) <= lo + 3 and max(sides) >= height - 3  # the whole range is used
    assert min(angles) < -27 and max(angles) > 27
    assert orders == set(permutations(["brightness", "contrast", "saturation"]))


def test_odd_shorter_side_rounds_the_minimum_crop_up():
    augment = SeedAugment(crop_shape="square", min_crop_fraction=0.5)
    boxes = [augment.sample_params((5, 261), np.random.default_rng(s)).crop_box for s in range(60)]
    sides = {right - left for left, _, right, _ in boxes}
    assert sides == {3, 4, 5}


def test_image_shaped_crops_keep_the_aspect_ratio_and_span_the_fraction_range():
    augment = SeedAugment(crop_shape="image", min_crop_fraction=0.6)
    width, height = 600, 300
    fractions = []
    for s in range(300):
        left, top, right, bottom = augment.sample_params((width, height), np.random.default_rng(s)).crop_box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert abs((right - left) / (bottom - top) - 2.0) < 0.02     # a 2:1 photo gives 2:1 crops
        fractions.append((right - left) / width)
    assert min(fractions) < 0.62 and max(fractions) > 0.98 and min(fractions) >= 0.6 - 1e-3
    assert SeedAugment().crop_shape == "image"                     # the default
    square = SeedAugment(crop_shape="square").sample_params((width, height), np.random.default_rng(0)).crop_box
    assert square[2] - square[0] == square[3] - square[1]        # the paper's crop stays square
    with pytest.raises(ValueError, match="crop_shape"):
        SeedAugment(crop_shape="circle")


def test_crop_only_is_a_plain_crop_of_the_sampled_box(pictures):
    augment = SeedAugment(jitter=False, rotate=False)
    image = pictures[1]
    params = augment.sample_params(image.size, np.random.default_rng(3))
    assert params.jitter == () and params.angle is None
    out = augment(image, np.random.default_rng(3))
    np.testing.assert_array_equal(_px(out), _px(image.crop(params.crop_box)))


def test_jitter_factors_act_as_enhance_factors(pictures):
    image = pictures[0]
    augment = SeedAugment()
    unit = (("brightness", 1.0), ("contrast", 1.0), ("saturation", 1.0))
    identity = augment.apply(image, AugmentParams(None, unit, None))
    np.testing.assert_array_equal(_px(identity), _px(image))
    darker = augment.apply(image, AugmentParams(None, (("brightness", 0.5),), None))
    assert np.abs(_px(darker) - _px(image) * 0.5).max() <= 1
    grey = _px(augment.apply(image, AugmentParams(None, (("saturation", 0.0),), None)))
    assert (np.ptp(grey, axis=2) <= 1).all()


def test_rotation_keeps_the_canvas_and_fills_corners_black(pictures):
    image = pictures[2].crop((0, 0, 160, 160))
    rotated = SeedAugment().apply(image, AugmentParams(None, (), 30.0))
    assert rotated.size == image.size
    pixels = _px(rotated)
    for y, x in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:
        assert (pixels[y, x] == 0).all()
    quarter = _px(SeedAugment().apply(image, AugmentParams(None, (), 90.0)))
    expected = _px(image.transpose(Image.Transpose.ROTATE_90))
    assert np.abs(quarter[2:-2, 2:-2] - expected[2:-2, 2:-2]).mean() < 1  # counter-clockwise


def test_all_steps_off_is_the_identity_and_draws_nothing(pictures):
    augment = SeedAugment(crop=False, jitter=False, rotate=False, mirror=False)
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(_px(augment(pictures[0], rng)), _px(pictures[0]))
    assert rng.random() == np.random.default_rng(1).random()


def test_mirror_flips_half_the_draws_and_leaves_the_other_draws_alone(pictures):
    image = pictures[0]
    flipped = SeedAugment().apply(image, AugmentParams(None, (), None, mirrored=True))
    np.testing.assert_array_equal(_px(flipped), _px(image)[:, ::-1])
    rng = np.random.default_rng(3)
    share = np.mean([SeedAugment().sample_params((300, 200), rng).mirrored for _ in range(2000)])
    assert 0.45 < share < 0.55
    with_mirror = SeedAugment().sample_params((300, 200), np.random.default_rng(9))
    without = SeedAugment(mirror=False).sample_params((300, 200), np.random.default_rng(9))
    assert (with_mirror.crop_box, with_mirror.jitter, with_mirror.angle) == \
        (without.crop_box, without.jitter, without.angle)
    assert without.mirrored is False


def test_config_round_trip_and_validation():
    augment = SeedAugment(saturation=0.2, max_degrees=15.0, crop=False)
    config = json.loads(json.dumps(augment.to_config()))
    assert config["type"] == "SeedAugment" and config["max_degrees"] == 15.0
    assert SeedAugment.from_config(config) == augment
    assert SeedAugment().to_config()["min_crop_fraction"] == 0.5
    with pytest.raises(ValueError, match="unknown"):
        SeedAugment.from_config({**config, "hue": 0.1})
    with pytest.raises(ValueError, match="not SeedAugment"):
        SeedAugment.from_config({**config, "type": "RandAugment"})
    for bad in ({"min_crop_fraction": 0.0}, {"contrast": 1.5}, {"max_degrees": -1.0}):
        with pytest.raises(ValueError):
            SeedAugment(**bad)


def test_expand_offline_copies_regenerate_alone_in_any_order(pictures):
    augment = SeedAugment()
    expanded = list(expand_offline(pictures[:2], copies=4, seed=11, augment=augment))
    assert [(j, i) for j, i, _ in expanded] == [(j, i) for j in range(2) for i in range(4)]
    for j, i, image in reversed(expanded):
        alone = augment_copy(pictures[j], j, i, seed=11, augment=augment)
        np.testing.assert_array_equal(_px(alone), _px(image))
        by_hand = augment(pictures[j], np.random.default_rng([11, j, i]))
        np.testing.assert_array_equal(_px(by_hand), _px(image))
    copies = [_px(image) for j, _, image in expanded if j == 0]
    assert all(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(copies, copies[1:]))
    _, _, reseeded = next(expand_offline(pictures[:1], copies=1, seed=12, augment=augment))
    assert reseeded.size != expanded[0][2].size or not np.array_equal(_px(reseeded), copies[0])


def test_expand_offline_defaults_and_checks(pictures):
    thumb = pictures[0].reduce(4)
    out = list(expand_offline([thumb]))
    assert len(out) == 30
    expected = SeedAugment()(thumb, np.random.default_rng([0, 0, 1]))
    np.testing.assert_array_equal(_px(out[1][2]), _px(expected))
    with pytest.raises(ValueError):
        expand_offline(pictures, copies=-1)
