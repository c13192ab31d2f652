"""Trained runs' figures as the field ranks (Hamming, ties by database order), tie-aware, and as a collection of
the model searches with the search defaults (``hashseek.eval.searched``), from one ``hashseek eval --model``
each (its report goes to RUN/eval, as that command writes it): the same saved split, the same weights and
encode size, one encoding.

    python benchmarks/searched_figures.py build/user-path/best-seed{0,1,2} --out docs/bench/searched_figures.json \
        --page-records docs/results/trained

``--page-records``: the results page's record of each run (``run_all.py --trained``) gains the "as searched"
figures; its own figures, read at training time, stay as they are (the Hamming figures must match).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

FIGURES = ("map_all", "precision_at_20", "vote_accuracy_top8")
RANKINGS = {"hamming": lambda part: part, "tie_aware": lambda part: part["tie_aware"],
            "searched": lambda part: part["searched"]}


def measure(run: Path, page_records: Path | None) -> dict:
    from hashseek.eval.source_runs import evaluate_run

    report = evaluate_run(run, progress=False)
    if page_records is not None:
        add_to_page_record(run, report, page_records)
    row = {"run": str(run), "split": report.test["sizes"], "searched_ranking": report.test["searched"]["ranking"]}
    for name, part in (("validation", report.validation), ("test", report.test)):
        row[name] = {ranking: {k: pick(part)[k] for k in FIGURES} for ranking, pick in RANKINGS.items()} if part \
            else None
    print(run, {r: round(v["map_all"], 4) for r, v in row["test"].items()}, flush=True)
    return row


def add_to_page_record(run: Path, report, folder: Path) -> None:
    """The run's page record gains the searched figures, once its training-time figures are checked equal."""
    from hashseek.eval.report import write_json as write_page_json   # as run_all.py writes the records
    from hashseek.eval.trained_runs import record_name, trained_record

    record = trained_record(json.loads((run / "eval.json").read_text()), where=str(run))
    path = folder / record_name(record)
    page = json.loads(path.read_text())
    for part, figures in (("validation", report.validation), ("test", report.test)):
        if not figures:
            continue
        if abs(page[part]["map_all"] - figures["map_all"]) > 1e-9:
            raise SystemExit(f"{path}: the {part} mAP@all {page[part]['map_all']} is not this evaluation's "
                             f"{figures['map_all']}; the run changed since the page took it")
        page[part]["searched"] = {k: v for k, v in figures["searched"].items() if k != "ranking"}
    write_page_json(path, page)
    print(f"{path}: as-searched figures added")


def summary(rows: list[dict]) -> dict:
    """Mean and sd over the runs of each test figure under each ranking."""
    out = {}
    for ranking in RANKINGS:
        for key in FIGURES:
            values = [r["test"][ranking][key] for r in rows if r["test"][ranking][key] is not None]
            out[f"{ranking}.{key}"] = {"mean": statistics.fmean(values),
                                       "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="folders of `hashseek train` runs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--page-records", type=Path, help="the results page's trained/ folder to add the figures to")
    args = p.parse_args()
    rows = []
    for run in args.runs:
        rows.append(measure(run, args.page_records))
        write_json(args.out, {"script": "python benchmarks/searched_figures.py " + " ".join(sys.argv[1:]),
                              "protocol": "each run's saved split; validation queries against the training images, "
                                          "test queries against the database; the same encodings ranked three ways",
                              "machine": machine(), "rows": rows, "summary": summary(rows)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
