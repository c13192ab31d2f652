"""PNG plots of runner records: P-R over Hamming radius, precision at k, mAP vs bits, confusion matrix.

Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg canvas, so no
display, no pyplot global state and no backend switching are involved.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from matplotlib.figure import Figure

DPI = 120
_STYLE = {"deep": "-", "shallow": "--", "float": ":"}
_MARKER = {"deep": "o", "shallow": "s", "float": ""}
# Deep methods take tab10's first eight colours, shallow ones five others, the float baseline black.
_SHALLOW_COLOURS = ("tab:olive", "tab:cyan", "saddlebrown", "navy", "darkviolet")


def _colours(records: Sequence[dict]) -> dict[str, object]:
    """The same colour for a method in every plot, from its place in the runner's method lists."""
    from matplotlib import colormaps

    from hashseek.eval.runner import DEEP_METHODS
    from hashseek.hashers import list_hashers

    deep, shallow = list(DEEP_METHODS), list_hashers()   # any registered hasher has its colour
    colours = {}
    for r in records:
        name = r["method"]
        if r["kind"] == "float":
            colours[name] = "black"
        elif r["kind"] == "shallow":
            colours[name] = _SHALLOW_COLOURS[shallow.index(name) % len(_SHALLOW_COLOURS)]
        else:
            if name not in deep:
                deep.append(name)
            colours[name] = colormaps["tab10"](deep.index(name) % 8)
    return colours


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _legend(ax) -> None:
    """Beside the axes once there are many curves (13 methods hide each other's lines otherwise)."""
    handles = ax.get_legend_handles_labels()[0]
    if len(handles) > 6:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif handles:
        ax.legend(fontsize=8, loc="best", framealpha=0.85)


def plot_pr_curves(records: Iterable[dict], path: str | Path, protocol: str, bits: int) -> Path:
    """Precision vs recall as the Hamming radius grows from 0 to ``bits`` (hashed records only)."""
    records = [r for r in records if "pr_curve_hamming" in r["figures"]]
    colours = _colours(records)
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for r in records:
        curve = r["figures"]["pr_curve_hamming"]
        points = [(rec, p) for rec, p in zip(curve["recall"], curve["precision"]) if p is not None]
        if points:
            recall, precision = zip(*points)
            ax.plot(recall, precision, _STYLE[r["kind"]], color=colours[r["method"]], marker=_MARKER[r["kind"]],
                    markersize=3,
                    label=f"{r['method']} ({r['mode']})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
           title=f"{protocol}: precision-recall over Hamming radius 0..{bits}, {bits} bits")
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)


def plot_precision_curves(records: Iterable[dict], path: str | Path, protocol: str, bits: int | None) -> Path:
    """Precision of the top k results vs k (log scale); the float baseline is drawn dotted."""
    records = list(records)
    colours = _colours(records)
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for r in records:
        curve = r["figures"]["precision_curve"]
        ax.plot(curve["k"], curve["precision"], _STYLE[r["kind"]], color=colours[r["method"]],
                marker=_MARKER[r["kind"]] or ".", markersize=4, label=f"{r['method']} ({r['mode']})")
    ax.set_xscale("log")
    length = f"{bits} bits" if bits else "float features"
    ax.set(xlabel="number of returned images k", ylabel="precision@k", ylim=(0, 1.02),
           title=f"{protocol}: precision of the top k, {length}")
    ax.grid(alpha=0.3, which="both")
    _legend(ax)
    return _save(fig, path)


def plot_map_vs_bits(records: Iterable[dict], path: str | Path, protocol: str, metric: str = "map_all",
                     label: str = "mAP@all") -> Path:
    """One line per method over code length; the float baseline (no codes) is a horizontal dotted line."""
    records = list(records)
    colours = _colours(records)
    by_method: dict[str, list[dict]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append(r)
    all_bits = sorted({r["bits"] for r in records if r["bits"] is not None})
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for method, rows in by_method.items():
        first = rows[0]
        if first["bits"] is None:
            ax.axhline(first["figures"][metric], linestyle=":", color=colours[method], label=f"{method} (no codes)")
            continue
        rows = sorted(rows, key=lambda r: r["bits"])
        ax.plot([r["bits"] for r in rows], [r["figures"][metric] for r in rows], _STYLE[first["kind"]],
                color=colours[method], marker=_MARKER[first["kind"]], label=f"{method} ({first['mode']})")
    if all_bits:
        ax.set_xticks(all_bits)
    ax.set(xlabel="code length (bits)", ylabel=label, ylim=(0, 1.02), title=f"{protocol}: {label} vs code length")
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)


def plot_trained_vs_bits(curves: Sequence[dict], path: str | Path, protocol: str) -> Path:
    """``hashseek train`` runs over code length (``trained_runs.trained_curves``): test mAP@all and top-8 vote,
    the mean over seeds with the sd as error bars; each point says how many seeds it holds."""
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    for ax, (metric, label) in zip(axes, (("map_all", "test mAP@all"), ("vote_accuracy_top8", "test top-8 vote"))):
        for curve in curves:
            points = curve["points"]
            bits = [p["bits"] for p in points]
            means = [p[metric][0] for p in points]
            line = ax.errorbar(bits, means, yerr=[p[metric][1] for p in points], marker="o", capsize=3,
                               label=curve["label"])
            for p, mean in zip(points, means):
                ax.annotate(f"{p['seeds']} seed{'s' if p['seeds'] > 1 else ''}", (p["bits"], mean), fontsize=7,
                            textcoords="offset points", xytext=(4, -10), color=line[0].get_color())
        ax.set_xticks(sorted({p["bits"] for c in curves for p in c["points"]}))
        values = [p[metric][0] for c in curves for p in c["points"]]
        # a tenth of the scale below the lowest point: differences of a few points are not blown up
        ax.set(xlabel="code length (bits)", ylabel=label, title=f"{protocol}: {label}",
               ylim=(max(0.0, min(values) - 0.1), min(1.02, max(values) + 0.05)))
        ax.grid(alpha=0.3)
    fig.suptitle("trained with hashseek train: mean over seeds, sd as error bars", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.15), borderaxespad=0.0)
    return _save(fig, path)


def plot_confusion(record: dict, path: str | Path, protocol: str) -> Path:
    """Row-normalised confusion of the top-8 vote; class names are printed when there are at most 20."""
    counts = np.asarray(record["figures"]["confusion_matrix"], dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    classes = record["classes"]
    size = 6 if len(classes) <= 20 else 9
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's queries")
    named = len(classes) <= 20
    if named:
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
    unit = "class" if named else "class index (dataset label order)"
    bits = f"{record['bits']} bits" if record["bits"] else "float features"
    ax.set(xlabel=f"predicted {unit}, top-8 vote", ylabel=f"true {unit}",
           title=f"{protocol}: {record['method']}, {bits}, top-8 vote accuracy "
                 f"{record['figures']['vote_accuracy_top8']:.3f}")
    return _save(fig, path)
