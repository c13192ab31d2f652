"""The re-rank blend chosen on class-disjoint validation, and what it does to classes added after training.

Each seed trains ``--recipe fast`` on a built-in protocol through the user's path (``train_on_source``: the
blend is chosen there, on validation only), then reads the test queries once and scores them as a
collection searches, with the chosen blend and with the codes alone (the same model, the same encoding),
apart for the trained and the never-trained classes (``unseen_classes`` of ``cars-bmw13-unseen``).

    python benchmarks/rerank_blend.py --protocol cars-bmw13-unseen --seeds 0 1 2 --out docs/bench/rerank_blend_unseen.json
    python benchmarks/rerank_blend.py --protocol cars-bmw13 --seeds 0 --out docs/bench/rerank_blend_cars.json
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

FIGURES = ("map_all", "precision_at_20", "vote_accuracy_top8")


def measure(protocol_name: str, seed: int, runs: Path) -> dict:
    from hashseek.eval.rerank_blend import blend_figures
    from hashseek.eval.source_runs import load_run_split, reopen, train_on_source
    from hashseek.models.hash_model import load_model

    started = time.perf_counter()
    run = train_on_source(None, recipe="fast", protocol=protocol_name, seed=seed, out=runs / f"{protocol_name}-s{seed}",
                          progress=False)
    seconds = time.perf_counter() - started
    model = load_model(run.out)
    choice = model.config.get("rerank_blend_choice")
    weight = model.rerank_blend
    protocol = load_run_split(run.out, model)
    dataset = reopen(protocol)
    figures = blend_figures(model, dataset, protocol, weights=(0.0, weight) if weight else (0.0,))
    row = {"seed": seed, "run": str(run.out), "weight": weight, "choice": choice, "seconds": round(seconds, 1),
           "test": figures}
    print(protocol_name, seed, weight, {w: {g: round(f["map_all"], 4) for g, f in by.items()}
                                        for w, by in figures.items()}, flush=True)
    return row


def summarise(rows: list[dict]) -> dict:
    """Mean and sd over seeds of each group's figures, with the codes alone and with the chosen blend."""
    out = {}
    for ranking in ("codes", "chosen"):
        keyed = [r["test"]["0" if ranking == "codes" else f"{r['weight']:g}"] for r in rows]
        out[ranking] = {group: {k: {"mean": round(statistics.mean(f[group][k] for f in keyed), 4),
                                    "sd": round(statistics.stdev(f[group][k] for f in keyed), 4) if len(keyed) > 1
                                    else None} for k in FIGURES} for group in keyed[0]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--protocol", default="cars-bmw13-unseen")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", type=Path, default=Path("build/rerank-blend"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = [measure(args.protocol, seed, args.runs) for seed in args.seeds]
    write_json(args.out, {
        "protocol": args.protocol, "recipe": "fast", "machine": machine(),
        "command": " ".join(["python", *sys.argv]),
        "selection": "the blend weight is chosen on class-disjoint validation (hashseek.eval.rerank_blend); the test "
                     "queries are read once, after training, and scored as a collection searches with the codes alone "
                     "and with the chosen blend (the same model and encoding)",
        "runs": rows, "summary": summarise(rows)})


if __name__ == "__main__":
    main()
