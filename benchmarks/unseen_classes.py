"""What limits the unseen-class figure, measured (issue #18 point 5): the same 4 never-trained BMW models,
codes trained on 3, 5, 7 or 9 of the other 9.

Every run keeps ``cars-bmw13-unseen``'s 4 unseen models and its whole database (25 images of each of the 13
models, also those of the seen models left out of a run's training), and trains frozen gap+csq (48 bits,
EfficientNet-Lite0 maps, the epoch kept on the trained models' validation images) on k of the 9 seen models: several random subsets for k < 9, several training seeds for k = 9. The queries
are the test queries of the k trained models (seen) and of the 4 unseen models (unseen), scored apart by the
runner; the cosine float baseline (no codes, no training) is scored on the same queries. Every run sees
the same number of training images in all (``--presentations``; epochs = presentations / (20 k)), so that
fewer classes do not also mean fewer optimisation steps. Bilinear-HashNet
trains on about 700 classes; this measures how the unseen figure moves with the number of trained classes
over the range this dataset allows, and fits the slope per doubling of the trained classes.

    nice -n 19 python benchmarks/unseen_classes.py     # -> docs/bench/unseen_classes.json and .png
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.core.atomic import atomic_path  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import Protocol, get_protocol  # noqa: E402
from hashseek.eval.runner import MethodSpec, run_method  # noqa: E402

TRAINED = (3, 5, 7, 9)
FIGURES = ("vote_accuracy_top8", "map_all", "precision_at_20")


def subset_protocol(base: Protocol, labels: dict[str, str], trained: list[str], draw: int) -> Protocol:
    """``base`` restricted to training (and validating) on ``trained``; queries of ``trained`` and of the
    unseen models; the whole database. The draw is the training seed."""
    keep = set(trained) | set(base.unseen_classes)
    return replace(base, name=f"{base.name}-{len(trained)}trained-draw{draw}", seed=draw,
                   description=f"{base.name} trained on {len(trained)} of its seen models: {', '.join(trained)}",
                   query=[i for i in base.query if labels[i] in keep],
                   train=[i for i in base.train if labels[i] in trained],
                   validation=[i for i in base.validation if labels[i] in trained])


def draws(seen: list[str], k: int, n: int) -> list[list[str]]:
    """``n`` random k-subsets of the seen models (the whole set, ``n`` times, when k is all of them)."""
    return [sorted(np.random.default_rng(100 * k + d).choice(seen, size=k, replace=False).tolist())
            for d in range(n)]


def summary(rows: list[dict], method: str, part: str) -> dict:
    """Mean and standard deviation over draws of each figure, per number of trained models."""
    out = {}
    for k in TRAINED:
        at = [r[part] for r in rows if r["trained"] == k and r["method"] == method]
        out[str(k)] = {f: {"mean": float(np.mean([a[f] for a in at])), "std": float(np.std([a[f] for a in at])),
                           "n": len(at)} for f in FIGURES}
    return out


def slope_per_doubling(rows: list[dict], method: str, figure: str) -> float:
    """Least-squares slope of a figure of the unseen queries against log2(number of trained models)."""
    at = [r for r in rows if r["method"] == method]
    return float(np.polyfit(np.log2([r["trained"] for r in at]), [r["unseen"][figure] for r in at], 1)[0])


def plot(rows: list[dict], path: Path, method: str) -> Path:
    fig = Figure(figsize=(10, 4.2), dpi=120)
    for n, (figure, label) in enumerate((("vote_accuracy_top8", "top-8 vote"), ("map_all", "mAP@all"))):
        ax = fig.add_subplot(1, 2, n + 1)
        for name, part, style in ((method, "unseen", "o-"), (method, "seen", "s--"), ("float", "unseen", "k:")):
            at = [r for r in rows if r["method"] == name]
            means = [np.mean([r[part][figure] for r in at if r["trained"] == k]) for k in TRAINED]
            stds = [np.std([r[part][figure] for r in at if r["trained"] == k]) for k in TRAINED]
            what = f"{name} (cosine, no codes)" if name == "float" else name
            ax.errorbar(TRAINED, means, yerr=stds, fmt=style, capsize=3, label=f"{what}, {part}-model queries")
            if name == method:
                ax.plot([r["trained"] for r in at], [r[part][figure] for r in at], ".", alpha=0.35,
                        color=ax.lines[-1].get_color())
        ax.set_xlabel("trained BMW models (the same 4 unseen models throughout)")
        ax.set_ylabel(label)
        ax.set_xticks(TRAINED)
        ax.grid(alpha=0.3)
        ax.set_title(f"cars-bmw13-unseen: {label} vs trained classes")
    fig.axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="gap+csq")
    ap.add_argument("--bits", type=int, default=48)
    ap.add_argument("--presentations", type=int, default=10800,
                    help="training images seen per run, all epochs together (10,800: 60 epochs of 9 models)")
    ap.add_argument("--draws", type=int, default=5, help="random subsets (k < 9) or training seeds (k = 9) per k")
    ap.add_argument("--out", type=Path, default=Path("docs/bench/unseen_classes.json"))
    ap.add_argument("--cache", type=Path, default=cache_root() / "bench-unseen-classes",
                    help="per-run cache (the runner's): a stopped run resumes")
    args = ap.parse_args()
    base = get_protocol("cars-bmw13-unseen", seed=0)
    dataset = load_dataset(base.dataset)
    ids = sorted(set(base.query) | set(base.database))
    labels = {i: dataset.classes[c] for i, c in zip(ids, dataset.labels(ids))}
    seen = sorted({labels[i] for i in base.train})
    plan = [(k, d, trained) for k in TRAINED for d, trained in enumerate(draws(seen, k, args.draws))]
    rows = []
    for k, draw, trained in tqdm(plan, desc="runs", unit="run"):
        protocol = subset_protocol(base, labels, trained, draw)
        spec = MethodSpec.parse(args.method, epochs=round(args.presentations / len(protocol.train)))
        for method, bits in ((spec, args.bits), ("float", None)):
            r = run_method(method, protocol, bits, cache_dir=args.cache, progress=False, timing=False)
            rows.append({"method": r["method"], "trained": k, "draw": draw, "trained_models": trained,
                         "epochs": spec.epochs if r["kind"] == "deep" else None,
                         "sizes": r["protocol"]["sizes"], "selection": r.get("selection"),
                         "train_seconds": r["times"]["train_seconds"],
                         **{part: {f: r[part][f] for f in (*FIGURES, "n_query")} for part in ("seen", "unseen")}})
            tqdm.write(f"k={k} draw {draw} {r['method']:8s} unseen vote {r['unseen']['vote_accuracy_top8']:.4f} "
                       f"mAP {r['unseen']['map_all']:.4f} | seen vote {r['seen']['vote_accuracy_top8']:.4f} "
                       f"mAP {r['seen']['map_all']:.4f}")
    png = plot(rows, args.out.with_suffix(".png"), spec.name)
    write_json(args.out, {
        "command": "python " + " ".join(sys.argv),
        "protocol": f"cars-bmw13-unseen (seed 0) restricted per run: unseen models {base.unseen_classes}; "
                    "database: its 325 images (25 per model, all 13 models); queries: the trained models' and the "
                    "unseen models' test queries; training and validation: the trained models' images only",
        "method": f"{spec.name}, {args.bits} bits, frozen efficientnet_lite0 maps (224 px), {args.presentations} "
                  "training-image presentations per run (epochs = that / training images), adam lr 1e-3, batch 64, "
                  "epoch kept on the trained models' validation images; float: cosine on pooled features",
        "draws": "k < 9: random subsets of the 9 seen models (numpy default_rng(100 k + draw)), training seed = draw; "
                 "k = 9: the 9 seen models, training seed = draw",
        "summary": {"unseen": summary(rows, spec.name, "unseen"), "seen": summary(rows, spec.name, "seen"),
                    "float_unseen": summary(rows, "float", "unseen")},
        "slope_per_doubling_of_trained_models": {f: slope_per_doubling(rows, spec.name, f) for f in FIGURES},
        "rows": rows, "plot": str(png), "machine": machine(),
    })
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
