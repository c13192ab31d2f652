"""Recipes: named presets over TrainConfig, given settings win, max_minutes shrinks what the user did not fix."""
from __future__ import annotations

import pytest

from hashseek.core.errors import InvalidInputError, UnknownNameError
from hashseek.train import TrainConfig
from hashseek.train.recipes import RECIPES, Speed, estimate_seconds, measure_speed, resolve_recipe

# a CPU like the 2-core dev machine, idle: Lite0 maps at 224 px, Lite1 steps at 280 px
SPEED = Speed(device="cpu", size=280, forward_ms=60.0, native_forward_ms=25.0, train_ms=180.0, head_ms=0.3,
              native_size=224)


def test_recipes_are_registered_with_their_mode():
    assert RECIPES.names() == ["best", "fast"]
    assert RECIPES.metadata("fast")["mode"] == "frozen" and RECIPES.metadata("best")["mode"] == "finetune"
    with pytest.raises(UnknownNameError, match="unknown recipe"):
        resolve_recipe("slow", n_train=100, n_classes=5)


def test_best_is_the_measured_fine_tuning_recipe():
    config, lines = resolve_recipe("best", n_train=260, n_classes=13)
    assert (config.backbone, config.head, config.loss, config.bits) == ("efficientnet_lite1", "gap", "csq", 64)
    assert (config.mode, config.input_size, config.warmup_epochs, config.backbone_lr_scale) == ("finetune", 280, 100, 0.3)
    assert config.mirror_average and config.augment_kwargs["crop_shape"] == "image"
    assert "recipe best" in lines[0] and any("selected on validation" in line for line in lines)


def test_max_minutes_shrinks_epochs_and_then_the_input():
    roomy, _ = resolve_recipe("best", n_train=260, n_classes=13, max_minutes=600, speed=SPEED)
    assert (roomy.epochs, roomy.input_size) == (20, 280)
    tight, lines = resolve_recipe("best", n_train=260, n_classes=13, max_minutes=20, speed=SPEED)
    assert tight.epochs < 20 or tight.input_size < 280
    assert estimate_seconds(tight, 260, 65, SPEED) <= 20 * 60
    assert any("to fit the time limit" in line for line in lines) and "(fits)" in lines[-1]
    assert tight.max_minutes == 20 and roomy.max_minutes == 600
    smaller, _ = resolve_recipe("best", n_train=260, n_classes=13, max_minutes=8, speed=SPEED)
    assert smaller.input_size < 280 and smaller.epochs >= 8


def test_fast_drops_augmented_copies_then_the_input_size():
    config, _ = resolve_recipe("fast", n_train=260, n_classes=13, max_minutes=60, speed=SPEED)
    assert (config.augment_copies, config.input_size, config.epochs) == (1, 352, 300)
    tight, lines = resolve_recipe("fast", n_train=260, n_classes=13, max_minutes=1.5, speed=SPEED)
    assert tight.augment_copies == 0 and tight.input_size == 352
    assert estimate_seconds(tight, 260, 65, SPEED) <= 90
    tighter, lines = resolve_recipe("fast", n_train=260, n_classes=13, max_minutes=1.0, speed=SPEED)
    assert tighter.augment_copies == 0 and tighter.input_size < 352 and "(fits)" in lines[-1]


def test_given_settings_are_never_changed():
    config, lines = resolve_recipe("best", n_train=260, n_classes=13, max_minutes=5, speed=SPEED,
                                   overrides={"epochs": 30, "bits": 48, "lr": None,
                                              "augment_kwargs": {"min_crop_fraction": 0.7}})
    assert (config.epochs, config.bits, config.lr) == (30, 48, 1e-3)
    assert config.augment_kwargs == {"min_crop_fraction": 0.7, "max_degrees": 10.0, "crop_shape": "image"}
    assert any(line.startswith("given: ") for line in lines)
    with pytest.raises(InvalidInputError, match="unknown training settings"):
        resolve_recipe("fast", n_train=10, n_classes=2, overrides={"epoch": 3})


def test_the_machine_is_measured_when_no_speed_is_given():
    speed = measure_speed(TrainConfig(), batch=2, repeats=1)
    assert speed.device == "cpu" and speed.native_forward_ms > 0 and speed.head_ms > 0 and speed.train_ms == 0
    config, lines = resolve_recipe("fast", n_train=40, n_classes=4, max_minutes=10)
    assert any(line.startswith("measured on cpu") for line in lines)
