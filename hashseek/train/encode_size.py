"""The encode size of a fine-tuned model, chosen on validation after training.

Training crops (at least ``min_crop_fraction`` of a side, then resized) show objects larger than
the whole photo shows them at the same input size, so a network often encodes best somewhat above
the size it was trained at (Touvron et al. 2019, "Fixing the train-test resolution discrepancy");
on a CPU the planner also trains below the backbone's own size. So the kept weights are validated
once more at ``ENCODE_SCALE`` times the training size, and that size is kept only when its
validation mAP@all is higher. On the three Caltech101 seeds fine-tuned at 160 and 192 px it was
(validation +0.008-0.012; test mAP@all 0.920 -> 0.927 over the seeds); on the cars archive at 280 px
it never was (-0.002 to -0.025), so those models keep 280 (``benchmarks/encode_size.py``). Under a
deadline the larger size is tried only when the try and the longer final encoding it would bring both fit.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

import torch

from hashseek.data.datasets import ImageDataset
from hashseek.models.hash_model import HashModel
from hashseek.train.evaluator import evaluate_split, training_encoder

log = logging.getLogger(__name__)
ENCODE_SCALE = 1.15   # the size tried beside the training size (rounded to a multiple of 16)


def larger_size(size: int) -> int:
    """The encode size tried beside ``size``: ENCODE_SCALE times it, a multiple of 16, always larger."""
    return max(16 * round(size * ENCODE_SCALE / 16), size + 16 - size % 16)


def choose_encode_size(model: HashModel, dataset: ImageDataset, val_ids: Sequence[str], train_ids: Sequence[str],
                       device: torch.device, trained_map: float, validation_seconds: float,
                       deadline: float | None, progress: bool = False, encoding_after: float = 0.0) -> dict:
    """Validate ``model`` (at its training size, scoring ``trained_map``) at the larger size and keep the
    better; a try that would end past ``deadline`` (judged from ``validation_seconds`` at the training size,
    scaled by the pixels) is skipped, as is one whose larger encoding after training would not fit
    (``encoding_after``: the seconds kept for it at the training size). Returns what was tried, for the run's
    selection record."""
    trained, tried = model.input_size, larger_size(model.input_size)
    record = {"trained_size": trained, "encode_size": trained, "encode_size_val_map": {str(trained): trained_map}}
    scale = (tried / trained) ** 2
    if deadline is not None and time.perf_counter() + validation_seconds * scale + encoding_after * (scale - 1) \
            > deadline:
        record["encode_size_note"] = (f"{tried} px not tried: trying it, and the longer final encoding it would "
                                      "bring, would have ended past the deadline")
        return record
    model.input_size = tried
    encoder = training_encoder(model, dataset, device, progress=progress)
    try:
        figure = evaluate_split(model, dataset, val_ids, train_ids, progress=False, encoder=encoder).figures["map_all"]
    finally:
        getattr(encoder, "close", lambda: None)()
    record["encode_size_val_map"][str(tried)] = figure
    if figure > trained_map:
        record["encode_size"] = tried
        log.info("encoding at %d px (validation mAP@all %.4f) rather than the training size %d px (%.4f)",
                 tried, figure, trained, trained_map)
    else:
        model.input_size = trained
    return record
