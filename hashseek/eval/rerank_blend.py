"""How much of the pretrained embedding a frozen model's re-rank feature keeps, chosen on class-disjoint validation.

A collection gains classes after training: a user indexes new folders and searches them. Codes trained on
the training classes find those new classes less well than the pretrained embedding the head was trained
from: on ``cars-bmw13-unseen`` (``--recipe fast``, seed 0) the 60 queries of the 4 never-trained models
reached a top-8 vote of 0.37 as searched with the codes, 0.53 with the embedding alone. Re-ranking by a
blend of the two (``HashModel.set_rerank_blend``) keeps the trained classes' ranking and lends the new
ones the embedding.

The validation images hold no class the model did not train on, so they cannot choose the blend. Here a
third of the training classes are held out (``hashseek.train.held_out``): an auxiliary model of the same
settings is trained on the other classes' training images (as many epochs as the run kept), then every
validation image searches all the training images as a collection would, for each weight. The weight
kept is the one that best finds the held-out classes while neither the auxiliary model's trained classes
nor the run's own model (on its ordinary validation) lose more than ``TRAINED_TOLERANCE`` mAP@all: a
trained model is never undone by it. The test queries are never read.

Only frozen models of heads whose embedding is the backbone's pooled vector (``gap``, ``latent``: the head
registry's ``pooled_embedding``) take a blend: there the embedding costs nothing (the same forward pass),
and the auxiliary model trains on cached maps in seconds. A fine-tuned trunk's own embedding is no longer
the pretrained one. The blend stores the embedding beside the codes: 64 + 1,280 float16 values an image
in a collection instead of 64.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from hashseek.data.datasets import ImageDataset
from hashseek.data.protocols import Protocol
from hashseek.eval.searched import searched_figures
from hashseek.models.hash_model import HashModel
from hashseek.models.heads import HEADS
from hashseek.train import TrainConfig, Trainer
from hashseek.train.evaluator import Encoded, encode_ids
from hashseek.train.held_out import MIN_CLASSES, aux_config, hold_out, takes_blend

BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
TRAINED_TOLERANCE = 0.01         # mAP@all the trained classes may lose to the blend: below what a split resolves


@dataclass
class BlendChoice:
    """The weight kept, and the figures it was chosen on (weight -> validation mAP@all as searched)."""

    weight: float
    held_out: list[str]
    new_classes: dict[float, float]        # the auxiliary model, queries of its held-out classes
    trained_classes: dict[float, float]    # the auxiliary model, queries of its trained classes
    own_model: dict[float, float]          # the run's model, its validation queries
    seconds: float

    def summary(self) -> str:
        return (f"re-rank blend {self.weight:g} chosen on class-disjoint validation (held out: "
                f"{', '.join(self.held_out)}): held-out classes' mAP@all {self.new_classes[0.0]:.4f} -> "
                f"{self.new_classes[self.weight]:.4f}, trained classes' {self.trained_classes[0.0]:.4f} -> "
                f"{self.trained_classes[self.weight]:.4f}, this model's validation {self.own_model[0.0]:.4f} -> "
                f"{self.own_model[self.weight]:.4f}")

    def to_dict(self) -> dict:
        return {"weight": self.weight, "held_out": self.held_out, "seconds": round(self.seconds, 1),
                **{part: {f"{w:g}": round(v, 4) for w, v in getattr(self, part).items()}
                   for part in ("new_classes", "trained_classes", "own_model")}}


def blend_unavailable(config: TrainConfig, protocol: Protocol, dataset: ImageDataset) -> str | None:
    """Why this run takes no blend (None: it can)."""
    if config.mode != "frozen":
        return "a fine-tuned trunk's embedding is no longer the pretrained one"
    if not HEADS.metadata(config.head)["pooled_embedding"]:
        return f"the {config.head} head's embedding is not the pretrained pooled vector"
    if not takes_blend(config, len(_validated_classes(protocol, dataset))):
        return f"fewer than {MIN_CLASSES} classes with validation images: none can be held out"
    return None


def choose_rerank_blend(model: HashModel, dataset: ImageDataset, protocol: Protocol, config: TrainConfig,
                        best_epoch: int | None = None, progress: bool = True) -> BlendChoice:
    """Train the auxiliary model without a third of the classes and pick the weight (module docstring)."""
    started = time.perf_counter()
    held, aux_train = hold_out(_validated_classes(protocol, dataset), protocol.train, dataset.labels(protocol.train),
                               config.seed)
    aux = Trainer(aux_config(config, best_epoch), progress=progress).fit(dataset, aux_train).model
    new_rows, trained_rows, aux_parts = _parts(aux, dataset, protocol, held, progress)
    own_parts = _parts(model, dataset, protocol, held, progress)[2]
    new, trained, own = {}, {}, {}
    for w in BLEND_WEIGHTS:
        query, database = _blended(*aux_parts, w)
        new[w] = searched_figures(query.rows(new_rows), database)["map_all"]
        trained[w] = searched_figures(query.rows(trained_rows), database)["map_all"]
        own[w] = searched_figures(*_blended(*own_parts, w))["map_all"]
    keeps = [w for w in BLEND_WEIGHTS if trained[w] >= trained[0.0] - TRAINED_TOLERANCE
             and own[w] >= own[0.0] - TRAINED_TOLERANCE]
    weight = max(keeps, key=lambda w: (new[w], -w))
    return BlendChoice(weight, sorted(dataset.classes[c] for c in held), new, trained, own,
                       time.perf_counter() - started)


def blend_figures(model: HashModel, dataset: ImageDataset, protocol: Protocol, weights=BLEND_WEIGHTS,
                  progress: bool = False) -> dict[str, dict[str, dict]]:
    """weight -> group -> the test queries' figures as searched (``all``; with unseen classes, ``seen`` and
    ``unseen`` apart), the model encoded once: what each weight would have given (benchmarks only)."""
    query, database, n_bits = _parts(model, dataset, protocol, set(), progress, part=protocol.query,
                                     database=protocol.database)[2]
    unseen = {dataset.classes.index(c) for c in protocol.unseen_classes}
    groups = {"all": list(range(len(query.ids)))}
    if unseen:
        groups |= {"seen": [n for n, label in enumerate(query.labels) if int(label) not in unseen],
                   "unseen": [n for n, label in enumerate(query.labels) if int(label) in unseen]}
    figures = {}
    for w in weights:
        q, db = _blended(query, database, n_bits, w)
        figures[f"{w:g}"] = {group: {k: v for k, v in searched_figures(q.rows(rows), db).items()
                                     if k in ("map_all", "precision_at_20", "vote_accuracy_top8")}
                             for group, rows in groups.items()}
    return figures


def _validated_classes(protocol: Protocol, dataset: ImageDataset) -> list[int]:
    """Classes with training and validation images (label order)."""
    trained = set(dataset.labels(protocol.train).tolist())
    return sorted(c for c in set(dataset.labels(protocol.validation).tolist()) if c in trained)


def _parts(model: HashModel, dataset: ImageDataset, protocol: Protocol, held: set[int], progress: bool,
           part=None, database=None):
    """Rows of the held-out and of the trained classes' queries (default: the validation images searching the
    training images), and the (query, database) encodings with the codes' and the embedding's features side by
    side (encoded once, at weight 0.5)."""
    before = model.rerank_blend
    model.set_rerank_blend(0.5)
    try:
        query = encode_ids(model, dataset, protocol.validation if part is None else part, progress=progress)[0]
        database = encode_ids(model, dataset, protocol.train if database is None else database, progress=progress)[0]
    finally:
        model.set_rerank_blend(before)
    new_rows = [n for n, label in enumerate(query.labels) if int(label) in held]
    trained_rows = [n for n, label in enumerate(query.labels) if int(label) not in held]
    return new_rows, trained_rows, (query, database, model.n_bits)


def _blended(query: Encoded, database: Encoded, n_bits: int, weight: float) -> tuple[Encoded, Encoded]:
    """Both encodings re-weighted from 0.5 / 0.5 to ``weight`` (each part is unit length times sqrt(0.5))."""
    scale = np.sqrt(2.0) * np.r_[np.full(n_bits, np.sqrt(1 - weight)),
                                 np.full(query.features.shape[1] - n_bits, np.sqrt(weight))].astype(np.float32)
    return tuple(replace(e, features=e.features * scale) for e in (query, database))
