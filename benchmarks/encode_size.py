"""The encode size chosen on validation (``hashseek.train.encode_size``), applied to fine-tuned runs made
before it existed: each run's kept weights validated at its training size and at ``larger_size`` of it,
the better kept, and the test queries read only for a run whose choice changed (its training-size test
figures are those its own report read, in ``eval.json``).

    python benchmarks/encode_size.py build/caltech101-ft48 build/user-path/best-seed0 \
        --out docs/bench/encode_size.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402

FIGURES = ("map_all", "precision_at_20", "vote_accuracy_top8")


def measure(run: Path, also: list[float]) -> dict:
    import torch

    from hashseek.eval.source_runs import load_run_split, reopen
    from hashseek.models.hash_model import load_model
    from hashseek.train.encode_size import larger_size
    from hashseek.train.evaluator import evaluate_split, training_encoder

    model = load_model(run)
    protocol = load_run_split(run, model)
    dataset = reopen(protocol)
    reported = json.loads((run / "eval.json").read_text())

    def figures(size: int, queries, database, leave_one_out: bool = False) -> dict:
        model.input_size = size
        encoder = training_encoder(model, dataset, torch.device("cpu"))
        start = time.perf_counter()
        try:
            record = evaluate_split(model, dataset, queries, database, leave_one_out=leave_one_out, progress=False,
                                    encoder=encoder)
        finally:
            encoder.close()
        return {**{k: record.figures[k] for k in FIGURES},
                "tie_aware": {k: record.figures["tie_aware"][k] for k in FIGURES},
                "seconds": time.perf_counter() - start}

    trained = model.input_size
    sizes = [trained, larger_size(trained)]
    validation = {str(s): figures(s, protocol.validation, protocol.train) for s in sizes}
    chosen = max(sizes, key=lambda s: (validation[str(s)]["map_all"], -s))   # ties keep the training size
    for scale in also:   # other sizes, validated for comparison only (never chosen)
        size = 16 * round(trained * scale / 16)
        validation.setdefault(str(size), figures(size, protocol.validation, protocol.train))
    test = {str(trained): {**{k: reported["test"][k] for k in FIGURES},
                           "tie_aware": reported["test"].get("tie_aware")}}   # None: a report from before them
    if chosen != trained:
        test[str(chosen)] = figures(chosen, protocol.query, protocol.database, protocol.leave_one_out)
    row = {"run": str(run), "split": protocol.name, "seed": protocol.seed, "sizes": protocol.sizes(),
           "backbone": model.config["backbone"], "trained_size": trained, "chosen_size": chosen,
           "validation": validation, "test": test}
    print(json.dumps({k: row[k] for k in ("run", "trained_size", "chosen_size")}),
          {s: round(v["map_all"], 4) for s, v in validation.items()},
          {s: round(v["map_all"], 4) for s, v in test.items()}, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="folders of fine-tuned `hashseek train` runs")
    p.add_argument("--also", type=float, nargs="*", default=[],
                   help="other scales of the training size to validate for comparison (never chosen)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    for run in args.runs:
        rows.append(measure(run, args.also))
        write_json(args.out, {"script": "python benchmarks/encode_size.py " + " ".join(sys.argv[1:]),
                              "protocol": "each run's saved split: validation queries against the training images "
                                          "choose the size (mAP@all); test queries against the database, read "
                                          "only at a changed size; --also sizes are validated, never chosen",
                              "machine": machine(), "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
