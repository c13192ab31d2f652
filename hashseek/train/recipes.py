"""Named training recipes: the settings that worked, as presets over ``TrainConfig``.

``fast``: the hash head alone on frozen, cached EfficientNet-Lite0 maps at 352 px with one
seed-augmented copy of each training image (gap+csq, 64 bits, up to 300 epochs); minutes on 2
CPU cores for a few hundred images. On ``caltech101`` gap+csq beat every other head on frozen maps
(mAP@all 0.829 at 48 bits, ITQ 0.589); on the ``cars-bmw13`` validation split gap+csq 0.640,
gap+hashnet 0.590, latent+ce 0.554 (224 px, 4 copies). The input size and copies were chosen on
the validation images of the cars archive's user split (seed 0: 78 validation queries against
348 training images; validation mAP@all / top-8 vote), at about the same extraction cost:
224 px x 4 copies 0.642 / 0.577, 256 x 3 0.759 / 0.718, 288 x 2 0.732 / 0.680, 320 x 2 0.700 /
0.692, 320 x 1 0.729 / 0.667, 352 x 1 0.759 / 0.692 (fine-grained classes gain from larger maps);
the two best again on the seed-1 split's validation images: 352 x 1 0.774 / 0.731, 256 x 3
0.735 / 0.680 (means over both: 0.767 / 0.711 against 0.747 / 0.699).

``best``: end-to-end fine-tuning with the best settings measured on the 2-core CPU: gap+csq,
EfficientNet-Lite2 at 336 px with its first 3 of 7 stages kept at the pretrained weights (no backward
through them: a step 2-3x cheaper, spent on a larger network, larger inputs and more epochs), 100
warm-up epochs of the head on frozen maps, trunk learning rate 0.3 x the head's, mild crops with the
photo's aspect ratio (>= 0.8 of a side, ±10°, mirror), and mirror-averaged encoding. Chosen on the
validation images of the cars archive's user split, 3 seeds at ``max_minutes=30``: mAP@all 0.878
(sd 0.054) against 0.839 (0.026) for the former EfficientNet-Lite1 at 280 px with the whole trunk
tuned (measured on a slower CPU, 13-16 epochs against 15-21; run again on the same CPU, seed 0: 0.871
against 0.933; docs/measurements.md). ``precision="auto"``: the trunk's steps in bfloat16 autocast on a
CPU with AVX-512 BF16 or AMX (or a GPU with bfloat16), 1.9x faster steps there; on the same 3 splits and
machine, 28-30 epochs in the 30 minutes instead of 15-21, validation 0.887 (0.046) against 0.878 (0.054).

Every run selects its epoch on validation images. ``max_minutes`` bounds a whole run: the
machine's speed is measured with a few timed steps, and the recipe's epochs (``best``: then its
input size; ``fast``: first its augmented copies) shrink in the estimate until it fits, counting map
extraction, the validations, the zero-training baseline (fitted before training) and the final
evaluation (``Plan.reserve_seconds``, kept free of training; a CPU fine-tuning run re-times it by its own
validations, ``Plan.final_images``). The estimate chooses the input size
and the copies; the epochs stay the recipe's as a ceiling, since the trainer holds the rest of the
time as a hard deadline: it re-plans its epochs after each one from their measured times (a few
timed steps misjudge a machine whose load changes: a run measured on a busy machine planned 13
epochs and ran 5 in 18 of its 30 minutes) and stops between batches. Settings in ``overrides`` are
never changed.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, fields, replace
from typing import Callable

import torch

from hashseek.core.errors import InvalidInputError
from hashseek.core.registry import Registry
from hashseek.models.backbones import create_backbone
from hashseek.models.features import BackboneEncoder
from hashseek.models.heads import create_head
from hashseek.train.config import TrainConfig, training_device
from hashseek.train.encode_size import larger_size
from hashseek.train.precision import autocast_dtype, trunk_forward
from hashseek.train.selection import validation_interval

RECIPES: Registry[dict] = Registry("recipe", defaults={"description": "", "mode": "frozen"})

DECODE_MS = 12.0        # decoding and resizing one photo on one core, beside the network, when not measured
EXPORT_SECONDS = 15.0   # exporting a fine-tuned model to ONNX Runtime (each CPU validation, the final evaluation)
REPORT_SECONDS = 10.0   # saving the model, writing eval.json, summary.md and the plots (under load)
ITQ_FIT_SECONDS = 5.0   # the baseline's ITQ fit (an eigendecomposition of the 1280-d covariance)
RESERVE_MARGIN = 1.5    # what follows training is reserved with this margin (it cannot be cut short)
PROBE_BATCH = 16        # the speed probe's images per step (fewer when the run's batches are smaller)
PROBE_SHORTFALL = 1.3   # cars archive, 30 min, alone: 20 epochs estimated to fit, 16 did (session 9)
MIN_EPOCHS = 8          # below this a fine-tuning run is not worth it: shrink the input instead
SIZES = (352, 336, 320, 288, 280, 256, 240, 224, 192, 160, 128)


@RECIPES.register("fast", description="hash head on frozen EfficientNet-Lite0 maps at 352 px, 1 augmented "
                                      "copy (gap+csq, 64 bits); minutes on a CPU", mode="frozen")
def fast() -> dict:
    return dict(backbone="efficientnet_lite0", head="gap", loss="csq", bits=64, mode="frozen", epochs=300,
                batch_size=64, lr=1e-3, augment_copies=1, input_size=352)


@RECIPES.register("best", description="end-to-end fine-tuning: gap+csq, EfficientNet-Lite2 at 336 px with its "
                                      "first 3 stages kept, bfloat16 trunk steps where the hardware has them, head "
                                      "warm-up on frozen maps, trunk lr x0.3, photo-shaped crops, mirror-averaged "
                                      "encoding at the size that validates better (the training size or 1.15x)",
                  mode="finetune")
def best() -> dict:
    return dict(backbone="efficientnet_lite2", head="gap", loss="csq", bits=64, mode="finetune", epochs=30,
                batch_size=32, lr=1e-3, input_size=336, frozen_stages=3, precision="auto", warmup_epochs=100,
                backbone_lr_scale=0.3, mirror_average=True,
                augment_kwargs={"min_crop_fraction": 0.8, "max_degrees": 10.0, "crop_shape": "image"})


@dataclass
class Speed:
    """Measured milliseconds per image on the training device."""

    device: str
    size: int               # input side the network steps were timed at
    forward_ms: float       # backbone forward, no gradient (map extraction, encoding)
    native_forward_ms: float  # the same at the backbone's own size (frozen maps, warm-up)
    train_ms: float         # forward + backward + update of the whole model (fine-tuning)
    head_ms: float          # forward + backward of the head alone on a cached map
    native_size: int | None = None   # the backbone's own input side (native_forward_ms's); None = size
    precision: str = "float32"       # what the training steps ran in (TrainConfig.precision, resolved)
    decode_ms: float = DECODE_MS     # reading, decoding and resizing one of the source's images, one core

    def at(self, size: int) -> "Speed":
        """Network costs grow with the number of pixels."""
        scale = (size / self.size) ** 2
        return replace(self, size=size, forward_ms=self.forward_ms * scale, train_ms=self.train_ms * scale)


@dataclass
class Plan:
    """A recipe resolved for one source: the settings, what was chosen and why, and the seconds to keep
    free after training (the final evaluation and the report) when the run is bounded."""

    config: TrainConfig
    lines: list[str]
    reserve_seconds: float = 0.0
    estimated_epochs: int | None = None    # bounded: how many of ``config.epochs`` fit at the measured speed
    warmup_reserve_seconds: float = 0.0    # the reserve if the head warm-up is kept (it encodes at the backbone's size)
    final_images: int = 0                  # fine-tuning on a CPU: the images encoded after training, for the trainer
    final_fixed_seconds: float = 0.0       # to re-estimate the reserve from its own validations (``FinalWork``)


def resolve_recipe(name: str, *, n_train: int, n_classes: int, max_minutes: float | None = None,
                   overrides: dict | None = None, n_validation: int | None = None,
                   speed: Speed | None = None) -> tuple[TrainConfig, list[str]]:
    """The recipe's TrainConfig for this source, and lines saying what was chosen and why (``plan_run``
    without what follows training)."""
    plan = plan_run(name, n_train=n_train, n_classes=n_classes, max_minutes=max_minutes, overrides=overrides,
                    n_validation=n_validation, speed=speed)
    return plan.config, plan.lines


def plan_run(name: str, *, n_train: int, n_classes: int, max_minutes: float | None = None,
             overrides: dict | None = None, n_validation: int | None = None, n_query: int = 0,
             n_database: int = 0, speed: Speed | None = None, estimate: bool = False,
             decode_probe: Callable[[int], float | None] | None = None) -> Plan:
    """The recipe's TrainConfig for this source, the lines saying what was chosen and why, and the
    seconds reserved after training.

    ``overrides``: TrainConfig settings that win over the recipe (None values mean "not given";
    ``augment_kwargs`` entries merge into the recipe's). ``n_validation`` defaults to a quarter of
    ``n_train``; ``n_query``/``n_database``: the test evaluation after training (0: none). ``speed``
    skips the measurement (tests, or a machine measured before). ``estimate``: an unbounded fine-tuning
    run is measured too, and a line says how long it will take (a run about to start). ``decode_probe``:
    the milliseconds to read and decode one of the source's images at an input side (``data.loader.decode_ms``
    on its training images), called when the speed is measured; without it ``DECODE_MS`` is assumed.
    """
    settings = RECIPES.create(name)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise InvalidInputError(f"unknown training settings {unknown}")
    recipe_config = TrainConfig(**settings)   # what each given setting replaces
    for key, value in given.items():
        settings[key] = {**settings.get(key, {}), **value} if isinstance(value, dict) else value
    config = TrainConfig(**settings)
    n_val = n_train // 4 if n_validation is None else n_validation
    lines = [f"recipe {name}: {RECIPES.metadata(name)['description']}",
             f"{n_train} training images, {n_val} validation images, {n_classes} classes; "
             f"the epoch is selected on validation mAP@all"]
    if given:
        lines.append("given: " + ", ".join(f"{k}={v}" + (f" (recipe: {getattr(recipe_config, k)})"
                                                         if getattr(recipe_config, k) != getattr(config, k) else "")
                                           for k, v in sorted(given.items())))
    if max_minutes is not None and max_minutes <= 0:
        raise InvalidInputError(f"max_minutes must be positive, got {max_minutes}")
    if max_minutes is None and (config.mode == "frozen" or not estimate):   # a frozen run takes minutes
        return Plan(config, lines)
    speed = speed or measure_speed(config)
    decoding = decode_probe(config.input_size or speed.size) if decode_probe else None
    if decoding is not None:
        speed = replace(speed, decode_ms=decoding)
    step = f"training step {speed.train_ms:.1f} ms/image at {speed.size} px in {speed.precision}, " \
        if speed.train_ms else ""
    decoded = f", reading and decoding {decoding:.1f} ms/image of this source" if decoding is not None else ""
    lines.append(f"measured on {speed.device}: backbone forward {speed.native_forward_ms:.1f} ms/image at its own "
                 f"size, {step}head step {speed.head_ms:.2f} ms/image{decoded}")
    baseline = baseline_seconds(n_train, n_val, speed) if n_val else 0.0
    if max_minutes is None:   # fine-tuning unbounded can take hours on a CPU: say so before it starts
        total = baseline + estimate_seconds(config, n_train, n_val, speed) + RESERVE_MARGIN * final_seconds(
            config, n_train, n_val, n_query, n_database, speed)
        lines.append(f"estimated {_duration(total)} on this {speed.device.upper()} for {config.epochs} epochs at "
                     f"{config.input_size or speed.size} px, with the baseline, validation and the report; "
                     "--max-minutes N bounds the run (epochs and input size are then fitted to N)")
        return Plan(config, lines)
    budget = 60.0 * max_minutes

    def reserve(c: TrainConfig) -> float:
        return RESERVE_MARGIN * final_seconds(c, n_train, n_val, n_query, n_database, speed)

    fitted, changes = _fit_budget(config, set(given), n_train, n_val, speed, budget - baseline, reserve)
    if "max_minutes" not in given:
        fitted = replace(fitted, max_minutes=max_minutes)
    kept = reserve(fitted)
    warm_kept = max(kept, reserve(replace(fitted, input_size=None))) \
        if fitted.mode == "finetune" and fitted.warmup_epochs and n_val else kept
    after = "the final evaluation and the report" if n_query or n_database else "the report (no test evaluation)"
    while_warm = f" ({warm_kept:.0f} s while the head warm-up leads on validation: kept, it encodes at the " \
                 "backbone's own size)" if warm_kept > kept + 1 else ""
    retimed = fitted.mode == "finetune" and speed.device == "cpu" and bool(n_query or n_database)
    timing = ", re-timed by each validation of the run" if retimed else ""
    changes.append(f"about {baseline:.0f} s for the zero-training baseline (before training) and {kept:.0f} s kept "
                   f"for {after}{timing}{while_warm}; "
                   f"training holds the rest as a hard deadline (after each "
                   f"epoch, as many epochs as fit at their measured times, up to {config.epochs}; stopped between "
                   f"batches; the best validated epoch is kept)")
    estimate = estimate_seconds(fitted, n_train, n_val, speed) + baseline + kept
    lines += changes
    fits = "fits" if estimate <= budget else "does NOT fit: the deadline will cut it"
    lines.append(f"estimated {estimate / 60:.1f} min of the {max_minutes:.2f} left of --max-minutes ({fits}): "
                 f"{fitted.epochs} epochs" + (f", {fitted.augment_copies} augmented copies" if fitted.mode == "frozen"
                                              else f" at {fitted.input_size or 'native'} px after "
                                                   f"{fitted.warmup_epochs} warm-up epochs"))
    return Plan(replace(fitted, epochs=config.epochs), lines, kept, fitted.epochs, warm_kept,
                final_images(n_train, n_val, n_query, n_database) if retimed else 0,
                EXPORT_SECONDS + REPORT_SECONDS)


def _duration(seconds: float) -> str:
    """The estimate as a range: the probe has come out faster than real epochs (PROBE_SHORTFALL)."""
    low, high = seconds / 60, PROBE_SHORTFALL * seconds / 60
    return f"{low:.0f}-{high:.0f} min" if high < 90 else f"{low / 60:.1f}-{high / 60:.1f} h"


def baseline_seconds(n_train: int, n_val: int, speed: Speed) -> float:
    """The zero-training baseline: pooled features of the training and validation images, and ITQ's fit."""
    return (n_train + n_val) * (speed.native_forward_ms + speed.decode_ms) / 1000 + ITQ_FIT_SECONDS


def final_seconds(config: TrainConfig, n_train: int, n_val: int, n_query: int, n_database: int,
                  speed: Speed) -> float:
    """What follows training, from the measured costs: the classifier's calibration (the validation images
    encoded once more), the final evaluation (each image encoded once for validation and test; a frozen
    model's training and validation maps are cached, so only the test queries are new) and the report."""
    if not (n_query or n_database):
        return REPORT_SECONDS
    if config.mode == "frozen" and not config.mirror_average:
        final = n_query * (_map_ms(config, speed) + speed.decode_ms)
    else:   # the saved model encodes through ONNX Runtime, timed at the backbone's own size
        encoded = final_images(n_train, n_val, n_query, n_database)
        final = 1000 * EXPORT_SECONDS + encoded * ((2 if config.mirror_average else 1) * _onnx_ms(config, speed)
                                                   + speed.decode_ms)
    return final / 1000 + REPORT_SECONDS


def final_images(n_train: int, n_val: int, n_query: int, n_database: int) -> int:
    """The images a saved model encodes after training: the validation images to calibrate its classifier, then
    each image of the final evaluation once (training and validation images for the report's validation
    figures, the test queries, and the rest of the database)."""
    return n_train + 2 * n_val + n_query + max(0, n_database - n_train - n_val)


def estimate_seconds(config: TrainConfig, n_train: int, n_val: int, speed: Speed) -> float:
    """Wall time of a run from the measured per-image costs (validation included)."""
    copies = config.augment_copies if config.mode == "frozen" else 0
    maps = (n_train * (1 + copies) + n_val) * (_map_ms(config, speed) + speed.decode_ms)
    head_epoch = n_train * (1 + copies) * speed.head_ms
    head_validation = (n_train + n_val) * speed.head_ms / 3
    frozen = maps + _with_validation(config.warmup_epochs if config.mode == "finetune" else config.epochs,
                                     head_epoch, head_validation, "frozen")
    if config.mode == "frozen":
        return frozen / 1000
    at = speed.at(config.input_size or speed.size)
    passes = 2 if config.mirror_average else 1
    # on the CPU each validation exports the weights and encodes through ONNX Runtime (SnapshotEncoder)
    on_cpu = speed.device == "cpu"
    forward_ms = _onnx_ms(config, speed) if on_cpu else at.forward_ms
    validation = ((n_train + n_val) * (passes * forward_ms + speed.decode_ms)
                  + (1000 * EXPORT_SECONDS if on_cpu else 0))
    tuning = n_train * speed.decode_ms + _with_validation(config.epochs, n_train * at.train_ms, validation, "finetune")
    if n_val:   # the kept weights validated once more at a larger encode size (``encode_size.py``)
        size = config.input_size or speed.size
        tuning += validation * (larger_size(size) / size) ** 2
    if not config.warmup_epochs:
        return tuning / 1000
    # the warm-up model validated as it would encode (mirror-averaged, at the backbone's own size)
    native_ms = speed.native_forward_ms if on_cpu else speed.at(speed.native_size or speed.size).forward_ms
    check = ((n_train + n_val) * (2 * native_ms + speed.decode_ms) + (1000 * EXPORT_SECONDS if on_cpu else 0)
             if config.mirror_average and n_val else 0.0)
    return (frozen + check + tuning) / 1000


def _map_ms(config: TrainConfig, speed: Speed) -> float:
    """One image's cached map: a frozen run's at its input size, a fine-tuning warm-up's at the backbone's own."""
    return _onnx_ms(config, speed) if config.mode == "frozen" else speed.native_forward_ms


def _onnx_ms(config: TrainConfig, speed: Speed) -> float:
    """One image through the ONNX graph at the config's input size (costs grow with the pixels)."""
    native = speed.native_size or speed.size
    return speed.native_forward_ms * ((config.input_size or native) / native) ** 2


def _with_validation(epochs: int, epoch_ms: float, validation_ms: float, mode: str) -> float:
    """Training epochs plus the validations the trainer will run between them (the first and last always)."""
    if epochs <= 0:
        return 0.0
    every = validation_interval(validation_ms, epoch_ms, mode)
    return epochs * epoch_ms + (min(epochs, 2 + (epochs - 1) // every)) * validation_ms


def _fit_budget(config: TrainConfig, fixed: set[str], n_train: int, n_val: int, speed: Speed,
                budget: float, reserve) -> tuple[TrainConfig, list[str]]:
    """Shrink what the user did not fix until the estimate (and the reserve after training) fits: frozen, the
    augmented copies, then the maps' input size, then epochs; fine-tuning, epochs, then the input size.
    The epochs returned are the estimate's (``plan_run`` keeps the recipe's as the trainer's ceiling)."""
    def cost(c: TrainConfig) -> float:
        return estimate_seconds(c, n_train, n_val, speed) + reserve(c)

    start, changes = config, []
    if config.mode == "frozen" and "augment_copies" not in fixed:
        while config.augment_copies > 0 and cost(config) > budget:
            config = replace(config, augment_copies=config.augment_copies - 1)
    if config.mode == "frozen" and "input_size" not in fixed:
        for size in SIZES:
            if cost(config) > budget and size < (config.input_size or speed.native_size or speed.size):
                config = replace(config, input_size=size)
    floor = 10 if config.mode == "frozen" else MIN_EPOCHS
    if "epochs" not in fixed and cost(config) > budget:
        config = replace(config, epochs=max(min(floor, config.epochs), _affordable_epochs(config, cost, budget)))
    if config.mode == "finetune" and "input_size" not in fixed:
        for size in SIZES:
            if cost(config) <= budget or size >= (config.input_size or speed.size):
                continue
            config = replace(config, input_size=size)
            if "epochs" not in fixed:
                config = replace(config, epochs=max(MIN_EPOCHS, _affordable_epochs(replace(config, epochs=start.epochs),
                                                                                   cost, budget)))
    for key in ("augment_copies", "input_size"):
        if getattr(config, key) != getattr(start, key):
            changes.append(f"{key}: {getattr(start, key)} -> {getattr(config, key)} to fit the time limit")
    if config.epochs != start.epochs:
        changes.append(f"epochs: about {config.epochs} of {start.epochs} fit the time limit at the measured speed")
    return config, changes


def _affordable_epochs(config: TrainConfig, cost, budget: float) -> int:
    """The most epochs (up to the config's) whose estimate fits the budget; 0 when none does."""
    fitting = [n for n in range(1, config.epochs + 1) if cost(replace(config, epochs=n)) <= budget]
    return fitting[-1] if fitting else 0


def measure_speed(config: TrainConfig, batch: int | None = None, repeats: int = 3) -> Speed:
    """Time a few steps as the run will take them: map extraction through ONNX Runtime, and for
    fine-tuning the torch forward and training steps at the input size. Seconds on an idle CPU;
    on a busy one it measures what the machine can do now.

    ``batch`` (default: the run's batch size, at most 16) images a step, each step timed on its own after
    one untimed call, the median kept. At 4 images a step the probe came out at 0.65 of a real training
    step's cost (batch 32 with Adam), at 16 at 0.88 (``benchmarks/speed_probe.py``). Neither is steadier
    than the machine: the real step itself varied 1.4x within a minute there."""
    batch = batch or min(config.batch_size, PROBE_BATCH)
    device = training_device(config.device)
    backbone = create_backbone(config.backbone, pretrained=not config.random_init, weights=config.backbone_weights)
    native_size = backbone.input_size
    size = config.input_size or native_size
    extractor = BackboneEncoder(backbone, kind="map")
    head = create_head(config.head, backbone.feature_channels, config.bits, None, **config.head_kwargs).to(device)

    def median_ms(call, images: int) -> float:
        call()                               # the first call allocates and picks kernels
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - start)
        return 1000 * statistics.median(seconds) / images

    def timed(step, side: int) -> float:
        x = torch.randn(batch, 3, side, side)
        return median_ms(lambda: step(x), batch)

    def head_step():
        head.zero_grad(set_to_none=True)
        head(maps).codes.sum().backward()

    maps = torch.from_numpy(extractor.encode_arrays(torch.randn(batch, 3, native_size, native_size).numpy()))
    native = timed(lambda x: extractor.encode_arrays(x.numpy()), native_size)
    # a head step on as many cached maps as a batch of the run holds: per image, bilinear's step took 6.5 ms on 128
    # maps and 3.9 on 32 (its warm-up ran at 4.4 with the optimiser and validation), spp_pmt's 6.6 and 9.2
    maps = maps.repeat(-(-config.batch_size // batch), 1, 1, 1)[:config.batch_size].to(device)
    if hasattr(head, "reduce_map"):   # the trainer pools such a head's maps once (trainer._frozen_data)
        maps = head.reduce_map(maps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the trainer steps a head on cached maps (trainer.fit: a second thread spin-waits)
    try:
        head_ms = median_ms(head_step, len(maps))
    finally:
        torch.set_num_threads(threads)
    if config.mode != "finetune":   # maps at another input size cost in proportion to their pixels (_map_ms)
        return Speed(str(device), native_size, native, native, 0.0, head_ms, native_size)
    backbone.to(device).eval()
    backbone.requires_grad_(False)   # the step is timed as the run takes it: kept stages need no backward
    for p in backbone.tuned_parameters(config.frozen_stages):
        p.requires_grad_(True)

    def forward(x):
        with torch.no_grad():
            backbone.forward_features(x.to(device))

    dtype = autocast_dtype(config.precision, device)

    def train(x):
        backbone.zero_grad(set_to_none=True)
        head(trunk_forward(backbone, x.to(device), dtype)).codes.sum().backward()

    return Speed(str(device), size, timed(forward, size), native, timed(train, size), head_ms, native_size,
                 "bfloat16" if dtype else "float32")


def list_recipes() -> list[str]:
    return RECIPES.names()


def describe_recipes() -> dict[str, dict]:
    """Each recipe's metadata and settings, for help texts and reports."""
    return {name: {**RECIPES.metadata(name), "settings": RECIPES.create(name)} for name in RECIPES.names()}


__all__ = ["RECIPES", "Plan", "Speed", "baseline_seconds", "describe_recipes", "estimate_seconds", "final_images",
           "final_seconds", "list_recipes", "measure_speed", "plan_run", "resolve_recipe"]
