"""Training without some classes, to see how a model does on classes it never saw.

A collection gains classes after training, and a run's validation images hold none: so an auxiliary
model of the run's settings is trained on the training images of two thirds of the classes, and the
held-out third stands for the classes a user adds later (``hashseek.eval.rerank_blend`` chooses the
re-rank blend on it).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from hashseek.models.heads import HEADS
from hashseek.train.config import TrainConfig

MIN_CLASSES = 4                  # classes with validation images: a third held out, the rest trained on
MAX_AUX_IMAGES = 1000            # the auxiliary model's training images at most (a seeded sample)
HELD_OUT_SHARE = 1 / 3


def takes_blend(config: TrainConfig, n_classes: int) -> bool:
    """A frozen head whose embedding is the pretrained pooled vector, with classes enough to hold some out."""
    return (config.mode == "frozen" and HEADS.metadata(config.head)["pooled_embedding"]
            and n_classes >= MIN_CLASSES)


def hold_out(classes: Sequence[int], train_ids: Sequence[str], train_labels: np.ndarray,
             seed: int) -> tuple[set[int], list[str]]:
    """(held-out classes, the auxiliary model's training ids): a seeded third of ``classes`` held out, the
    others' training images (at most ``MAX_AUX_IMAGES``, a seeded sample) kept in their order."""
    rng = np.random.default_rng(seed)
    held = set(rng.choice(list(classes), size=max(1, round(len(classes) * HELD_OUT_SHARE)), replace=False).tolist())
    kept = [i for i, label in zip(train_ids, train_labels) if int(label) not in held]
    if len(kept) > MAX_AUX_IMAGES:
        chosen = set(rng.choice(len(kept), MAX_AUX_IMAGES, replace=False).tolist())
        kept = [i for n, i in enumerate(kept) if n in chosen]
    return held, kept


def aux_config(config: TrainConfig, epochs: int | None) -> TrainConfig:
    """The run's settings for as many epochs as the run kept, with no deadline of its own."""
    return replace(config, epochs=epochs or config.epochs, max_minutes=None)


def check_seconds(train_seconds: float, n_train: int) -> float:
    """The auxiliary model's time, from the run's own (maps and epochs): it trains on a share of the images."""
    return train_seconds * min(MAX_AUX_IMAGES, round(n_train * (1 - HELD_OUT_SHARE))) / max(1, n_train)
