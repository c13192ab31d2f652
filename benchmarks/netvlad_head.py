"""The trained ``netvlad`` hash head beside ``gap`` with the same loss (issue #20, point 1).

Frozen EfficientNet-Lite0 maps (224 px, cached), one protocol, one loss and bit count, 30 epochs, seed 0.
Each head's settings (netvlad: clusters x learning rate; gap: learning rate) are chosen by validation
mAP@all (the trainer's own selection, validation queries against training images); the chosen setting of
each head alone is then scored on the test queries once (``report_training``: mAP@all, P@20).

    python benchmarks/netvlad_head.py --protocol cars-bmw13 --out docs/bench/netvlad_head_cars_bmw13.json
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.eval.source_runs import prepare, report_training, train_prepared  # noqa: E402
from hashseek.train import TrainConfig  # noqa: E402

GRID = {"netvlad": [{"clusters": k, "lr": lr} for k in (32, 64) for lr in (3e-3, 1e-2)],
        "gap": [{"lr": lr} for lr in (1e-3, 3e-3, 1e-2)]}


def config(head: str, loss: str, bits: int, setting: dict) -> TrainConfig:
    kw = {"head_kwargs": {"clusters": setting["clusters"]}} if "clusters" in setting else {}
    return TrainConfig(head=head, loss=loss, bits=bits, mode="frozen", epochs=30, seed=0, lr=setting["lr"], **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="cars-bmw13")
    ap.add_argument("--loss", default="triplet")
    ap.add_argument("--bits", type=int, default=48)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    prepared = prepare(None, protocol=args.protocol, seed=0, progress=False)
    rows, load = [], os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for head, grid in GRID.items():
            tried = []
            for n, setting in enumerate(grid):
                t = time.perf_counter()
                result = train_prepared(prepared, config(head, args.loss, args.bits, setting), f"{tmp}/{head}{n}",
                                        progress=False)
                tried.append({**setting, "val_map": result.selection["best_val_map"],
                              "best_epoch": result.selection["best_epoch"],
                              "seconds": round(time.perf_counter() - t, 1), "result": result, "dir": f"{tmp}/{head}{n}"})
                print(head, {k: v for k, v in tried[-1].items() if k not in ("result", "dir")}, flush=True)
            best = max(tried, key=lambda r: r["val_map"])
            run = report_training(prepared, best["result"], best["dir"], recipe=None, recipe_lines=[], progress=False)
            rows.append({"method": f"{head}+{args.loss}", "chosen": {k: best[k] for k in ("clusters", "lr") if k in best},
                         "kept": run.selection.get("kept"),
                         "validation": {k: run.validation[k] for k in ("map_all", "precision_at_20")},
                         "test": {k: run.test[k] for k in ("map_all", "precision_at_20")},
                         "sweep": [{k: v for k, v in r.items() if k not in ("result", "dir")} for r in tried]})
            print(rows[-1]["method"], rows[-1]["chosen"], "validation", rows[-1]["validation"], "test", rows[-1]["test"],
                  flush=True)
    write_json(args.out, {"command": "python " + " ".join(sys.argv), "protocol": args.protocol, "loss": args.loss,
                          "bits": args.bits, "backbone": "efficientnet_lite0 (frozen maps, 224 px)", "epochs": 30,
                          "seed": 0, "rows": rows, "machine": machine(), "load_average_at_start": load})


if __name__ == "__main__":
    main()
