"""How a run unfolds in time: its stages, its learning-rate schedule, and how many epochs fit a deadline.

A deadline-bound run re-plans after every epoch from the measured epoch and validation times
(``replan``): the plan shrinks when epochs get slower and grows back (up to the configured epochs)
when they get faster, at any point of the run. The schedule is re-targeted from where it stands
(``Rate.replan``): the learning rate never jumps, a shorter plan anneals faster from there and a
longer one more slowly, and the rate reaches its end at the new last epoch, so a shortened run is not
cut at a high rate and a lengthened one does not raise an annealed rate again. The plan counts each
epoch and validation at the slowest of the last few measured (``Pace``): planned at the latest time alone,
one quick epoch on a busy machine planned a last epoch whose validation then missed the deadline, and
that epoch's weights were dropped unvalidated.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

from hashseek.models.hash_model import HashModel

log = logging.getLogger(__name__)


def epochs_that_fit(remaining: int, epoch_seconds: float, val_seconds: float, every: int, left: float,
                    since: int = 0) -> int:
    """How many of ``remaining`` more epochs fit in ``left`` seconds with the validations ``Selection.due``
    will run: ``since`` epochs ran since the last validation (the latest of them, when ``since`` > 0, not
    validated yet: it is when due, or when it is the last), then every ``every`` epochs, and after the last."""
    fits, validations, gap = 0, 0, since
    if since and since >= every:      # the epoch just run is due whatever follows
        validations, gap = 1, 0
    while fits < remaining:
        # one more epoch as the last one: its validation, and those due before it
        if (fits + 1) * epoch_seconds + (validations + 1) * val_seconds > left:
            break
        fits, gap = fits + 1, gap + 1
        if gap >= every:              # validated on the way if the plan goes on past it
            validations, gap = validations + 1, 0
    return fits


def replan(done: int, last: int, ceiling: int, epoch_seconds: float, val_seconds: float, every: int, since: int,
           left: float, scheduler, steps_per_epoch: int) -> int:
    """The last epoch that fits in ``left`` seconds at the measured times (``done`` epochs run, the latest
    not validated yet; ``last`` planned so far, at most ``ceiling``); the scheduler's rates end there."""
    planned = done + epochs_that_fit(ceiling - done, epoch_seconds, val_seconds, every, left, since)
    if planned != last:
        log.info("re-planned for the deadline: %d of %d epochs fit (%.1f s an epoch, %.1f s a validation)",
                 planned, ceiling, epoch_seconds, val_seconds)
        for rate in scheduler.lr_lambdas:
            rate.replan(scheduler.last_epoch, planned * steps_per_epoch)
    return planned


class Rate:
    """The learning-rate factor at step ``t`` of a schedule over ``total`` steps, times a linear ramp over
    ``ramp`` steps (the trunk's). An object, not a lambda, so the scheduler's checkpoint keeps the plan.

    ``replan(t, end)`` makes the rest of the schedule run from step ``t`` to step ``end``: steps map
    linearly onto what is left of the ``total``-step shape, so the factor is continuous and never rises."""

    def __init__(self, schedule: str, total: int, ramp: float = 1.0):
        self.schedule, self.total, self.ramp = schedule, total, ramp
        self.scale, self.bad = 1.0, 0      # plateau: the reductions so far, validations since the last best
        self.anchor, self.at, self.end = 0, 0.0, total   # step ``anchor`` is at ``at`` of the shape; it ends at ``end``

    def observe(self, improved: bool, patience: int, factor: float) -> None:
        """Reduce-on-plateau: after more than ``patience`` validations without a better mAP, the rate x ``factor``."""
        self.bad = 0 if improved else self.bad + 1
        if self.bad > patience:
            self.scale, self.bad = self.scale * factor, 0

    def replan(self, t: int, end: int) -> None:
        self.anchor, self.at, self.end = t, self.position(t), max(end, t + 1)

    def position(self, t: int) -> float:
        """Where step ``t`` falls on the ``total``-step shape (``t`` itself until a re-plan)."""
        if t >= self.end:
            return float(self.total)
        return self.at + (t - self.anchor) * (self.total - self.at) / (self.end - self.anchor)

    def __call__(self, t: int) -> float:
        if self.schedule == "plateau":
            factor = self.scale
        elif self.schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * self.position(t) / self.total))
        elif self.schedule == "step":
            factor = 0.1 ** (int(self.position(t)) // max(1, self.total // 3))
        else:
            factor = 1.0
        return factor * min(1.0, (t + 1) / self.ramp)


class Pace:
    """The seconds to plan one more epoch (or validation) at: the slowest of the last ``window`` measured."""

    def __init__(self, window: int = 5):
        self.times: deque[float] = deque(maxlen=window)

    def __call__(self, seconds: float | None = None) -> float:
        """Record ``seconds`` when given; the planning time."""
        if seconds is not None:
            self.times.append(seconds)
        return max(self.times, default=0.0)


MEASURED_MARGIN = 1.2   # on what follows training, once timed by the run's own validations (the probe's: 1.5)


@dataclass(frozen=True)
class FinalWork:
    """What follows a fine-tuning run on the CPU, for re-estimating the time it needs from the run's own
    validations: each one encodes the training and validation images through the ONNX graph the saved model
    encodes with, so its time per image, times the ``images`` encoded after training, plus ``fixed_seconds``
    (export, report), is that work measured on this machine as it is now. ``end``: when the whole run must be
    done. The probe's reserve, fixed at the start, misjudges a machine whose load changes: a CIFAR-10 run probed
    beside other jobs kept 1,704 s where about 1,350 were used, and ran 4 epochs fewer than its other seeds."""
    end: float
    images: int
    fixed_seconds: float

    def deadline(self, seconds_per_image: float) -> float:
        """When training must end at this measured cost."""
        return self.end - MEASURED_MARGIN * seconds_per_image * self.images - self.fixed_seconds

    def seconds_after(self, deadline: float) -> float:
        return self.end - deadline


def share(started: float, deadline: float | None, share: float) -> float | None:
    """A point ``share`` of the way from ``started`` to ``deadline`` (None without a deadline)."""
    return None if deadline is None else started + share * (deadline - started)


@dataclass
class Stage:
    name: str
    epochs: int
    head_params: list
    train_backbone: bool
    classification_only: bool


def plan_stages(model: HashModel, epochs: int) -> list[Stage]:
    """The stage of each epoch: one stage, or Bilinear-HashNet's three (classifier, bilinear module, hash layer)."""
    head = model.head
    if not hasattr(head, "stage_parameters") or head.n_classes is None or epochs < 3:
        stage = Stage("all", epochs, list(head.parameters()), True, False)
        return [stage] * epochs
    first = second = epochs // 3
    plan = [Stage("1-classifier", first, head.stage_parameters(1), False, True),
            Stage("2-bilinear", second, head.stage_parameters(2), True, True),
            Stage("3-hash", epochs - first - second, head.stage_parameters(3), False, False)]
    return [s for s in plan for _ in range(s.epochs)]
