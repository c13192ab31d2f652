"""The zero-training baseline a trained run must beat, and keeping it when the run does not.

The baseline is what ``hashseek index`` builds without a model: pretrained pooled features
(EfficientNet-Lite0, the collections' default) and ITQ at the run's bits (``FeatureHasher``),
fitted on the split's training images and scored by the one evaluator on the validation
images against the training images, as selection scores a trained model. A run whose kept
model ends below it on validation keeps the baseline instead: the baseline is saved into the
run folder as its ``hasher.json`` (one atomic write), so ``hashseek index --model RUN``,
``reindex`` and ``hashseek eval --model RUN`` use it, while the trained model's own files
(``config.json``, ``model.safetensors``) stay beside it for inspection (``load_model`` still reads them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hashseek.core.hasher import load_image_hasher
from hashseek.data.datasets import ImageDataset
from hashseek.eval.searched import with_searched
from hashseek.models.features import extract_features
from hashseek.models.hash_model import HashModel
from hashseek.search.feature_hasher import FeatureHasher
from hashseek.train.evaluator import Encoded, EncodingMemo, EvalRecord, evaluate_split, with_held_out

BASELINE_BACKBONE = "efficientnet_lite0"   # Collection.create's default: what a collection gets without a model
BASELINE_METHOD = "itq"


def fit_baseline(dataset: ImageDataset, train_ids: Sequence[str], n_bits: int, seed: int = 0,
                 progress: bool = True) -> FeatureHasher:
    """Pretrained pooled features + ITQ at ``n_bits``, fitted on the training images."""
    hasher = FeatureHasher(BASELINE_BACKBONE, n_bits=n_bits, method=BASELINE_METHOD, seed=seed)
    features = extract_features(dataset, list(train_ids), encoder=hasher.encoder, progress=progress)
    return hasher.fit(np.asarray(features.features, dtype=np.float32))


def hasher_encoder(hasher: FeatureHasher, dataset: ImageDataset, progress: bool = True) -> EncodingMemo:
    """ids -> the codes and features a collection would store with ``hasher`` (cached pooled features)."""
    def encode(ids: Sequence[str]) -> tuple[Encoded, list[tuple[str, str]]]:
        ids = list(ids)
        features = extract_features(dataset, ids, encoder=hasher.encoder, progress=progress)
        rows = np.asarray(features.features, dtype=np.float32)
        reasons = dict(features.meta.get("failed", []))
        kept = set(features.ids)
        dropped = [(i, reasons.get(i, "could not be read")) for i in ids if i not in kept]
        return Encoded(list(features.ids), hasher.codes_from_features(rows), rows,
                       dataset.labels(features.ids)), dropped

    return EncodingMemo(encode)


@dataclass
class Baseline:
    """The fitted zero-training hasher, its encoder (each image encoded once) and its validation record."""

    hasher: FeatureHasher
    encoder: EncodingMemo
    validation: EvalRecord

    @property
    def val_map(self) -> float:
        return float(self.validation.figures["map_all"])


def baseline_validation(dataset: ImageDataset, train_ids: Sequence[str], validation_ids: Sequence[str], n_bits: int,
                        seed: int = 0, progress: bool = True) -> Baseline:
    """The baseline fitted on the training images and scored on the validation images against them."""
    hasher = fit_baseline(dataset, train_ids, n_bits, seed, progress)
    encoder = hasher_encoder(hasher, dataset, progress)
    record = evaluate_split(None, dataset, validation_ids, train_ids, progress=progress, encoder=encoder)
    return Baseline(hasher, encoder, with_held_out(with_searched(record)))


def keep_baseline(run: str | Path, hasher: FeatureHasher) -> None:
    """Make the run folder index as the baseline: its ``hasher.json`` names the zero-training hasher."""
    hasher.save(run)


def run_hasher(run: str | Path) -> HashModel | FeatureHasher:
    """What a run folder kept: its trained model, or the zero-training baseline that beat it."""
    return load_image_hasher(run)


def describe_baseline(hasher: FeatureHasher) -> str:
    return f"zero-training baseline: pretrained {BASELINE_BACKBONE} pooled features + {hasher.method.upper()} " \
           f"{hasher.n_bits} bits (what `hashseek index` builds without a model)"
