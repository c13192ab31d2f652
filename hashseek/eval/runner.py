"""The protocol runner: one method x protocol x code length x seed -> every figure, cached as JSON.

A method is a deep combination ``head+loss`` trained by the one trainer (selected on the
protocol's validation images when it has them) and scored by the one evaluator
(``hashseek.train.evaluator``), a registered shallow hasher fitted on the protocol's training
images' pooled frozen features (with their labels when the registry marks it supervised), or
``float``: cosine on the pooled features, no codes; ``float:POOLING`` / ``HASHER:POOLING`` take the
vector from a registered aggregation of the conv maps instead (``hashseek.eval.pooled_parts``).
Each finished run is written to ``<cache>/<protocol>/seed<seed>-<split digest>/<key>.json`` before the next
starts, so an interrupted benchmark resumes where it stopped; the key also names the
training hyper-parameters and mode, so changing them never returns a stale result.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hashseek.data.datasets import ImageDataset
from hashseek.data.named import load_dataset
from hashseek.data.protocols import Protocol, get_protocol
from hashseek.core.paths import disk_bytes
from hashseek.eval.cost import (forward_ms_per_image, hasher_parameter_count, machine, parameter_count,
                                search_ms_per_query)
from hashseek.eval.pooled_parts import pooled_encoder, protocol_vectors
from hashseek.core.atomic import atomic_write_text
from hashseek.core.errors import InvalidInputError, UnknownNameError
from hashseek.core.metrics import (confusion_matrix, f1_at_k, precision_recall_curve_hamming, recall_at_k,
                                   retrieval_report, topk_precision_curve, vote_classify)
from hashseek.core.tie_aware import tie_aware_report
from hashseek.eval.retrieval import cosine_distances
from hashseek.hashers import HASHERS, create_hasher
from hashseek.core.bits import hamming_distances
from hashseek.models.aggregation import POOLINGS
from hashseek.models.hash_model import HashModel
from hashseek.core.paths import cache_root
from hashseek.train import TrainConfig, Trainer
from hashseek.train.evaluator import evaluate_split

DEEP_METHODS = ("fc+hashnet", "gap+hashnet", "bilinear+hashnet", "spp_pmt+multitask", "latent+ce",
                "gap+csq", "gap+dpsh", "gap+dsh", "gap+cnnh")
SHALLOW_METHODS = ("lsh", "pcah", "itq", "sdh", "ksh")   # the results page's shallow rows; any registered hasher runs
FLOAT_METHOD = "float"
AGGREGATION_METHODS = tuple(f"float:{p}" for p in ("spoc", "mac", "rmac", "gem", "crow", "netvlad"))
ALL_METHODS = (*DEEP_METHODS, *SHALLOW_METHODS, FLOAT_METHOD, *AGGREGATION_METHODS)

TIE_RULE = ("database order: a stable sort keeps items at equal distance in database order; hashed rows also "
            "carry tie_aware figures, expected over a random order of equal distances")
MAP_DEFINITION = ("mAP@all: mean over all queries of AP over the whole ranked database "
                  "(a query with no relevant item scores 0); mAP@R: Musgrave et al. 2020")
PRECISION_KS = (1, 5, 10, 20, 50, 100, 200, 500, 1000)
RECALL_KS = (1, 10, 20, 100, 1000)
VOTE_K = 8
FORWARD_BATCHES = (1, 32)
LATER_FIELDS = ("schedule", "validate_every")   # MethodSpec fields added after runs were cached


@dataclass
class MethodSpec:
    """What to run; the training fields matter for deep methods only, and default to TrainConfig's."""

    name: str
    kind: str                      # deep | shallow | float
    head: str | None = None
    loss: str | None = None
    hasher: str | None = None
    backbone: str = TrainConfig.backbone
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    optimizer: str = TrainConfig.optimizer
    lr: float = TrainConfig.lr
    head_kwargs: dict = field(default_factory=dict)
    loss_kwargs: dict = field(default_factory=dict)
    pooling: str | None = None     # float and shallow: an aggregation of the conv maps, not the pooled vector
    schedule: str = TrainConfig.schedule
    validate_every: int = TrainConfig.validate_every   # 0: the trainer's share-of-time rule (train/selection.py)

    @classmethod
    def parse(cls, name: str, **train) -> "MethodSpec":
        """``head+loss`` -> deep, a hasher name -> shallow, ``float``/``cosine`` -> float baseline;
        ``float:POOLING`` or ``HASHER:POOLING`` (e.g. ``float:gem``, ``itq:rmac``) pool the conv maps."""
        if "+" in name:
            head, loss = name.split("+", 1)
            return cls(name, "deep", head=head, loss=loss, **train)
        base, _, pooling = name.partition(":")
        if pooling and pooling not in POOLINGS:
            raise UnknownNameError(f"unknown pooling {pooling!r} in {name!r}: use one of {', '.join(POOLINGS.names())}")
        suffix = f":{pooling}" if pooling else ""
        if base in ("float", "cosine"):
            return cls(FLOAT_METHOD + suffix, "float", pooling=pooling or None, **_only_backbone(train))
        if base in HASHERS:
            return cls(name, "shallow", hasher=base, pooling=pooling or None, **_only_backbone(train))
        raise UnknownNameError(f"unknown method {name!r}: use head+loss (e.g. gap+hashnet), "
                               f"a hasher ({', '.join(HASHERS.names())}), or float, each of the last two "
                               f"optionally :POOLING ({', '.join(POOLINGS.names())})")

    def key(self, bits: int | None, mode: str) -> str:
        """File stem of the cached result: readable name plus a digest of everything else that matters
        (a shallow hasher's settings too: a changed default is a new run)."""
        settings = asdict(self) if self.kind == "deep" else {"backbone": self.backbone, "kind": self.kind}
        for name in LATER_FIELDS:   # at their defaults they stay out: the runs cached before them keep their keys
            if settings.get(name) == getattr(MethodSpec, name):
                del settings[name]
        if self.pooling:
            settings["pooling"] = self.pooling
        if self.kind == "shallow":
            settings["hasher"] = {k: v for k, v in create_hasher(self.hasher, bits or 8).config().items()
                                  if k not in ("n_bits", "seed")}
        digest = hashlib.sha256(json.dumps({**settings, "mode": mode}, sort_keys=True).encode()).hexdigest()[:10]
        length = "" if self.kind == "float" else f"-{bits}b"
        return f"{self.name.replace('+', '_').replace(':', '_')}{length}-{mode if self.kind == 'deep' else 'frozen'}-{digest}"

    def mode_label(self, mode: str) -> str:
        """How the row was produced, as the tables print it."""
        if self.kind != "deep":
            return "frozen features"
        return f"{mode}, {self.epochs} ep" + ("" if self.schedule == TrainConfig.schedule else f", {self.schedule}")


def _only_backbone(train: dict) -> dict:
    return {"backbone": train["backbone"]} if "backbone" in train else {}


def results_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir) if cache_dir is not None else cache_root() / "results"


def split_digest(protocol: Protocol) -> str:
    """Digest of a split's id lists: which split of a protocol's name a record was measured on."""
    parts = [protocol.query, protocol.database, protocol.train, protocol.unseen_classes]
    split = json.dumps(parts + [protocol.validation] if protocol.validation else parts)
    return hashlib.sha256(split.encode()).hexdigest()[:8]


def same_split(record: dict, protocol: Protocol) -> bool:
    """Whether a record was measured on ``protocol``'s split; a record older than its ``split_digest``
    field is judged by its part sizes (those of the protocols before validation was held out lack it)."""
    measured = record["protocol"]
    if "split_digest" in measured:
        return measured["split_digest"] == split_digest(protocol)
    return measured["sizes"] == protocol.sizes()


def result_path(spec: MethodSpec, protocol: Protocol, bits: int | None, mode: str,
                cache_dir: str | Path | None = None) -> Path:
    """The split's own digest is part of the path: a custom split sharing a shipped one's name never collides."""
    folder = f"seed{protocol.seed}-{split_digest(protocol)}"
    return results_dir(cache_dir) / protocol.name / folder / f"{spec.key(bits, mode)}.json"


def run_method(method_spec: MethodSpec | str, protocol_name: str | Protocol, bits: int | None, seed: int = 0,
               mode: str = "frozen", *, cache_dir: str | Path | None = None, progress: bool = True,
               timing: bool = True) -> dict:
    """Every figure of one run; a cached result is returned as is (``record["cached"]`` tells which).

    ``protocol_name`` may also be a ``Protocol`` (a custom split of a named dataset; its own seed
    applies). ``timing=False`` skips the forward-time measurement (the slowest part of a short run).
    """
    spec = MethodSpec.parse(method_spec) if isinstance(method_spec, str) else method_spec
    if spec.kind != "float" and bits is None:
        raise ValueError(f"{spec.name} needs a code length (bits)")
    bits = None if spec.kind == "float" else bits
    protocol = protocol_name if isinstance(protocol_name, Protocol) else get_protocol(protocol_name, seed=seed)
    if protocol.leave_one_out:
        raise InvalidInputError(f"protocol {protocol.name} is leave-one-out; the runner scores held-out queries "
                                "(evaluate such a split with hashseek.train.evaluator.evaluate_split)")
    path = result_path(spec, protocol, bits, mode, cache_dir)
    if path.is_file():
        return {**json.loads(path.read_text()), "cached": True}

    started = time.perf_counter()
    dataset = load_dataset(protocol.dataset)
    protocol.check(dataset)
    if spec.kind == "deep":
        record = _run_deep(spec, dataset, protocol, bits, mode, protocol.seed, progress, timing)
    else:
        record = _run_on_pooled(spec, dataset, protocol, bits, protocol.seed, progress, timing)
    record["seconds"] = time.perf_counter() - started
    record["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_record(path, record)
    return {**json.loads(path.read_text()), "cached": False}


def cached_record(spec: MethodSpec, protocol: Protocol, bits: int | None, mode: str = "frozen",
                  cache_dir: str | Path | None = None) -> dict | None:
    """The cached run of ``spec`` on ``protocol``'s current split, or None (never runs anything)."""
    path = result_path(spec, protocol, None if spec.kind == "float" else bits, mode, cache_dir)
    return {**json.loads(path.read_text()), "cached": True} if path.is_file() else None


def store_record(record: dict, cache_dir: str | Path | None = None) -> bool:
    """Put a finished run's record (e.g. one from a results page's JSON) into the run cache, so that
    ``run_method`` returns it instead of running again; False when the cache already holds that run, or
    when the record was measured on another split of the protocol (an older one must never pass for a
    run of the current split)."""
    spec = MethodSpec(**record["spec"])
    protocol = get_protocol(record["protocol"]["name"], seed=record["protocol"]["seed"])
    if not same_split(record, protocol):
        return False
    mode = "finetune" if record["mode"].startswith("finetune") else "frozen"
    path = result_path(spec, protocol, record["bits"], mode, cache_dir)
    if path.is_file():
        return False
    _write_record(path, {k: v for k, v in record.items() if k != "cached"})
    return True


def _write_record(path: Path, record: dict) -> None:
    """Atomic: a stopped run never leaves a half-written record that would pass for a cached one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1, default=_jsonable, allow_nan=False))


def evaluate_trained_model(model: HashModel, dataset: ImageDataset, protocol: Protocol, *,
                           progress: bool = True, timing: bool = True) -> dict:
    """Every figure of an already trained model (``hashseek eval --model``)."""
    spec = MethodSpec(f"{model.config['head']}+{model.config.get('loss')}", "deep", head=model.config["head"],
                      loss=model.config.get("loss"), backbone=model.config["backbone"])
    train = model.config.get("train") or {}
    spec = replace(spec, **{k: train[k] for k in ("epochs", "batch_size", "optimizer", "lr", "schedule") if k in train})
    return _evaluate_model(spec, model, dataset, protocol, model.config.get("mode", "frozen"),
                           float(model.config.get("train_seconds", 0.0)), progress, timing)


# -- the three kinds of method ---------------------------------------------------------------
def _run_deep(spec: MethodSpec, dataset: ImageDataset, protocol: Protocol, bits: int, mode: str, seed: int,
              progress: bool, timing: bool) -> dict:
    config = TrainConfig(backbone=spec.backbone, head=spec.head, loss=spec.loss, bits=bits, mode=mode,
                         epochs=spec.epochs, batch_size=spec.batch_size, optimizer=spec.optimizer, lr=spec.lr,
                         head_kwargs=spec.head_kwargs, loss_kwargs=spec.loss_kwargs, schedule=spec.schedule,
                         validate_every=spec.validate_every, seed=seed)
    result = Trainer(config, progress=progress).fit(dataset, protocol.train, validation_ids=protocol.validation,
                                                    dataset_name=dataset.name, protocol=protocol.name)
    record = _evaluate_model(spec, result.model, dataset, protocol, mode, result.seconds, progress, timing)
    record["final_loss"] = result.history[-1]["loss"] if result.history else None
    record["selection"] = result.selection
    return record


def _evaluate_model(spec: MethodSpec, model: HashModel, dataset: ImageDataset, protocol: Protocol, mode: str,
                    train_seconds: float, progress: bool, timing: bool) -> dict:
    result = evaluate_split(model, dataset, protocol.query, protocol.database, progress=progress,
                            leave_one_out=protocol.leave_one_out)
    q, d = result.query, result.database
    costs = {"parameters": parameter_count(model), "head_parameters": parameter_count(model.head)}
    with tempfile.TemporaryDirectory() as tmp:
        costs["checkpoint_bytes"] = disk_bytes(model.save(tmp))
    costs["checkpoint_holds"] = "head only (backbone bundled)" if mode == "frozen" else "backbone and head"
    times = {"train_seconds": train_seconds, "encode_seconds": result.seconds,
             "encode_source": ("images and their mirrors, averaged" if model.mirror_average else
                               "cached backbone maps, head only" if mode == "frozen" else "images")}
    if timing:
        times.update(_forward_times(model.encode_arrays, model.input_size))
    record = _record(spec, protocol, dataset, model.n_bits, mode, q.codes, d.codes, q.features, d.features,
                     q.labels, d.labels, times, costs, headline=result.figures, q_predicted=q.predicted)
    record["dropped"] = [list(item) for item in result.dropped]
    return record


def _run_on_pooled(spec: MethodSpec, dataset: ImageDataset, protocol: Protocol, bits: int | None, seed: int,
                   progress: bool, timing: bool) -> dict:
    parts = protocol_vectors(dataset, protocol, spec.backbone, spec.pooling, need_train=spec.kind == "shallow",
                             seed=seed, progress=progress)
    q, d, train = parts.query, parts.database, parts.train
    # forward timing: backbone + pooling as one graph (an exported session costs seconds: built only to time it)
    encoder = pooled_encoder(spec.backbone, spec.pooling) if timing else None
    costs = {"parameters": parts.parameters, "vector_dim": int(q.features.shape[1])}
    times = {"train_seconds": 0.0, "encode_seconds": 0.0, "encode_source": parts.source}
    if spec.kind == "float":
        if timing:
            times.update(_forward_times(encoder.encode_arrays, encoder.backbone.input_size))
        return {**_record(spec, protocol, dataset, None, "frozen", None, None, q.features, d.features,
                          q.labels, d.labels, times, costs), "dropped": parts.dropped}

    hasher = create_hasher(spec.hasher, bits, seed=seed)
    start = time.perf_counter()
    hasher.fit(train.features.astype(np.float32), train.labels if HASHERS.metadata(spec.hasher)["supervised"] else None)
    times["train_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    q_codes, d_codes = hasher.transform(q.features), hasher.transform(d.features)
    times["encode_seconds"] = time.perf_counter() - start
    costs["hasher_parameters"] = hasher_parameter_count(hasher.state_dict())
    costs["parameters"] += costs["hasher_parameters"]
    with tempfile.TemporaryDirectory() as tmp:
        hasher.save(Path(tmp) / "hasher.npz")
        costs["checkpoint_bytes"] = disk_bytes(Path(tmp) / "hasher.npz")
    costs["checkpoint_holds"] = "hasher only (backbone bundled)"
    if timing:
        times.update(_forward_times(lambda x: hasher.transform(encoder.encode_arrays(x)),
                                    encoder.backbone.input_size))
    return {**_record(spec, protocol, dataset, bits, "frozen", q_codes, d_codes, q.features, d.features,
                      q.labels, d.labels, times, costs), "dropped": parts.dropped}


# -- figures -----------------------------------------------------------------------------------
def retrieval_figures(distances: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, n_classes: int,
                      n_bits: int | None = None, headline: dict | None = None) -> dict:
    """Every retrieval figure of one distance matrix; ``n_bits`` marks Hamming distances (adds the P-R curve).
    ``headline``: the evaluator's report of these distances, when it already ran (trained models)."""
    nd = distances.shape[1]
    figures = dict(headline) if headline else retrieval_report(distances, query_labels, db_labels, k_precision=20,
                                                               k_vote=VOTE_K)
    ks = [k for k in PRECISION_KS if k <= nd]
    figures["precision_curve"] = {"k": ks, "precision": topk_precision_curve(distances, query_labels, db_labels,
                                                                             np.array(ks)).tolist()}
    figures["recall_at_k"] = {str(k): recall_at_k(distances, query_labels, db_labels, k) for k in RECALL_KS if k <= nd}
    figures["f1_at_k"] = {str(k): f1_at_k(distances, query_labels, db_labels, k) for k in RECALL_KS if k <= nd}
    if n_bits is not None:
        if "tie_aware" not in figures:
            figures["tie_aware"] = tie_aware_report(distances, query_labels, db_labels, 20, VOTE_K)
        precision, recall = precision_recall_curve_hamming(distances, query_labels, db_labels, n_bits)
        # JSON has no NaN: a radius at which no query retrieves anything becomes null.
        figures["pr_curve_hamming"] = {"radius": list(range(n_bits + 1)),
                                       "precision": [None if np.isnan(p) else p for p in precision.tolist()],
                                       "recall": recall.tolist()}
    predicted, _ = vote_classify(distances, db_labels, VOTE_K, n_classes=n_classes)
    figures["confusion_matrix"] = confusion_matrix(query_labels, predicted, n_classes, normalize=False).tolist()
    return figures


def _record(spec: MethodSpec, protocol: Protocol, dataset: ImageDataset, bits: int | None, mode: str,
            q_codes: np.ndarray | None, d_codes: np.ndarray | None, q_feats: np.ndarray, d_feats: np.ndarray,
            q_labels: np.ndarray, d_labels: np.ndarray, times: dict, costs: dict, headline: dict | None = None,
            q_predicted: np.ndarray | None = None) -> dict:
    hashed = q_codes is not None
    start = time.perf_counter()
    distances = hamming_distances(q_codes, d_codes) if hashed else cosine_distances(q_feats, d_feats)
    times["distance_ms_per_query"] = 1000 * (time.perf_counter() - start) / len(q_labels)
    n_classes = len(dataset.classes)
    figures = retrieval_figures(distances, q_labels, d_labels, n_classes, bits, headline)
    times.update(search_ms_per_query(q_feats, d_feats, q_codes, d_codes))
    record = {
        "source": "measured",
        "method": spec.name,
        "kind": spec.kind,
        "mode": spec.mode_label(mode),
        "bits": bits,
        "protocol": _protocol_record(spec, protocol, dataset, bits, mode, times["train_seconds"]),
        "spec": asdict(spec),
        "classes": dataset.classes,
        "figures": figures,
        "times": times,
        "costs": costs,
    }
    record.update(class_parts(distances, q_labels, d_labels, dataset.classes, protocol.unseen_classes, bits,
                              q_predicted))
    return record


def class_parts(distances: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, classes: list[str],
                unseen_classes: list[str], n_bits: int | None, predicted: np.ndarray | None = None) -> dict:
    """``{"seen": ..., "unseen": ...}``: the figures of the trained classes' queries and of the never-trained
    classes' queries apart, against the same database (protocols with unseen classes; else empty).
    ``predicted``: the model's own classifier's classes for the queries, scored per part as well."""
    if not unseen_classes:
        return {}
    unseen = np.isin(query_labels, [classes.index(c) for c in unseen_classes])
    parts = {}
    for part, rows in (("seen", ~unseen), ("unseen", unseen)):
        if not rows.any():
            continue
        names = list(unseen_classes) if part == "unseen" else [classes[c] for c in np.unique(query_labels[rows])]
        parts[part] = {"classes": names, **retrieval_figures(distances[rows], query_labels[rows], db_labels,
                                                            len(classes), n_bits)}
        if predicted is not None:
            parts[part]["classifier_accuracy"] = float(np.mean(predicted[rows] == query_labels[rows]))
    return parts


PART_FIGURES = ("classes", "n_query", "map_all", "map_at_r", "precision_at_20", "vote_accuracy_top8",
                "classifier_accuracy")


def part_headline(part: dict) -> dict:
    """A ``class_parts`` part without its curves and confusion matrix: what a run's ``eval.json`` keeps."""
    out = {k: part[k] for k in PART_FIGURES if k in part}
    if "tie_aware" in part:
        out["tie_aware"] = {k: v for k, v in part["tie_aware"].items() if k != "tie_rule"}
    return out


def _protocol_record(spec: MethodSpec, protocol: Protocol, dataset: ImageDataset, bits: int | None, mode: str,
                     train_seconds: float) -> dict:
    return {
        "name": protocol.name, "dataset": dataset.name, "description": protocol.description,
        "seed": protocol.seed, "sizes": protocol.sizes(), "split_digest": split_digest(protocol),
        "unseen_classes": protocol.unseen_classes,
        "tie_rule": TIE_RULE, "map_definition": MAP_DEFINITION, "bits": bits, "backbone": spec.backbone,
        "head": spec.head, "loss": spec.loss, "hasher": spec.hasher,
        "training_mode": spec.mode_label(mode), "train_seconds": train_seconds, "machine": machine(),
    }


# -- helpers -----------------------------------------------------------------------------------
def _forward_times(encode, input_size: int) -> dict:
    return {f"forward_ms_batch{b}": forward_ms_per_image(encode, input_size, b, repeats=5 if b == 1 else 3)
            for b in FORWARD_BATCHES}


def _jsonable(value):
    """numpy scalars (e.g. a hasher's sigma) as plain JSON numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
