"""Which weights a run keeps: the epoch with the best validation mAP@all, never the last one by default.

Validation images are the queries and the training images the database (the library a
user's model will search), scored by the one evaluator. Early stopping ends a run that has
not improved for ``patience`` epochs; ``stopped_for_time`` records that the trainer's deadline
ended it. The state is a plain dict so a checkpoint carries it
and a resumed run chooses exactly as an uninterrupted one.
"""
from __future__ import annotations

import math

import torch

# Validation should cost about this share of the training time: frozen epochs are cheap and many, a
# fine-tuning epoch validates the mirror-averaged trunk on every training image (about as long as training).
TARGET_SHARE = {"frozen": 0.10, "finetune": 0.25}


def validation_interval(val_seconds: float, epoch_seconds: float, mode: str) -> int:
    """Epochs between validations that keep validating near TARGET_SHARE of the run."""
    return max(1, math.ceil(val_seconds / (TARGET_SHARE[mode] * epoch_seconds))) if epoch_seconds > 0 else 1


class Selection:
    def __init__(self, every: int, patience: int, adaptive: str | None = None):
        """``every``: epochs between validations; ``adaptive`` (a training mode): re-chosen after the first
        validation from the measured times, so that validating costs about TARGET_SHARE of the run."""
        self.every, self.patience, self.adaptive = every, patience, adaptive
        self.best_epoch, self.best_map, self.best_state = 0, -math.inf, None
        self.last_epoch, self.last_val_seconds = 0, 0.0
        self.stopped_early = False
        self.stopped_for_time = False

    def due(self, epoch: int, last: int) -> bool:
        """Validate after ``epoch`` (1-based)? The first and last epochs always are."""
        return epoch == last or epoch == 1 or (epoch - self.last_epoch) >= self.every

    def update(self, epoch: int, val_map: float, weights: dict[str, torch.Tensor],
               epoch_seconds: float, val_seconds: float) -> bool:
        """Record a validation; True when it is the best so far (its weights are copied)."""
        if self.adaptive and self.last_epoch == 0:
            self.every = validation_interval(val_seconds, epoch_seconds, self.adaptive)
        self.last_epoch, self.last_val_seconds = epoch, val_seconds
        if val_map > self.best_map:
            self.best_epoch, self.best_map = epoch, val_map
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        """No better validation for ``patience`` epochs (and at least two validations since the best)."""
        if self.patience and self.best_epoch and epoch - self.best_epoch >= max(self.patience, 2 * self.every):
            self.stopped_early = True
        return self.stopped_early

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)
