"""The report of one trained model on its split: validation and test figures apart, the split's sizes,
seed, recipe, every setting and the training time, as ``eval.json``, ``summary.md`` and the plots of
``hashseek eval`` (``hashseek.eval.report.write_report``).

Validation figures are those of the kept weights with the validation images as queries and the
training images as the database (what selection saw); test figures come from one evaluation of the
test queries against the split's database. Both go through the one evaluator
(``hashseek.train.evaluator.evaluate_split``), which encodes each image once for both. What is
reported is what the run kept: its trained model, or the zero-training baseline that beat it.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hashseek.core.atomic import atomic_write_json, atomic_write_text
from hashseek.core.bits import hamming_distances
from hashseek.core.errors import InvalidInputError
from hashseek.core.metrics import confusion_matrix, topk_precision_curve
from hashseek.core.ranking import vote_classify
from hashseek.data.datasets import ImageDataset
from hashseek.data.protocols import Protocol
from hashseek.data.splits import split_lines
from hashseek.core.paths import disk_bytes
from hashseek.eval.cost import hasher_parameter_count, machine, parameter_count
from hashseek.eval.report import write_report
from hashseek.eval.runner import (MAP_DEFINITION, PRECISION_KS, TIE_RULE, VOTE_K, MethodSpec, class_parts,
                                  part_headline, retrieval_figures)
from hashseek.eval.searched import with_searched
from hashseek.eval.trained_runs import kept_weights
from hashseek.models.hash_model import HashModel
from hashseek.search.feature_hasher import FeatureHasher
from hashseek.train.evaluator import (EncodingMemo, EvalRecord, Encoder, encode_ids, evaluate_split, hashed_figures,
                                      with_held_out)

EVAL_FILE = "eval.json"
HEADLINE = (("map_all", "mAP@all"), ("map_at_r", "mAP@R"), ("precision_at_20", "P@20"),
            ("vote_accuracy_top8", "top-8 vote accuracy"), ("classifier_accuracy", "own classifier's top-1 accuracy"))
CALIBRATION = (("confidence", "own classifier's mean confidence (its top class's probability)"),
               ("ece", "own classifier's expected calibration error"))


def evaluate_protocol(model: HashModel | None, dataset: ImageDataset, protocol: Protocol, *, progress: bool = True,
                      validate: bool = True, test: bool = True,
                      encoder: Encoder | None = None) -> tuple[EvalRecord | None, EvalRecord | None]:
    """(validation, test) records; validation is None without validation images (or ``validate=False``),
    test None with ``test=False``. ``encoder`` (default: the model's, through a memo) encodes the images."""
    encoder = encoder or EncodingMemo(lambda ids: encode_ids(model, dataset, ids, progress=progress))
    validation = None
    if validate and protocol.validation and protocol.train:
        validation = with_held_out(with_searched(evaluate_split(model, dataset, protocol.validation, protocol.train,
                                                                progress=progress, encoder=encoder)))
    if not test:
        return validation, None
    if not protocol.leave_one_out:
        return validation, with_searched(evaluate_split(model, dataset, protocol.query, protocol.database,
                                                        progress=progress, encoder=encoder))
    full = evaluate_split(model, dataset, protocol.database, protocol.database, leave_one_out=True, progress=progress,
                          encoder=encoder)
    if set(protocol.query) == set(protocol.database):
        return validation, with_searched(full)
    return validation, with_searched(_queries_of(full, protocol.query))


def _queries_of(full: EvalRecord, query_ids: list[str]) -> EvalRecord:
    """The figures of some of a leave-one-out record's queries (the test queries of a database=all split)."""
    db = full.database
    position = {i: n for n, i in enumerate(db.ids)}
    rows = np.array([position[i] for i in query_ids if i in position], dtype=np.int64)
    if not rows.size:
        raise InvalidInputError(f"no readable test queries; {len(full.dropped)} unreadable images, "
                                f"e.g. {full.dropped[:2]}")
    query = db.rows(rows)
    figures = hashed_figures(query, db, exclude=rows)
    sizes = {"query": len(rows), "database": len(db.ids), "query_requested": len(query_ids),
             "database_requested": full.sizes["database_requested"]}
    return EvalRecord(figures, sizes, full.dropped, full.seconds, True, query, db, rows)


def report_record(model: HashModel | FeatureHasher, dataset: ImageDataset, protocol: Protocol, test: EvalRecord,
                  train_seconds: float, mode: str, model_dir: Path | None = None) -> dict:
    """The test figures as a runner record, so ``write_report`` tables and plots them like any run."""
    q, d = test.query, test.database
    n_classes = len(dataset.classes)
    distances = hamming_distances(q.codes, d.codes)
    if test.leave_one_out:   # each query's own entry last, as the evaluator ranks it; curves up to nd - 1
        distances = distances.astype(np.int32)
        distances[np.arange(len(test.exclude)), test.exclude] = model.n_bits + 1
        ks = [k for k in PRECISION_KS if k < len(d.ids)]
        predicted, _ = vote_classify(distances, d.labels, VOTE_K, n_classes=n_classes)
        figures = {**test.figures,
                   "precision_curve": {"k": ks, "precision": topk_precision_curve(distances, q.labels, d.labels,
                                                                                  np.array(ks)).tolist()},
                   "confusion_matrix": confusion_matrix(q.labels, predicted, n_classes, normalize=False).tolist()}
        parts = {}
    else:
        figures = {**retrieval_figures(distances, q.labels, d.labels, n_classes, model.n_bits), **test.figures}
        parts = class_parts(distances, q.labels, d.labels, dataset.classes, protocol.unseen_classes, model.n_bits,
                            q.predicted)
    spec, costs = _spec_and_costs(model)
    sizes = {**protocol.sizes(), "query": test.sizes["query"], "database": test.sizes["database"]}
    return {
        "source": "measured", "method": spec.name, "kind": spec.kind, "mode": mode, "bits": model.n_bits,
        "protocol": {"name": protocol.name, "dataset": dataset.name, "description": protocol.description,
                     "seed": protocol.seed, "sizes": sizes, "unseen_classes": protocol.unseen_classes,
                     "tie_rule": TIE_RULE, "map_definition": MAP_DEFINITION, "bits": model.n_bits,
                     "backbone": spec.backbone, "head": spec.head, "loss": spec.loss, "training_mode": mode,
                     "train_seconds": train_seconds, "machine": machine()},
        "spec": asdict(spec), "classes": dataset.classes, "figures": figures,
        "times": {"train_seconds": train_seconds, "encode_seconds": test.seconds},
        "costs": {**costs, **(_checkpoint_bytes(model_dir) if isinstance(model, HashModel) else {})}, **parts,
    }


def _spec_and_costs(model: HashModel | FeatureHasher) -> tuple[MethodSpec, dict]:
    """How a trained model or a zero-training hasher is named in the tables, and what it weighs."""
    if isinstance(model, FeatureHasher):
        info = model.describe()
        hasher = hasher_parameter_count(model.hasher.state_dict())
        return MethodSpec(model.method, "shallow", hasher=model.method, backbone=info["backbone"]), \
            {"parameters": parameter_count(model.encoder.backbone) + hasher, "hasher_parameters": hasher,
             "checkpoint_holds": "hasher only (backbone bundled)"}
    head, loss = model.config["head"], model.config.get("loss")
    train = model.config.get("train") or {}
    spec = MethodSpec(f"{head}+{loss}", "deep", head=head, loss=loss, backbone=model.config["backbone"],
                      **{k: train[k] for k in ("epochs", "batch_size", "optimizer", "lr") if k in train})
    return spec, {"parameters": parameter_count(model), "head_parameters": parameter_count(model.head)}


def _checkpoint_bytes(model_dir: Path | None) -> dict:
    files = [model_dir / name for name in ("model.safetensors", "config.json")] if model_dir else []
    return {"checkpoint_bytes": sum(disk_bytes(f) for f in files)} if files and all(f.is_file() for f in files) else {}


def mode_label(model: HashModel | FeatureHasher, selection: dict) -> str:
    """How the weights were made and chosen, for the tables' mode column."""
    if isinstance(model, FeatureHasher):
        return "zero training (kept: the trained model was below it on validation)"
    train = model.config.get("train") or {}
    label = f"{model.config.get('mode', 'frozen')}, {train.get('epochs', '?')} ep"
    kept = kept_weights(selection)
    return f"{label}, kept {kept} (validation)" if kept else label


def write_run_report(out: str | Path, model: HashModel | FeatureHasher, dataset: ImageDataset, protocol: Protocol,
                     test: EvalRecord, validation: EvalRecord | None, *, source: str, recipe: str | None,
                     recipe_lines: list[str], selection: dict, train_seconds: float,
                     history: list[dict], model_dir: Path | None = None,
                     settings: dict | None = None, trained_on: str | None = None) -> dict[str, Path]:
    """``eval.json`` (every figure and setting), then ``write_report``'s summary.md, results.json and
    plots, with the run's own section (split, recipe, selection, validation vs test) at the top. ``test``
    gains the seen- and unseen-class parts of an unseen-classes protocol."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mode = mode_label(model, selection)
    record = report_record(model, dataset, protocol, test, train_seconds, mode, model_dir)
    # an unseen-classes protocol: the trained and the never-trained classes' queries apart, in the test figures
    # that eval.json keeps and the caller prints
    test.figures.update({part: part_headline(record[part]) for part in ("seen", "unseen") if part in record})
    payload = {
        "source": source, "dataset": dataset.name, "recipe": recipe, "recipe_lines": recipe_lines,
        "split": {"name": protocol.name, "seed": protocol.seed, "description": protocol.description,
                  "sizes": protocol.sizes(), "leave_one_out": protocol.leave_one_out,
                  "unreadable": protocol.excluded},
        "model": model.describe(), "settings": settings if settings is not None else _config(model).get("train") or {},
        "train_seconds": train_seconds, "trained_on": trained_on or _config(model).get("trained_on"),
        "trained_precision": _config(model).get("trained_precision", "float32"),
        "selection": selection, "history": history,
        "validation": validation.to_dict() if validation else None, "test": test.to_dict(),
        "machine": machine(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    files = {"eval": atomic_write_json(out / EVAL_FILE, _jsonable(payload), indent=1)}
    title = f"hashseek: {record['method']} {model.n_bits} bits on {dataset.name}"
    files.update(write_report([record], out, title=title))
    summary = files["markdown"].read_text().split("\n", 1)
    run_section = _run_section(payload, dataset, protocol)
    rest = summary[1] if len(summary) > 1 else ""
    atomic_write_text(files["markdown"], "\n".join([summary[0], "", *run_section, rest]))
    return files


def _config(model: HashModel | FeatureHasher) -> dict:
    return getattr(model, "config", None) or {}


def _run_section(payload: dict, dataset: ImageDataset, protocol: Protocol) -> list[str]:
    val, test = payload["validation"], payload["test"]
    rows = [f"| {label} | {_cell(val, key)} | {_cell(test, key)} |" for key, label in HEADLINE
            if key in test or (val and key in val)]
    rows += [f"| {label}, tie-aware | {_cell((val or {}).get('tie_aware'), key)} | "
             f"{_cell(test.get('tie_aware'), key)} |" for key, label in HEADLINE if key in test.get("tie_aware", {})]
    rows += [f"| {label}, as searched | {_cell((val or {}).get('searched'), key)} | "
             f"{_cell(test.get('searched'), key)} |" for key, label in HEADLINE if key in test.get("searched", {})]
    calibration = test.get("classifier_calibration", {})
    rows += [f"| {label} | {_cell((val or {}).get('classifier_calibration'), key)} | {_cell(calibration, key)} |"
             for key, label in CALIBRATION if key in calibration]
    held_out = (val or {}).get("held_out")
    rows += [f"| {label}, validation images searching each other (held out) | {_cell(held_out, key)} | — |"
             for key, label in HEADLINE if key in (held_out or {})]
    lines = ["## This run", "",
             f"Source `{payload['source']}`, recipe `{payload['recipe'] or 'none (settings given one by one)'}`, "
             f"trained in {payload['train_seconds']:.1f} s on {payload['trained_on'] or 'cpu'}"
             f"{' (trunk steps in bfloat16)' if payload['trained_precision'] == 'bfloat16' else ''}.", "",
             "| figure | validation (selection) | test queries (read once, after training) |", "|---|---|---|", *rows,
             f"| queries / database | {_sizes(val)} | {_sizes(test)} |", ""]
    if "tie_aware" in test:
        lines += ["Ties: the plain rows break equal Hamming distances by database order (as the literature's "
                  "evaluation code does); the tie-aware rows are each figure's expected value over a random order "
                  "of equal distances, which does not depend on how the database is stored.", ""]
    if held_out:
        lines += ["Held out: the validation images as both queries and database (leave-one-out), so neither side "
                  "was trained on, as in a library of new photos; the validation rows above search the training "
                  "images, whose codes training fitted, and usually read higher.", ""]
    if calibration:
        temperature = payload["model"].get("classifier_temperature") or 1.0
        how = (f"the softmax of its logits divided by a temperature of {temperature:.3g} fitted on the validation "
               "images" if temperature != 1.0 else "its softmax as trained (temperature 1: the fit on the validation "
               "images kept it or had too few of them, or the model predates `hashseek calibrate`)")
        lines += [f"Own classifier's probabilities: {how}; the expected calibration error is the gap between "
                  f"confidence and accuracy over {calibration['bins']} confidence bins (0: a confidence of 0.8 is "
                  f"right 80% of the time).", ""]
    if "searched" in test:
        lines += [f"As searched: the figures a collection of this model gives with the search defaults "
                  f"({test['searched']['ranking']}).", ""]
    if payload["selection"]:
        lines += ["Selection: " + describe_selection(payload["selection"]), ""]
    if payload["recipe_lines"]:
        lines += ["Recipe:", "", *[f"- {line}" for line in payload["recipe_lines"]], ""]
    lines += ["Split:", "", *split_lines(protocol, dataset, per_class=len(dataset.classes) <= 50), ""]
    if test["n_dropped"]:
        lines += [f"{test['n_dropped']} image(s) could not be read during the test evaluation:", "",
                  *[f"- {image_id}: {reason}" for image_id, reason in test["dropped"]], ""]
    settings = payload["settings"]
    lines += ["Settings:", "", "| setting | value |", "|---|---|",
              *[f"| {k} | {json.dumps(v)} |" for k, v in settings.items()], ""]
    return lines


def describe_selection(selection: dict) -> str:
    """The trainer's selection record in one line (floats to 4 places)."""
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in selection.items()
                     if not isinstance(v, (dict, list)))


def _cell(record: dict | None, key: str) -> str:
    value = None if record is None else record.get(key)
    return "—" if value is None else f"{value:.4f}"


def _sizes(record: dict | None) -> str:
    return "—" if record is None else f"{record['sizes']['query']} / {record['sizes']['database']}" + \
        (" (leave-one-out)" if record.get("leave_one_out") else "")


def _jsonable(value):
    """Plain JSON: numpy scalars and tuples from the trainer's records."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(asdict(value))
    return value
