"""The classifier's temperature, fitted on the validation images once the weights are chosen.

Training ends with it (``Trainer``) and ``hashseek calibrate`` fits it for a model saved before: the
validation images are encoded once more, as the saved model encodes them, and T is fitted to their
labels (``core.calibration``). Only the probabilities change; the codes, the argmax and every
retrieval figure stay as they were.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from hashseek.core.atomic import atomic_write_json
from hashseek.core.calibration import calibration_figures, confidence_ceiling, fit_temperature
from hashseek.core.errors import InvalidInputError
from hashseek.data.datasets import ImageDataset
from hashseek.models.hash_model import HashModel
from hashseek.train.evaluator import encode_ids

log = logging.getLogger(__name__)
MIN_IMAGES = 10   # below this a fitted temperature says more about the few images than the classifier


def calibrate(model: HashModel, dataset: ImageDataset, val_ids: Sequence[str], progress: bool = False) -> dict:
    """Fit ``model``'s classifier temperature on ``val_ids`` and set it with its record (the temperature, the
    validation figures before and after; ``config["calibration"]``), which it returns; fewer than MIN_IMAGES
    readable images leave the temperature as it was and the record says so."""
    if not model.has_classifier:
        raise InvalidInputError(f"this {model.config.get('head')} model has no classifier to calibrate")
    previous = model.classifier_temperature
    model.set_classifier_temperature(1.0)
    encoded, _ = encode_ids(model, dataset, val_ids, progress=progress)
    if len(encoded.ids) < MIN_IMAGES:
        model.set_classifier_temperature(previous)
        model.config["calibration"] = {"temperature": previous, "note": f"not fitted: {len(encoded.ids)} readable "
                                                                        f"validation images (fewer than {MIN_IMAGES})"}
        return model.config["calibration"]
    temperature = fit_temperature(encoded.logits, encoded.labels)
    model.set_classifier_temperature(temperature)
    before = calibration_figures(encoded.logits, encoded.labels)
    after = calibration_figures(encoded.logits, encoded.labels, temperature)
    log.info("classifier temperature %.3g (validation: expected calibration error %.3f -> %.3f, mean confidence "
             "%.3f -> %.3f at accuracy %.3f)", temperature, before["ece"], after["ece"], before["confidence"],
             after["confidence"], after["accuracy"])
    model.config["calibration"] = {"temperature": temperature, "fitted_on": f"{len(encoded.ids)} validation images",
                                   "confidence_ceiling": confidence_ceiling(encoded.logits, encoded.labels),
                                   "validation_before": before, "validation_after": after}
    return model.config["calibration"]


def save_calibration(model: HashModel, directory: str | Path) -> Path:
    """Write ``model``'s temperature and its record into the saved model at ``directory`` (its config only,
    atomically: the weights do not change)."""
    path = Path(directory) / "config.json"
    config = json.loads(path.read_text())
    return atomic_write_json(path, {**config, "classifier_temperature": model.classifier_temperature,
                                    "calibration": model.config.get("calibration")})
