"""What a training run's folder says: the job's record, and the trainer's progress and figures.

The trainer writes ``loss_log.json`` after every epoch (atomically: read at any time, it is whole);
a fine-tuning run's head warm-up writes ``warmup/loss_log.json`` first, and the main log repeats
the warm-up's epochs once the fine-tuning starts. ``eval.json`` appears when the run's report is written.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

JOB_FILE = "job.json"
LOG_FILE = "train.log"
LOSS_LOG = "loss_log.json"
EVAL_FILE = "eval.json"
MODEL_CONFIG = "config.json"
FIGURES = ("map_all", "precision_at_20", "vote_accuracy_top8")


def read_job(folder: Path) -> dict | None:
    """The job's record, None when the folder holds none (or a damaged one)."""
    value = _read_json(folder / JOB_FILE)
    return value if isinstance(value, dict) and "state" in value else None


def run_progress(folder: Path) -> dict:
    """Epochs done so far (loss, validation mAP), the best validation epoch, and the finished model's
    figures and training time."""
    history = _read_json(folder / LOSS_LOG)
    if not isinstance(history, list):
        history = _read_json(folder / "warmup" / LOSS_LOG)
    epochs = [{"epoch": int(r.get("epoch", n + 1)), "stage": str(r.get("stage", "")), "loss": _number(r.get("loss")),
               "val_map": _number(r.get("val_map")), "seconds": _number(r.get("seconds"))}
              for n, r in enumerate(history if isinstance(history, list) else []) if isinstance(r, dict)]
    validated = [e for e in epochs if e["val_map"] is not None]
    best = max(validated, key=lambda e: e["val_map"], default=None)
    report = _read_json(folder / EVAL_FILE)
    report = report if isinstance(report, dict) else {}
    model = _read_json(folder / MODEL_CONFIG)
    return {"epoch": len(epochs), "stage": epochs[-1]["stage"] if epochs else None,
            "loss": epochs[-1]["loss"] if epochs else None,
            "val_map": validated[-1]["val_map"] if validated else None,
            "best_val_map": best["val_map"] if best else None,
            "best_epoch": epochs.index(best) + 1 if best else None,
            "history": epochs,
            "validation": _figures(report.get("validation")), "test": _figures(report.get("test")),
            "trained_at": model.get("trained_at") if isinstance(model, dict) else None,
            "stopped": _stopped(model.get("selection") if isinstance(model, dict) else None)}


def _stopped(selection) -> str | None:
    """Why a finished run took fewer epochs than planned: "early" (validation mAP stopped improving) or
    "time" (the next epoch would have passed max_minutes)."""
    if not isinstance(selection, dict):
        return None
    return "early" if selection.get("stopped_early") else "time" if selection.get("stopped_for_time") else None


def _figures(figures) -> dict | None:
    if not isinstance(figures, dict):
        return None
    searched, sizes = figures.get("searched"), figures.get("sizes") or {}
    return {**{key: _number(figures.get(key)) for key in FIGURES},
            "queries": sizes.get("query"), "database": sizes.get("database"),
            "searched": {key: _number(searched.get(key)) for key in FIGURES} if isinstance(searched, dict) else None}


def _number(value) -> float | None:
    """A finite float or None (a diverged loss is NaN, which JSON cannot carry)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
