"""The issue #13 bars through the user path: ``hashseek train <cars-bmw13 archive> --recipe R`` per seed.

Each seed is one ``train_on_source`` call (what ``hashseek train`` runs): a seeded, stratified split
of the archive (20% test queries, 15% validation; database = training + validation images),
selection on validation only, the zero-training baseline compared on validation, the test queries
read once. A fresh feature cache per run (``HASHSEEK_CACHE/user-path-<recipe>-seed<S>``; the ONNX
exports are shared) so no map is reused from an earlier run: the wall time is a first run's.
The machine is shared: the load average is recorded before and after each run.

    python benchmarks/user_path_cars.py --recipe fast --seeds 0 1 2 --max-minutes 3 \
        --out docs/bench/user_path_fast_cars.json
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

FIGURES = ("map_all", "precision_at_20", "vote_accuracy_top8")


def run_seed(source: Path, recipe: str, seed: int, max_minutes: float | None, runs: Path) -> dict:
    from hashseek.core.paths import cache_root
    from hashseek.eval.source_runs import train_on_source

    out = runs / f"{recipe}-seed{seed}"
    shutil.rmtree(out, ignore_errors=True)
    load_before = os.getloadavg()
    start = time.perf_counter()
    run = train_on_source(source, recipe, out, seed=seed, max_minutes=max_minutes, progress=True)
    wall = time.perf_counter() - start
    sel = run.selection
    print(f"seed {seed}: {wall:.0f} s (training {run.result.seconds:.0f} s), kept {sel.get('kept')}; "
          f"validation mAP {run.validation['map_all']:.4f}; test mAP@all {run.test['map_all']:.4f} "
          f"vote {run.test['vote_accuracy_top8']:.4f}; cache {cache_root()}", flush=True)
    return {"seed": seed, "wall_seconds": wall, "train_seconds": run.result.seconds,
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "selection": {k: v for k, v in sel.items() if not isinstance(v, (dict, list))},
            "validation": {k: run.validation[k] for k in FIGURES} if run.validation else None,
            "test": {k: run.test[k] for k in FIGURES},
            "test_tie_aware": {k: run.test["tie_aware"][k] for k in FIGURES},
            "split": run.test["sizes"], "run": str(out)}


def summary(runs: list[dict]) -> dict:
    out = {}
    for key in FIGURES:
        values = [r["test"][key] for r in runs]
        out[key] = {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
        tie_aware = [r["test_tie_aware"][key] for r in runs]
        out[f"{key}_tie_aware"] = {"mean": statistics.mean(tie_aware),
                                   "sd": statistics.stdev(tie_aware) if len(tie_aware) > 1 else 0.0}
    out["wall_seconds"] = {"mean": statistics.mean(r["wall_seconds"] for r in runs),
                           "max": max(r["wall_seconds"] for r in runs)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="fast")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--source", type=Path,
                   default=Path(os.environ.get("HASHSEEK_DATA", "../shared/datasets")) / "cars-bmw13.tar.gz")
    p.add_argument("--runs", type=Path, default=Path(tempfile.gettempdir()) / "hashseek-user-path")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    from hashseek.core.paths import cache_root

    shared = cache_root()
    cmd = f"hashseek train <HASHSEEK_DATA>/cars-bmw13.tar.gz --recipe {args.recipe} --seed S" + \
        (f" --max-minutes {args.max_minutes:g}" if args.max_minutes else "")
    results = []
    for seed in args.seeds:
        fresh = shared / f"user-path-{args.recipe}-seed{seed}"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        if (shared / "onnx").is_dir():
            shutil.copytree(shared / "onnx", fresh / "onnx")
        os.environ["HASHSEEK_CACHE"] = str(fresh)
        try:
            results.append(run_seed(args.source, args.recipe, seed, args.max_minutes, args.runs))
        finally:
            os.environ["HASHSEEK_CACHE"] = str(shared)
            shutil.rmtree(fresh, ignore_errors=True)
        write_json(args.out, {   # after every seed, so a stopped series keeps its finished runs
            "command": cmd, "script": "python benchmarks/user_path_cars.py " + " ".join(sys.argv[1:]),
            "protocol": "the archive as a user's source: seeded stratified split, 20% test queries, 15% validation, "
                        "database = training + validation; selection on validation mAP@all; the zero-training "
                        "baseline compared on validation; test read once; a fresh feature cache per run",
            "machine": machine(), "runs": results, "summary": summary(results)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
