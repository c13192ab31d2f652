"""Recipes: named presets over TrainConfig, given settings win, max_minutes shrinks what the user did not fix
(the epochs only in the estimate: the recipe's stay the trainer's ceiling under its deadline)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from hashseek.core.errors import InvalidInputError, UnknownNameError
from hashseek.train import TrainConfig
from hashseek.train.recipes import (PROBE_SHORTFALL, RECIPES, RESERVE_MARGIN, Speed, baseline_seconds,
                                    estimate_seconds, final_seconds, measure_speed, plan_run, resolve_recipe)

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
    assert (config.backbone, config.head, config.loss, config.bits) == ("efficientnet_lite2", "gap", "csq", 64)
    assert (config.mode, config.input_size, config.warmup_epochs, config.backbone_lr_scale) == ("finetune", 336, 100, 0.3)
    assert config.frozen_stages == 3 and config.precision == "auto"
    assert config.mirror_average and config.augment_kwargs["crop_shape"] == "image"
    assert "recipe best" in lines[0] and any("selected on validation" in line for line in lines)


def test_max_minutes_shrinks_the_estimated_epochs_then_the_input_and_keeps_the_recipe_epochs_as_the_ceiling():
    roomy = plan_run("best", n_train=260, n_classes=13, max_minutes=600, speed=SPEED)
    assert (roomy.config.epochs, roomy.estimated_epochs, roomy.config.input_size) == (30, 30, 336)
    tight = plan_run("best", n_train=260, n_classes=13, max_minutes=20, speed=SPEED)
    assert tight.config.epochs == 30 and tight.estimated_epochs < 30 and tight.config.input_size == 336
    assert estimate_seconds(replace(tight.config, epochs=tight.estimated_epochs), 260, 65, SPEED) <= 20 * 60
    assert any(f"about {tight.estimated_epochs} of 30 fit" in line for line in tight.lines)
    assert "(fits)" in tight.lines[-1] and "up to 30" in tight.lines[-2]
    assert tight.config.max_minutes == 20 and roomy.config.max_minutes == 600
    smaller = plan_run("best", n_train=260, n_classes=13, max_minutes=8, speed=SPEED)
    assert smaller.config.input_size < 336 and smaller.estimated_epochs >= 8 and smaller.config.epochs == 30
    assert any("input_size: 336 -> " in line for line in smaller.lines)


def test_unbounded_fine_tuning_says_how_long_it_will_take_before_it_starts():
    """Without --max-minutes a fine-tuning run on a CPU can take hours: the plan says so and how to bound it."""
    plan = plan_run("best", n_train=2000, n_classes=20, n_validation=400, n_query=500, n_database=2400, speed=SPEED,
                    estimate=True)
    seconds = (baseline_seconds(2000, 400, SPEED) + estimate_seconds(plan.config, 2000, 400, SPEED)
               + RESERVE_MARGIN * final_seconds(plan.config, 2000, 400, 500, 2400, SPEED))
    hours = f"{seconds / 3600:.1f}-{PROBE_SHORTFALL * seconds / 3600:.1f} h"   # the probe runs fast of real epochs
    assert seconds > 90 * 60 and f"estimated {hours} on this CPU for 30 epochs at 336 px" in plan.lines[-1]
    assert "--max-minutes N bounds the run" in plan.lines[-1]
    assert plan.config.epochs == 30 and plan.config.max_minutes is None   # nothing is shrunk: only said
    assert not any("estimated" in line for line in plan_run("best", n_train=2000, n_classes=20, speed=SPEED).lines)
    fast = plan_run("fast", n_train=2000, n_classes=20, estimate=True)   # frozen: minutes, so no probe at all
    assert not any("measured" in line or "estimated" in line for line in fast.lines)


def test_the_final_evaluation_is_reserved_at_the_onnx_speed_of_the_input_size():
    config = plan_run("best", n_train=260, n_classes=13, speed=SPEED).config
    # 260 + 65 + 100 images, the 65 validation images once more for the calibration, each twice (mirror-averaged)
    # through ONNX at 336 px, timed at 224 px: 25 ms x (336/224)^2
    per_image = 2 * 25.0 * (336 / 224) ** 2 + 12.0
    assert final_seconds(config, 260, 65, 100, 325, SPEED) == pytest.approx(15 + 490 * per_image / 1000 + 10)


def test_while_the_warm_up_leads_its_encoding_at_the_backbones_own_size_is_reserved():
    """Kept, the head warm-up encodes at the backbone's own size: a run fitted to a smaller input reserves that
    as well (the trainer stops at the earlier deadline while the warm-up leads on validation)."""
    sizes = dict(n_train=2454, n_classes=101, n_validation=505, n_query=1010, n_database=7667, speed=SPEED)
    small = plan_run("best", max_minutes=17, overrides={"input_size": 128}, **sizes)
    assert small.config.input_size == 128
    figures = (2454, 505, 1010, 7667, SPEED)
    assert small.reserve_seconds == pytest.approx(RESERVE_MARGIN * final_seconds(small.config, *figures))
    native = replace(small.config, input_size=None)     # 224 px, this speed's own size
    assert small.warmup_reserve_seconds == pytest.approx(RESERVE_MARGIN * final_seconds(native, *figures))
    assert small.warmup_reserve_seconds > small.reserve_seconds
    assert any(f"({small.warmup_reserve_seconds:.0f} s while the head warm-up leads on validation" in line
               for line in small.lines)
    large = plan_run("best", max_minutes=600, **sizes)    # 336 px: the warm-up would encode faster
    assert large.config.input_size == 336 and large.warmup_reserve_seconds == large.reserve_seconds
    assert not any("while the head warm-up leads" in line for line in large.lines)


def test_the_sources_own_decoding_cost_replaces_the_assumed_one():
    asked = []

    def probe(size: int) -> float:
        asked.append(size)
        return 1.0      # 32 x 32 thumbnails: about a millisecond, not a photo's 12

    assumed = plan_run("best", n_train=4500, n_classes=10, max_minutes=90, n_validation=500, n_query=1000,
                       n_database=54000, speed=SPEED)
    measured = plan_run("best", n_train=4500, n_classes=10, max_minutes=90, n_validation=500, n_query=1000,
                        n_database=54000, speed=SPEED, decode_probe=probe)
    assert asked == [336]     # at the run's input side
    assert any("reading and decoding 1.0 ms/image of this source" in line for line in measured.lines)
    assert not any("reading and decoding" in line for line in assumed.lines)
    # 55,500 images encoded after training (the 500 validation images twice: calibration, then the report):
    # 11 ms less each, with the reserve's margin
    assert assumed.reserve_seconds - measured.reserve_seconds == pytest.approx(RESERVE_MARGIN * 55500 * 11 / 1000)
    assert measured.estimated_epochs > assumed.estimated_epochs
    unmeasured = plan_run("best", n_train=4500, n_classes=10, max_minutes=90, speed=SPEED,
                          decode_probe=lambda size: None)     # nothing decoded: the assumed cost stays
    assert unmeasured.reserve_seconds == plan_run("best", n_train=4500, n_classes=10, max_minutes=90,
                                                  speed=SPEED).reserve_seconds


def test_fast_drops_augmented_copies_then_the_input_size():
    config, _ = resolve_recipe("fast", n_train=260, n_classes=13, max_minutes=60, speed=SPEED)
    assert (config.augment_copies, config.input_size, config.epochs) == (1, 352, 300)
    tight = plan_run("fast", n_train=260, n_classes=13, max_minutes=1.5, speed=SPEED)
    assert tight.config.augment_copies == 0 and tight.config.input_size == 352 and tight.config.epochs == 300
    assert estimate_seconds(replace(tight.config, epochs=tight.estimated_epochs), 260, 65, SPEED) <= 90
    tighter, lines = resolve_recipe("fast", n_train=260, n_classes=13, max_minutes=1.0, speed=SPEED)
    assert tighter.augment_copies == 0 and tighter.input_size < 352 and "(fits)" in lines[-1]


def test_given_settings_are_never_changed():
    config, lines = resolve_recipe("best", n_train=260, n_classes=13, max_minutes=5, speed=SPEED,
                                   overrides={"epochs": 40, "bits": 48, "lr": None,
                                              "augment_kwargs": {"min_crop_fraction": 0.7}})
    assert (config.epochs, config.bits, config.lr) == (40, 48, 1e-3)
    assert config.augment_kwargs == {"min_crop_fraction": 0.7, "max_degrees": 10.0, "crop_shape": "image"}
    given = next(line for line in lines if line.startswith("given: "))
    assert "epochs=40 (recipe: 30)" in given and "bits=48 (recipe: 64)" in given   # what each flag replaced
    with pytest.raises(InvalidInputError, match="unknown training settings"):
        resolve_recipe("fast", n_train=10, n_classes=2, overrides={"epoch": 3})


def test_the_machine_is_measured_when_no_speed_is_given():
    threads = torch.get_num_threads()
    speed = measure_speed(TrainConfig(), batch=2, repeats=1)
    assert speed.device == "cpu" and speed.native_forward_ms > 0 and speed.head_ms > 0 and speed.train_ms == 0
    assert torch.get_num_threads() == threads   # the head step is timed on one thread, as the trainer runs it
    config, lines = resolve_recipe("fast", n_train=40, n_classes=4, max_minutes=10)
    assert any(line.startswith("measured on cpu") for line in lines)


def test_a_cpu_fine_tuning_plan_hands_the_trainer_what_follows_training_to_re_time():
    """The probe's reserve starts the run; the images encoded after training let the trainer re-estimate it from
    its own validations (``FinalWork``). A frozen run's final work is not timed by its validations: no re-estimate."""
    from hashseek.eval.source_runs import run_deadlines
    from hashseek.train.schedule import FinalWork

    sizes = dict(n_train=260, n_classes=13, n_validation=65, n_query=206, n_database=325, speed=SPEED)
    plan = plan_run("best", max_minutes=15, **sizes)
    assert plan.config.mode == "finetune" and (plan.final_images, plan.final_fixed_seconds) == (260 + 130 + 206, 25.0)
    deadlines = run_deadlines(plan, 100.0, 15)
    assert deadlines["final"] == FinalWork(1000.0, 596, 25.0)
    assert deadlines["deadline"] == pytest.approx(1000.0 - plan.reserve_seconds)
    assert deadlines["final"].seconds_after(deadlines["final"].deadline(0.1)) == pytest.approx(1.2 * 59.6 + 25)
    assert any("kept for the final evaluation and the report, re-timed by each validation" in line
               for line in plan.lines)
    frozen = plan_run("fast", max_minutes=15, **sizes)
    assert frozen.final_images == 0 and run_deadlines(frozen, 100.0, 15)["final"] is None
    assert not any("re-timed" in line for line in frozen.lines)
    assert run_deadlines(plan, 100.0, None) == {"deadline": None, "warmup_deadline": None, "final": None}
