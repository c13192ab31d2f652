"""The classifier temperature (``hashseek.train.calibrate``) applied to models trained before it existed: fitted
on each run's validation images, the test queries then read once at T = 1 and at the fitted T (accuracy, mean
confidence, expected calibration error, negative log-likelihood), and the fitted T written into the run as
``hashseek calibrate`` does. A split with unseen classes reports its seen- and unseen-class queries apart: the
classifier knows only the seen ones, so its confidence on the others is the figure to read. Plots the
reliability diagram of the test queries before and after, pooled per protocol.

    python benchmarks/calibration.py build/cars-protocol-best-seed{0,1,2} build/unseen-best-seed{0,1,2} \
        build/cifar10-ft48-lite2 build/cifar10-ft48-lite2-seed{1,2} --out docs/bench/calibration.json
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_json  # noqa: E402


def measure(run: Path) -> tuple[dict, dict]:
    """(record, the test queries' (confidence, right) before and after, for the diagram)."""
    from hashseek.core.calibration import calibration_figures, softmax
    from hashseek.eval.source_runs import load_run_split, reopen
    from hashseek.models.hash_model import load_model
    from hashseek.train.calibrate import calibrate, save_calibration
    from hashseek.train.evaluator import encode_ids

    model = load_model(run)
    protocol = load_run_split(run, model)
    dataset = reopen(protocol)
    start = time.perf_counter()
    fitted = calibrate(model, dataset, protocol.validation)
    fit_seconds = time.perf_counter() - start
    temperature = model.classifier_temperature
    test, _ = encode_ids(model, dataset, protocol.query, progress=False)
    raw = test.logits * np.float32(temperature)          # the logits before the temperature
    seen = set(model.classes) - set(protocol.unseen_classes)
    parts = {"all": np.ones(len(test.ids), bool)}
    if protocol.unseen_classes:
        is_seen = np.array([dataset.classes[label] in seen for label in test.labels])
        parts.update(seen_classes=is_seen, unseen_classes=~is_seen)
    figures = {}
    for name, rows in parts.items():
        labels = test.labels[rows]
        figures[name] = {"n_query": int(rows.sum()),
                         "before": calibration_figures(raw[rows], labels),
                         "after": calibration_figures(raw[rows], labels, temperature)}
    save_calibration(model, run)
    points = {}
    for when, t in (("before", 1.0), ("after", temperature)):
        p = softmax(raw, t)
        points[when] = (p.max(axis=1), p.argmax(axis=1) == test.labels)
    record = {"run": str(run), "protocol": protocol.name, "seed": protocol.seed, "input_size": model.input_size,
              "head_loss": f"{model.config['head']}+{model.config['loss']}", "bits": model.n_bits,
              "temperature": temperature, "fit": fitted, "fit_seconds": fit_seconds, "test": figures}
    return record, points


def reliability_diagram(points: dict[str, list[dict]], path: Path, bins: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(points), figsize=(4.2 * len(points), 4.2), squeeze=False)
    edges = np.linspace(0, 1, bins + 1)
    for ax, (protocol, runs) in zip(axes[0], sorted(points.items())):
        for when, colour in (("before", "tab:red"), ("after", "tab:blue")):
            confidence = np.concatenate([r[when][0] for r in runs])
            right = np.concatenate([r[when][1] for r in runs])
            which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
            xs = [confidence[which == b].mean() for b in range(bins) if (which == b).any()]
            ys = [right[which == b].mean() for b in range(bins) if (which == b).any()]
            label = "T = 1" if when == "before" else "T fitted on validation"
            ax.plot(xs, ys, "o-", color=colour, label=label)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="confidence (top class's probability)",
               ylabel="accuracy", title=f"{protocol} test queries ({len(runs)} runs)")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_xticks(edges[::2])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/bench/calibration.json"))
    args = parser.parse_args(argv)
    records, points = [], defaultdict(list)
    for run in args.runs:
        record, run_points = measure(run)
        records.append(record)
        points[record["protocol"]].append(run_points)
        for part, f in record["test"].items():
            print(f"{run} [{part}, {f['n_query']} queries] T {record['temperature']:.3g}: confidence "
                  f"{f['before']['confidence']:.3f} -> {f['after']['confidence']:.3f} at accuracy "
                  f"{f['after']['accuracy']:.3f}; ECE {f['before']['ece']:.3f} -> {f['after']['ece']:.3f}; "
                  f"NLL {f['before']['nll']:.3f} -> {f['after']['nll']:.3f}", flush=True)
    plot = reliability_diagram(points, args.out.with_suffix(".png"))
    write_json(args.out, {"script": "benchmarks/calibration.py", "argv": [str(r) for r in args.runs],
                          "protocol": "T fitted on each run's validation images (least NLL, T >= 1); test queries "
                                      "read once at T = 1 and at T; ECE over 15 equal-width bins",
                          "machine": machine(), "plot": str(plot), "runs": records})
    print(f"wrote {args.out} and {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
