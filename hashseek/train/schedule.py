"""How a run unfolds in time: its stages, its learning-rate schedule, and how many epochs fit a deadline.

A deadline-bound run re-plans after every epoch from the measured epoch and validation times
(``epochs_that_fit``) and shrinks its schedule to end there (``Rate.total``), so a shortened run still
anneals its learning rate instead of being cut at a high one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from hashseek.models.hash_model import HashModel


def epochs_that_fit(remaining: int, epoch_seconds: float, val_seconds: float, every: int, left: float) -> int:
    """How many of ``remaining`` epochs fit in ``left`` seconds, with a validation every ``every`` epochs
    and one after the last."""
    fits = 0
    while fits < remaining and (fits + 1) * epoch_seconds + (math.ceil((fits + 1) / every) + 1) * val_seconds <= left:
        fits += 1
    return fits


class Rate:
    """The learning-rate factor at step ``t`` of a schedule over ``total`` steps, times a linear ramp over
    ``ramp`` steps (the trunk's). An object, not a lambda, so the scheduler's checkpoint keeps ``total``
    when a deadline shortens the run."""

    def __init__(self, schedule: str, total: int, ramp: float = 1.0):
        self.schedule, self.total, self.ramp = schedule, total, ramp
        self.scale, self.bad = 1.0, 0      # plateau: the reductions so far, validations since the last best

    def observe(self, improved: bool, patience: int, factor: float) -> None:
        """Reduce-on-plateau: after more than ``patience`` validations without a better mAP, the rate x ``factor``."""
        self.bad = 0 if improved else self.bad + 1
        if self.bad > patience:
            self.scale, self.bad = self.scale * factor, 0

    def __call__(self, t: int) -> float:
        if self.schedule == "plateau":
            factor = self.scale
        elif self.schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * min(t, self.total) / self.total))
        elif self.schedule == "step":
            factor = 0.1 ** (t // max(1, self.total // 3))
        else:
            factor = 1.0
        return factor * min(1.0, (t + 1) / self.ramp)


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
