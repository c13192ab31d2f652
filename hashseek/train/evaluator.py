"""The one evaluator: encode a split with a model, rank by Hamming distance, report the figures.

Training selects its epoch on it (validation images as queries, training images as the
database) and ``hashseek eval`` reports test figures with it, so both read the same numbers.
It lives in ``train`` because training selects on it and ``train`` sits below ``eval``.
Images that cannot be read are listed in the record with the reason, never dropped silently.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hashseek.core.bits import hamming_distances
from hashseek.core.calibration import ECE_BINS, calibration_figures
from hashseek.core.errors import InvalidInputError
from hashseek.core.metrics import retrieval_report
from hashseek.core.tie_aware import tie_aware_report
from hashseek.data.datasets import ImageDataset
from hashseek.data.loader import iter_batches
from hashseek.models.features import BackboneEncoder, extract_features
from hashseek.models.hash_model import HashModel
from hashseek.models.runtime import weights_digest

PRECISION_K = 20
VOTE_K = 8
SNAPSHOT_PREFIX = "hashseek-validate-"   # + the pid of the run that owns it


@dataclass
class Encoded:
    """Packed codes, float features and labels of the images that could be read, in request order;
    ``logits``: the model's own classifier's (``HashModel.class_logits``; None without one)."""

    ids: list[str]
    codes: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    logits: np.ndarray | None = None

    @property
    def predicted(self) -> np.ndarray | None:
        """The class each image gets from the model's own classifier (None without one)."""
        return None if self.logits is None else self.logits.argmax(axis=1).astype(np.int64)

    def rows(self, rows) -> "Encoded":
        """The images at positions ``rows``, in that order."""
        return Encoded([self.ids[r] for r in rows], self.codes[rows], self.features[rows], self.labels[rows],
                       None if self.logits is None else self.logits[rows])


def hashed_figures(query: Encoded, database: Encoded, exclude: np.ndarray | None = None) -> dict:
    """The figures of ``query`` ranked over ``database`` by Hamming distance: the stable rule's (database
    order breaks ties, as the literature's code does), the same figures tie-aware (expected over a
    random order of equal distances, free of how the database is stored), and the classifier's."""
    distances = hamming_distances(query.codes, database.codes)
    return {**retrieval_report(distances, query.labels, database.labels, PRECISION_K, VOTE_K, exclude=exclude),
            "tie_aware": tie_aware_report(distances, query.labels, database.labels, PRECISION_K, VOTE_K,
                                          exclude=exclude),
            **classifier_figures(query)}


def held_out_figures(query: Encoded) -> dict | None:
    """The queries searching each other (leave-one-out): for validation images, a database training never fitted
    either, as in a library of new photos. The validation figure proper searches the training images, whose
    codes training fitted, and overstates such a library: CIFAR-10 fine-tuned (seed 0) read 0.896 there, 0.767
    here, 0.786 on the test's 54,000-image database. None below 2 queries."""
    n = len(query.ids)
    if n < 2:
        return None
    figures = hashed_figures(query, query, exclude=np.arange(n))
    return {"map_all": figures["map_all"], "vote_accuracy_top8": figures["vote_accuracy_top8"],
            "tie_aware": {k: figures["tie_aware"][k] for k in ("map_all", "vote_accuracy_top8")}, "n_query": n}


def with_held_out(validation: EvalRecord) -> EvalRecord:
    """A validation record with its queries searching each other as well (``figures["held_out"]``)."""
    held_out = held_out_figures(validation.query)
    if held_out:
        validation.figures["held_out"] = held_out
    return validation


def classifier_figures(query: Encoded) -> dict:
    """Top-1 accuracy of the model's own classifier on the queries, beside which the code vote is read
    ("How should we evaluate supervised hashing?", arXiv 1609.06753), and how far its probabilities can be
    trusted (``core.calibration``); empty without a classifier."""
    if query.logits is None:
        return {}
    figures = calibration_figures(query.logits, query.labels)
    return {"classifier_accuracy": figures.pop("accuracy"),
            "classifier_calibration": {**figures, "bins": ECE_BINS}}


@dataclass
class EvalRecord:
    figures: dict                                   # map_all, map_at_r, precision_at_20, vote_accuracy_top8, tie_aware, ...
    sizes: dict                                     # queries and database images scored, and those asked for
    dropped: list[tuple[str, str]]                  # (id, reason) of images that could not be read
    seconds: float
    leave_one_out: bool = False
    query: Encoded | None = field(default=None, repr=False, compare=False)
    database: Encoded | None = field(default=None, repr=False, compare=False)
    exclude: np.ndarray | None = field(default=None, repr=False, compare=False)   # leave-one-out: each query's row

    def to_dict(self) -> dict:
        """What a report stores (the encodings stay out)."""
        return {**self.figures, "sizes": self.sizes, "dropped": [list(d) for d in self.dropped],
                "n_dropped": len(self.dropped), "leave_one_out": self.leave_one_out,
                "tie_rule": "database order", "seconds": self.seconds}


Encoder = Callable[[Sequence[str]], tuple[Encoded, list[tuple[str, str]]]]


def evaluate_split(model: HashModel | None, dataset: ImageDataset, query_ids: Sequence[str], database_ids: Sequence[str],
                   *, leave_one_out: bool = False, progress: bool = True,
                   encoder: Encoder | None = None) -> EvalRecord:
    """Figures of ``model`` with ``query_ids`` searching ``database_ids`` (Hamming ranking, ties by database order).

    ``leave_one_out``: the queries are database images (e.g. all of them); each query is scored
    against all the other images. ``encoder`` replaces how ids become codes (the trainer
    passes one over its in-memory maps or the torch graph); the figures are computed the same way.
    """
    start = time.perf_counter()
    query_ids, database_ids = list(query_ids), list(database_ids)
    if not query_ids or not database_ids:
        raise InvalidInputError(f"nothing to evaluate: {len(query_ids)} queries, {len(database_ids)} database images")
    encode = encoder or partial(encode_ids, model, dataset, progress=progress)   # model: only without an encoder
    if leave_one_out:
        outside = set(query_ids) - set(database_ids)
        if outside:
            raise InvalidInputError(f"leave-one-out evaluation searches the database with its own images; "
                                    f"{len(outside)} queries are not in it, e.g. {sorted(outside)[:3]}")
        database, dropped = encode(database_ids)
        row = {i: n for n, i in enumerate(database.ids)}
        rows = [row[i] for i in query_ids if i in row]
        query = database.rows(rows)
        exclude = np.asarray(rows, dtype=np.int64)
    else:
        overlap = set(query_ids) & set(database_ids)
        if overlap:
            raise InvalidInputError(f"{len(overlap)} queries are also in the database, e.g. {sorted(overlap)[:3]}; "
                                    "pass leave_one_out=True to search a set with its own images")
        query, dropped = encode(query_ids)
        database, dropped_db = encode(database_ids)
        dropped = dropped + dropped_db
        exclude = None
    if not len(query.ids) or not len(database.ids):
        raise InvalidInputError(f"no readable {'queries' if not len(query.ids) else 'database images'}; "
                                f"{len(dropped)} unreadable, e.g. {dropped[:2]}")
    figures = hashed_figures(query, database, exclude)
    sizes = {"query": len(query.ids), "database": len(database.ids),
             "query_requested": len(query_ids), "database_requested": len(database_ids)}
    return EvalRecord(figures, sizes, dropped, time.perf_counter() - start, leave_one_out, query, database, exclude)


class EncodingMemo:
    """An encoder that encodes each id once and serves any subset after: a report's validation and
    test evaluations share their database images, so they are read and encoded once."""

    def __init__(self, encode: Encoder):
        self.encode = encode
        self.rows: dict[str, tuple[np.ndarray, np.ndarray, int, np.ndarray | None]] = {}
        self.failed: dict[str, str] = {}

    def __call__(self, ids: Sequence[str]) -> tuple[Encoded, list[tuple[str, str]]]:
        ids = list(ids)
        new = [i for i in dict.fromkeys(ids) if i not in self.rows and i not in self.failed]
        if new:
            encoded, dropped = self.encode(new)
            for n, image_id in enumerate(encoded.ids):
                logits = None if encoded.logits is None else encoded.logits[n]
                self.rows[image_id] = (encoded.codes[n], encoded.features[n], int(encoded.labels[n]), logits)
            self.failed.update({image_id: str(reason) for image_id, reason in dropped})
        kept = [i for i in ids if i in self.rows]
        dropped = [(i, self.failed[i]) for i in ids if i in self.failed]
        if not kept:
            return Encoded([], np.empty((0, 0), np.uint8), np.empty((0, 0), np.float32), np.empty(0, np.int64)), \
                dropped
        rows = [self.rows[i] for i in kept]
        logits = None if rows[0][3] is None else np.stack([r[3] for r in rows])
        return Encoded(kept, np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
                       np.array([r[2] for r in rows], dtype=np.int64), logits), dropped


class MapEncoder:
    """ids -> codes through the head alone, from maps already in memory (frozen runs' validation)."""

    def __init__(self, model: HashModel, dataset: ImageDataset, sources, device: torch.device):
        self.model, self.dataset, self.device = model, dataset, device
        self.where = {i: (s, row) for s, (ids, _) in enumerate(sources) for row, i in enumerate(ids)}
        self.tensors = [tensor for _, tensor in sources]

    @torch.no_grad()
    def __call__(self, ids: Sequence[str]) -> tuple[Encoded, list[tuple[str, str]]]:
        kept = [i for i in ids if i in self.where]
        dropped = [(i, "could not be read") for i in ids if i not in self.where]
        self.model.head.eval()
        codes, feats, logits = [], [], []
        for start in range(0, len(kept), 256):
            chunk = kept[start:start + 256]
            x = torch.stack([self.tensors[self.where[i][0]][self.where[i][1]] for i in chunk]).float()
            out = self.model.head(x.to(self.device))
            codes.append(out.codes.float().cpu().numpy())
            feats.append(out.embedding.float().cpu().numpy())
            if out.logits is not None:
                logits.append(out.logits.float().cpu().numpy())
        scores = self.model.class_logits(np.concatenate(logits)) if logits else None
        return Encoded(kept, self.model.codes_from_output(np.concatenate(codes)), np.concatenate(feats),
                       self.dataset.labels(kept), scores), dropped


def encode_ids(model: HashModel, dataset: ImageDataset, ids: Sequence[str],
               progress: bool = True) -> tuple[Encoded, list[tuple[str, str]]]:
    """Codes of ``ids`` as the saved model computes them (ONNX Runtime), and the (id, reason) of unreadable ones.

    A model trained on frozen features reuses the cached backbone maps and runs only its head
    (unless it averages with mirrored images, whose maps are not cached).
    """
    ids = list(ids)
    if model.config.get("mode") == "frozen" and not model.mirror_average:
        maps = extract_features(dataset, ids, encoder=map_encoder(model), progress=progress)
        codes, feats, logits = model.infer_maps(maps.features)
        reasons = {i: reason for i, reason in maps.meta.get("failed", [])}
        kept = set(maps.ids)
        dropped = [(i, reasons.get(i, "could not be read")) for i in ids if i not in kept]
        return Encoded(list(maps.ids), codes, feats, dataset.labels(maps.ids), logits), dropped
    return _encode_batches(ids, dataset, model.preprocess, model.infer_logits, progress)


def map_encoder(model: HashModel) -> BackboneEncoder:
    """The conv maps a frozen model's head reads, at the model's input size (a frozen run may use a larger
    input than the backbone's own: fine-grained classes gain from it)."""
    model.backbone.input_size = model.input_size
    return BackboneEncoder(model.backbone, kind="map")


@torch.no_grad()
def encode_with_torch(model: HashModel, dataset: ImageDataset, ids: Sequence[str], device: torch.device,
                      batch_size: int = 32, progress: bool = False) -> tuple[Encoded, list[tuple[str, str]]]:
    """The saved model's codes and re-rank features through the torch graph on ``device`` (mirror-averaged
    when the model is): how
    fine-tuning on an accelerator validates its epochs (on the CPU, :class:`SnapshotEncoder`)."""
    was_training = model.training
    model.eval()

    def run(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x = torch.from_numpy(inputs).to(device)
        out = model(x)
        codes, feature, logits = out.codes, model.rerank_output(out), out.logits
        if model.mirror_average:
            mirrored = model(x.flip(-1))
            codes, feature = (codes + mirrored.codes) / 2, (feature + model.rerank_output(mirrored)) / 2
            logits = None if logits is None else (logits + mirrored.logits) / 2
        return (model.codes_from_output(codes.float().cpu().numpy()), feature.float().cpu().numpy(),
                None if logits is None else model.class_logits(logits.float().cpu().numpy()))

    try:
        return _encode_batches(list(ids), dataset, model.preprocess, run, progress, batch_size)
    finally:
        model.train(was_training)


class SnapshotEncoder:
    """The encoder of a model being fine-tuned on the CPU: the weights as they are at a call are exported
    to ONNX once (into a private temporary folder, not the shared cache) and encoded with ONNX Runtime,
    as the saved model will be. Exporting Lite1 takes about 6 s; encoding then runs about 8x faster than
    the eager torch graph (192 px, mirror-averaged), so each validation costs a fraction of an epoch.
    A later call with changed weights exports again; the codes are those of ``encode_with_torch``."""

    def __init__(self, model: HashModel, dataset: ImageDataset, progress: bool = False):
        self.model, self.dataset, self.progress = model, dataset, progress
        self.digest: str | None = None
        self.folder: tempfile.TemporaryDirectory | None = None
        self.run = None
        sweep_snapshots()

    def __call__(self, ids: Sequence[str]) -> tuple[Encoded, list[tuple[str, str]]]:
        was_training = self.model.training
        try:
            digest = weights_digest(self.model)
            if digest != self.digest:
                self.close()
                self.folder = tempfile.TemporaryDirectory(prefix=f"{SNAPSHOT_PREFIX}{os.getpid()}-")
                self.run, self.digest = self.model.snapshot(Path(self.folder.name)), digest
            return _encode_batches(list(ids), self.dataset, self.model.preprocess, self.run, self.progress)
        finally:
            self.model.train(was_training)

    def close(self) -> None:
        """Remove the exported graph (also done when the encoder is garbage-collected)."""
        if self.folder is not None:
            self.run, self.digest = None, None
            self.folder.cleanup()
            self.folder = None


def sweep_snapshots() -> None:
    """Remove the snapshot folders of runs that are gone: one killed (``kill -9``, a lost machine) cannot
    remove its own, and each holds a model's ONNX graph (13-17 MB for Lite1)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SNAPSHOT_PREFIX}*-*"):
        pid = folder.name[len(SNAPSHOT_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):   # gone, or no process has such a number
        return False
    except PermissionError:                        # another user's process: alive
        pass
    return True


def training_encoder(model: HashModel, dataset: ImageDataset, device: torch.device, progress: bool = False) -> Encoder:
    """How training encodes images to validate: ONNX snapshots on the CPU, the torch graph on an accelerator."""
    if device.type == "cpu":
        return SnapshotEncoder(model, dataset, progress)
    return partial(encode_with_torch, model, dataset, device=device, progress=progress)


def _encode_batches(ids: list[str], dataset: ImageDataset, preprocess, run, progress: bool,
                    batch_size: int = 32) -> tuple[Encoded, list[tuple[str, str]]]:
    """``run``: preprocessed images -> (packed codes, features, classifier logits or None)."""
    kept, codes, feats, logits, dropped = [], [], [], [], []
    bar = tqdm(total=len(ids), desc="encode", unit="img", disable=not progress, leave=False)
    for batch in iter_batches(ids, dataset.read_bytes, preprocess, batch_size):
        if batch.ids:
            c, f, s = run(batch.inputs)
            kept += batch.ids
            codes.append(c)
            feats.append(f)
            if s is not None:
                logits.append(s)
        dropped += batch.failed
        bar.update(len(batch.ids) + len(batch.failed))
    bar.close()
    if not kept:
        return Encoded([], np.empty((0, 0), np.uint8), np.empty((0, 0), np.float32), np.empty(0, np.int64)), dropped
    return Encoded(kept, np.concatenate(codes), np.concatenate(feats).astype(np.float32), dataset.labels(kept),
                   np.concatenate(logits) if logits else None), dropped
