"""Runs of ``hashseek train`` on the results page: each run's ``eval.json`` slimmed to a record, and per
protocol (or user source) a table of those runs, mean (sd) over seeds, validation and test apart.

These rows are the fine-tuned ones a user reproduces with one command; the runner's rows (heads on frozen
maps, shallow hashers) are another path and are never merged with them.
"""
from __future__ import annotations

import statistics
from pathlib import PurePath
from typing import Sequence

from hashseek.core.errors import InvalidInputError
from hashseek.eval.report_tables import markdown_table
from hashseek.train.trainer import KEPT_WARMUP

FIGURES = ("map_all", "map_at_r", "precision_at_20", "vote_accuracy_top8", "classifier_accuracy", "n_query",
           "n_database")
SELECTION = ("metric", "queries", "database", "epochs_run", "best_epoch", "best_val_map", "warmup_val_map",
             "baseline_val_map", "kept", "stopped_for_time", "stopped_early", "run_seconds", "trained_size",
             "encode_size", "encode_size_val_map", "seconds_kept_after_training")
REQUIRED = ("split", "model", "settings", "selection", "validation", "test")


def _figures(part: dict) -> dict:
    out = {k: part[k] for k in FIGURES if k in part}
    if "tie_aware" in part:
        out["tie_aware"] = {k: v for k, v in part["tie_aware"].items() if k != "tie_rule"}
    if "searched" in part:
        out["searched"] = {k: v for k, v in part["searched"].items() if k != "ranking"}
    if "held_out" in part:
        out["held_out"] = part["held_out"]
    for classes in ("seen", "unseen"):   # an unseen-classes protocol's queries, trained classes and the others
        if classes in part:
            out[classes] = part[classes]
    return out


def trained_record(report: dict, where: str = "") -> dict:
    """The parts of a training run's ``eval.json`` the page shows: no history, no recipe lines. ``where``
    names the report in the error when it is not one of a finished, evaluated training run."""
    missing = [k for k in REQUIRED if report.get(k) is None and not (k == "validation" and k in report)]
    if missing:
        raise InvalidInputError(f"{where or 'the report'} is not the eval.json of a `hashseek train` run with test "
                                f"figures: it lacks {', '.join(missing)}")
    settings, split = report["settings"], report["split"]
    baseline = report["model"].get("type") != "hash_model"   # the run fell back to the zero-training baseline
    return {"source": report.get("source"), "recipe": report.get("recipe"),
            "split": {"name": split["name"], "seed": split["seed"], "sizes": split["sizes"]},
            "method": f"{settings['head']}+{settings['loss']}", "backbone": settings["backbone"],
            "bits": settings["bits"], "mode": settings["mode"], "input_size": settings.get("input_size"),
            "frozen_stages": settings.get("frozen_stages", 0),
            "kept": "baseline" if baseline else "trained",
            "max_minutes": report["selection"].get("max_minutes") or settings.get("max_minutes"),
            "trained_on": report.get("trained_on", "cpu"), "precision": report.get("trained_precision", "float32"),
            "train_seconds": report.get("train_seconds"),
            "created": report.get("created"), "machine": report.get("machine"), "settings": settings,
            "selection": {k: report["selection"][k] for k in SELECTION if k in report["selection"]},
            "validation": _figures(report["validation"] or {}), "test": _figures(report["test"])}


def kept_weights(selection: dict) -> str | None:
    """Which weights selection kept: the frozen-map warm-up (fine-tuning validated below it) or an epoch."""
    if selection.get("kept") == KEPT_WARMUP:
        return "the warm-up on frozen maps"
    epoch = selection.get("best_epoch") or selection.get("epoch")
    return f"epoch {epoch}" if epoch else None


def record_name(record: dict) -> str:
    """A file name that tells runs apart: split, method, backbone, bits, the trunk's kept stages, bfloat16
    steps, the time limit (a 30-minute run does not replace a 15-minute one), seed."""
    frozen, limit = record.get("frozen_stages") or 0, record.get("max_minutes")
    return (f"{record['split']['name']}-{record['method'].replace('+', '_')}-{record['backbone']}-{record['bits']}b"
            + (f"-frozen{frozen}" if frozen else "") + ("-bf16" if _precision(record) == "bfloat16" else "")
            + (f"-{round(limit)}min" if limit else "") + f"-seed{record['split']['seed']}.json")


def _precision(record: dict) -> str:
    return record.get("precision") or "float32"     # records written before bfloat16 training existed


def _setting(record: dict) -> tuple:
    """What a run was trained with, but its seed and code length. A recipe under a time limit picks the input
    size per run, so its runs are told apart by the limit instead."""
    limit = record["max_minutes"]
    chosen = (record["recipe"], round(limit)) if record["recipe"] and limit else (record["recipe"] or "",
                                                                                   record["input_size"] or 0)
    return (record["split"]["name"], record["method"], record["backbone"], record.get("frozen_stages") or 0,
            record["mode"], record["trained_on"], _precision(record), *chosen)


def _group(record: dict) -> tuple:
    """Runs that differ only in their seed share a row."""
    return (*_setting(record), record["bits"])


def _mode(runs: Sequence[dict]) -> str:
    r = runs[0]
    sizes = "/".join(str(size) for size in sorted({x["input_size"] for x in runs} - {None}))
    limit, frozen = r["max_minutes"], r.get("frozen_stages") or 0
    return (f"{r['mode']}, {r['backbone']} at {sizes + ' px' if sizes else 'its own size'}"
            + (f" (first {frozen} stages kept)" if frozen else "") + f", {r['trained_on']}"
            + (" in bfloat16" if _precision(r) == "bfloat16" else "")
            + (f", recipe {r['recipe']}" if r["recipe"] else "") + (f", --max-minutes {round(limit)}" if limit else ""))


def _sizes(record: dict) -> str:
    """The training input size, and the encode size chosen on validation where it differs."""
    trained, encoded = record["input_size"], record["selection"].get("encode_size")
    return f"{trained or 'own'}" + (f" ({encoded})" if encoded and encoded != trained else "")


def _stat(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ({statistics.stdev(values):.{digits}f})"


def _values(runs: Sequence[dict], part: str, key: str, ranking: str | None = None) -> list[float]:
    """``key`` of each run's ``part`` figures, or of their ``ranking`` ("tie_aware", "searched") when given."""
    figures = [r[part].get(ranking, {}) if ranking else r[part] for r in runs]
    return [f[key] for f in figures if f.get(key) is not None]


def _ranked(runs: Sequence[dict], ranking: str) -> str:
    """The test mAP@all / P@20 / vote of ``ranking`` over the runs ("—" where a report has none)."""
    return " / ".join(_stat(_values(runs, "test", key, ranking)) for key in ("map_all", "precision_at_20",
                                                                              "vote_accuracy_top8"))


def trained_tables(records: Sequence[dict]) -> list[str]:
    """Markdown lines: one row per method and setting with the mean (sd) over its seeds, then one row per
    run (what each seed chose and reached)."""
    groups: dict[tuple, list[dict]] = {}
    for record in sorted(records, key=lambda r: (_group(r), r["split"]["seed"])):
        groups.setdefault(_group(record), []).append(record)
    summary = []
    for runs in groups.values():
        minutes = [r["train_seconds"] / 60 for r in runs if r["train_seconds"] is not None]
        summary.append([runs[0]["method"], _mode(runs), str(runs[0]["bits"]),
                        ", ".join(str(r["split"]["seed"]) for r in runs), _stat(minutes, 1),
                        _stat(_values(runs, "validation", "map_all")),
                        *(_stat(_values(runs, "test", key)) for key in ("map_all", "precision_at_20",
                                                                        "vote_accuracy_top8")),
                        _ranked(runs, "tie_aware"), _ranked(runs, "searched")])
    apart = [[runs[0]["method"], _mode(runs), str(runs[0]["bits"]), ", ".join(str(r["split"]["seed"]) for r in runs),
              *(" / ".join(str(n) for n in _values(runs, "test", "n_query", part)) for part in ("seen", "unseen")),
              *(f"{_stat(_values(runs, 'test', key, 'seen'))} / {_stat(_values(runs, 'test', key, 'unseen'))}"
                for key in ("map_all", "vote_accuracy_top8")),
              _stat(_values(runs, "test", "classifier_accuracy", "seen"))]
             for runs in groups.values() if any("unseen" in r["test"] for r in runs)]
    per_run = []
    for runs in groups.values():
        for r in runs:
            sel, sizes = r["selection"], r["split"]["sizes"]
            per_run.append([r["method"], str(r["bits"]), str(r["split"]["seed"]),
                            f"{sizes.get('train', '?')} / {sizes.get('validation', '?')} / "
                            f"{sizes.get('query', '?')} ({sizes.get('database', '?')})",
                            f"{sel.get('epochs_run', '?')} (kept "
                            f"{'the baseline' if r['kept'] == 'baseline' else kept_weights(sel) or '?'})",
                            _sizes(r),
                            _stat([r["train_seconds"] / 60] if r["train_seconds"] is not None else [], 1),
                            _stat(_values([r], "validation", "map_all")),
                            *(_stat(_values([r], "test", key)) for key in ("map_all", "precision_at_20",
                                                                           "vote_accuracy_top8",
                                                                           "classifier_accuracy"))])
    return ["*Mean (sd) over the seeds listed; each seed draws its own split and initialisation (a built-in "
            "protocol's seed-0 split is the shipped one). Validation figures chose the epoch (or the zero-training "
            "baseline, where the trained model fell below it: its figures are then the baseline's); test figures "
            "were read once. "
            "Tie-aware: the expectation over a random order of equal Hamming distances (He et al. 2018). "
            "As searched: the ranking a collection of the model gives with the search defaults (Hamming candidates "
            "re-ranked by the stored float features; `hashseek.eval.searched`), from reports that have it.*", "",
            markdown_table(["method", "mode", "bits", "seeds", "training min", "validation mAP@all", "test mAP@all",
                            "test P@20", "test top-8 vote", "test tie-aware mAP@all / P@20 / vote",
                            "test as searched mAP@all / P@20 / vote"], summary), "",
            *(["*Test queries of the trained classes (seen) and of the classes never trained on (unseen, only in "
               "the database and the queries; each seed's split draws its own), against the same database; a "
               "model's own classifier cannot name an unseen class*", "",
               markdown_table(["method", "mode", "bits", "seeds", "seen queries (per seed)", "unseen queries",
                               "test mAP@all seen / unseen", "test top-8 vote seen / unseen",
                               "own classifier top-1, seen"], apart), ""] if apart else []),
            "*Each run*", "",
            markdown_table(["method", "bits", "seed", "train / val / test (database)", "epochs (kept)",
                            "input px (encoded at)", "training min",
                            "validation mAP@all", "test mAP@all", "test P@20", "test top-8 vote",
                            "test own classifier top-1"], per_run), ""]


def trained_curves(records: Sequence[dict]) -> list[dict]:
    """The settings (all but the code length) trained at two or more code lengths: per length, the test mAP@all
    and top-8 vote as (mean, sd) over its seeds (sd 0 for one seed), and the number of seeds."""
    by_setting: dict[tuple, dict[int, list[dict]]] = {}
    for record in records:
        by_setting.setdefault(_setting(record), {}).setdefault(record["bits"], []).append(record)
    curves = []
    for by_bits in by_setting.values():
        if len(by_bits) < 2:
            continue
        first = next(iter(by_bits.values()))[0]
        limit = f"--max-minutes {round(first['max_minutes'])}" if first["max_minutes"] else first["recipe"] or "given"
        points = []
        for bits, runs in sorted(by_bits.items()):
            point = {"bits": bits, "seeds": len(runs)}
            for key in ("map_all", "vote_accuracy_top8"):
                values = _values(runs, "test", key)
                point[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
            points.append(point)
        curves.append({"label": f"{first['method']}, {first['mode']}, {first['backbone']}, {first['trained_on']}, "
                                f"{limit}", "points": points})
    return curves


def trained_sections(records: Sequence[dict], split_name: str) -> list[str]:
    """The page's lines for the ``hashseek train`` runs of one protocol or user split (none: no lines)."""
    runs = [r for r in records if r["split"]["name"] == split_name]
    if not runs:
        return []
    sources = ", ".join(f"`hashseek train {PurePath(s).name}`" for s in dict.fromkeys(r["source"] for r in runs))
    return [f"**Trained with {sources}** (the path users run, not the runner's; finetune: end to end)", "",
            *trained_tables(runs)]


__all__ = ["record_name", "trained_curves", "trained_record", "trained_sections", "trained_tables"]
