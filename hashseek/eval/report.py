"""Runner records -> JSON, Markdown tables and PNG plots (``hashseek eval`` folders and ``docs/results.md``).

Measured and quoted figures never share a table: every measured table refuses a record whose
``source`` is not ``"measured"``, and quoted figures have their own table marked "quoted". On the
results page every row also says which split of its protocol it was measured on: the current one,
or an older one (a row carried over with ``--reuse`` from before the protocol changed), never both.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from hashseek.core.atomic import atomic_write_text
from hashseek.data.protocols import Protocol
from hashseek.eval import plots
from hashseek.eval.runner import same_split
from hashseek.eval.report_tables import class_sections, markdown_table
from hashseek.eval.trained_runs import trained_curves, trained_sections

METRICS = {
    "map_all": "mAP@all",
    "precision_at_20": "P@20",
    "vote_accuracy_top8": "top-8 vote accuracy",
    "train_seconds": "training time (s)",
}
REFERENCE_BITS = 48
CURRENT, OLDER = "current protocol", "older protocol"


def check_measured(records: Iterable[dict]) -> list[dict]:
    """The records, or ValueError if any is not a measured one (quoted figures are kept apart)."""
    records = list(records)
    for r in records:
        if r.get("source") != "measured":
            raise ValueError(f"{r.get('source')!r} record for {r.get('method')!r} cannot enter a measured table")
    return records


def metric_value(record: dict, metric: str, part: str = "figures") -> float:
    """A figure (``part`` = ``figures`` or ``unseen``) or the training time."""
    return record["times"]["train_seconds"] if metric == "train_seconds" else record[part][metric]


def _format(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if metric == "train_seconds" else f"{value:.4f}"


def _rows(records: list[dict]) -> list[tuple[str, str]]:
    """(method, mode) pairs in first-seen order."""
    return list(dict.fromkeys((r["method"], r["mode"]) for r in records))


def metric_table(records: Iterable[dict], metric: str, bits: Sequence[int], part: str = "figures") -> str:
    """Method | mode | one column per code length (the float baseline has no codes: its value fills every column)."""
    records = [r for r in check_measured(records) if part in r]
    cell = {(r["method"], r["mode"], r["bits"]): metric_value(r, metric, part) for r in records}
    body = []
    for method, mode in _rows(records):
        if (method, mode, None) in cell:
            values = [cell[(method, mode, None)]] * len(bits)
            method = f"{method} (cosine, no codes)"
        else:
            values = [cell.get((method, mode, b)) for b in bits]
        body.append([method, mode, *(_format(metric, v) for v in values)])
    return markdown_table(["method", "mode", *(f"{b} bits" if b else "value" for b in bits)], body)


def cost_table(records: Iterable[dict], bits: int | None) -> str:
    """Size and speed at one code length (plus the float baseline)."""
    body = []
    for r in check_measured(records):
        if r["bits"] not in (bits, None):
            continue
        t, c = r["times"], r["costs"]
        drop = t.get("time_drop_ratio")
        body.append([r["method"], r["mode"], "—" if r["bits"] is None else str(r["bits"]),
                     f"{c['parameters'] / 1e6:.2f} M",
                     "—" if "checkpoint_bytes" not in c else f"{c['checkpoint_bytes'] / 1e6:.3f} MB",
                     _ms(t.get("forward_ms_batch1")), _ms(t.get("forward_ms_batch32")),
                     _ms(t.get("coarse_to_fine_ms_per_query")), _ms(t.get("linear_ms_per_query")),
                     "—" if drop is None else f"{drop:.2f}"])
    return markdown_table(["method", "mode", "bits", "parameters", "checkpoint on disk", "forward ms/img (batch 1)",
                          "forward ms/img (batch 32)", "coarse-to-fine ms/query", "linear float ms/query",
                          "time drop 1 - t_hashed/t_linear"], body)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def query_time_table(records: Iterable[dict], bits: int | None) -> str | None:
    """Every float method's linear cosine scan beside each hashed method's coarse-to-fine search at ``bits``
    (a Hamming shortlist re-ranked by cosine), ms per query over the protocol's whole database, both
    measured by ``eval.cost.search_ms_per_query`` on the same machine; a hashed row's own linear scan
    (its float vectors, the same run) is the like-for-like reference. None without such records."""
    chosen = [r for r in check_measured(records) if r["bits"] in (bits, None) and "linear_ms_per_query" in r["times"]]
    if not chosen:
        return None
    body = []
    for r in sorted(chosen, key=lambda r: (r["bits"] is not None, r["method"])):
        t, dim = r["times"], r["costs"].get("vector_dim")
        floats = f"{dim} floats" if dim else "floats"
        vector = floats if r["bits"] is None else f"{r['bits']} bits, then {floats}"
        body.append([r["method"], r["mode"], vector, f"{r['figures']['map_all']:.4f}", _ms(t["linear_ms_per_query"]),
                     _ms(t.get("coarse_to_fine_ms_per_query")), _ms(t.get("forward_ms_batch1")),
                     r.get("created", "—")[:16].replace("T", " ")])
    return markdown_table(["method", "mode", "searched", "mAP@all", "linear cosine scan ms/query",
                          "coarse-to-fine ms/query", "forward ms/img (batch 1)", "measured (UTC)"], body)


def quoted_table(quoted: Iterable[dict]) -> str:
    """Figures reported by the papers, each row marked quoted; never mixed with measured ones."""
    body = []
    for q in quoted:
        if q.get("source") != "quoted":
            raise ValueError(f"{q!r} is not a quoted figure")
        body.append(["quoted", q["reference"], q["method"], q["metric"], str(q["bits"] or "—"), f"{q['value']:g}",
                     q["setting"]])
    return markdown_table(["source", "reference", "method", "metric", "bits", "value", "their setting"], body)


def protocol_table(records: Iterable[dict]) -> str:
    """One row per protocol: dataset, split sizes, seed, backbone and the rules every figure follows."""
    seen: dict[str, dict] = {}
    for r in check_measured(records):
        seen.setdefault(r["protocol"]["name"], r["protocol"])
    body = []
    for name, p in seen.items():
        s = p["sizes"]
        unseen = f" Unseen classes: {', '.join(p['unseen_classes'])}." if p["unseen_classes"] else ""
        body.append([name, p["dataset"], str(s["query"]), str(s["database"]), str(s["train"]),
                     str(s.get("validation", "—")), str(p["seed"]), p["backbone"],
                     " ".join(p["description"].split()) + unseen])
    return markdown_table(["protocol", "dataset", "queries", "database", "training", "validation", "seed", "backbone",
                          "split"], body)


def protocol_notes(records: Iterable[dict]) -> str:
    first = check_measured(records)[0]["protocol"]
    return (f"- Ties: {first['tie_rule']}.\n- {first['map_definition']}.\n"
            "- P@20: mean share of relevant items in the first 20; top-8 vote accuracy: the majority class "
            "of the 8 nearest database items (a class tie goes to the nearest member) equals the query's class.\n"
            "- Relevant = same class. Hashed methods rank by Hamming distance, the float baseline by cosine.")


def reference_bits(records: Sequence[dict]) -> int | None:
    """48 bits when measured (the papers' usual length), else the longest code length present."""
    return reference_length(r["bits"] for r in records)


def reference_length(bits: Iterable[int | None]) -> int | None:
    """48 when among ``bits``, else the longest; None when there is no code length."""
    lengths = sorted({b for b in bits if b is not None})
    if not lengths:
        return None
    return REFERENCE_BITS if REFERENCE_BITS in lengths else lengths[-1]


def best_record(records: Sequence[dict], bits: int | None) -> dict:
    """Highest mAP@all at ``bits`` (ties: first listed)."""
    at = [r for r in records if r["bits"] == bits] or list(records)
    return max(at, key=lambda r: r["figures"]["map_all"])


def confusion_record(records: Sequence[dict]) -> dict | None:
    """The run whose confusion matrix is plotted: the best at the reference length among those that
    have one (runs carried over from a page's JSON may not)."""
    with_confusion = [r for r in records if "confusion_matrix" in r["figures"] and "classes" in r]
    return best_record(with_confusion, reference_bits(records)) if with_confusion else None


def protocol_plots(records: Sequence[dict], folder: str | Path, protocol: str, prefix: str = "") -> dict[str, Path]:
    """mAP vs bits, P-R and precision@k at the reference length, and the confusion matrix of the best run there."""
    folder = Path(folder)
    bits = reference_bits(records)
    at_bits = [r for r in records if r["bits"] in (bits, None)]
    length = "" if bits is None else f"-{bits}b"   # float-only runs have no code length
    out = {"map_vs_bits": plots.plot_map_vs_bits(records, folder / f"{prefix}map-vs-bits.png", protocol),
           "precision_at_k": plots.plot_precision_curves(at_bits, folder / f"{prefix}precision-at-k{length}.png",
                                                         protocol, bits)}
    if bits is not None:
        out["pr_curve"] = plots.plot_pr_curves(at_bits, folder / f"{prefix}pr-{bits}b.png", protocol, bits)
    best = confusion_record(records)
    if best is not None:
        name = best["method"].replace("+", "_")
        out["confusion"] = plots.plot_confusion(best, folder / f"{prefix}confusion-{name}{length}.png", protocol)
    return out


def write_json(path: str | Path, payload) -> Path:
    """Strict JSON (a NaN figure is a bug, not a value), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False) + "\n")


def _protocol_sections(records: list[dict], bits: Sequence[int], images: dict[str, Path],
                       relative_to: Path) -> list[str]:
    out = []
    for metric, label in METRICS.items():
        out += [f"**{label}**", "", metric_table(records, metric, bits), ""]
    out += class_sections(records, bits)
    ref = reference_bits(records)
    out += [f"**Size and speed at {ref} bits** (timings on shared cores: indicative)", "", cost_table(records, ref), ""]
    times = query_time_table(records, ref)
    if times:
        out += [f"**Query time: float methods beside hashing at {ref} bits** (ms per query over the whole database, "
                "mean over up to 100 test queries; linear: cosine to every database vector and a full sort; "
                "coarse-to-fine: the 100 nearest codes by Hamming distance (FAISS flat), re-ranked by cosine on "
                "their float vectors; each row timed in its own run, on shared cores)", "", times, ""]
    for key, path in images.items():
        out += [f"![{key}]({path.relative_to(relative_to).as_posix()})", ""]
    return out


def write_report(records: Sequence[dict], out_dir: str | Path, title: str) -> dict[str, Path]:
    """A ``hashseek eval`` folder: ``results.json`` (every figure), ``summary.md`` and the PNG plots."""
    out_dir = Path(out_dir)
    records = check_measured(records)
    written = {"json": write_json(out_dir / "results.json", {"records": records})}
    lines = [f"# {title}", "", protocol_table(records), "", protocol_notes(records), ""]
    for protocol in dict.fromkeys(r["protocol"]["name"] for r in records):
        rows = [r for r in records if r["protocol"]["name"] == protocol]
        bits = sorted({r["bits"] for r in rows if r["bits"] is not None}) or [None]
        images = protocol_plots(rows, out_dir, protocol, prefix=f"{protocol}-")
        written.update({f"{protocol}-{k}": v for k, v in images.items()})
        lines += [f"## {protocol}", ""] + _protocol_sections(rows, bits, images, out_dir)
    written["markdown"] = out_dir / "summary.md"
    written["markdown"].write_text("\n".join(lines))
    return written


def split_marked(record: dict, current: Protocol | None) -> dict:
    """The record as the page shows it: its mode (and its protocol's name, for the protocol table) say
    whether it was measured on ``current``'s split or an older one; so no row holds both."""
    if current is None:
        return record
    label = CURRENT if same_split(record, current) else OLDER
    protocol = record["protocol"] if label == CURRENT else \
        {**record["protocol"], "name": f"{record['protocol']['name']} ({OLDER})"}
    return {**record, "mode": f"{record['mode']}; {label}", "protocol": protocol}


def write_results_page(records: Sequence[dict], quoted: Sequence[dict], page: str | Path, command: str,
                       machine: dict, protocols: Sequence[str], bits: Sequence[int],
                       splits: dict[str, Protocol] | None = None, trained: Sequence[dict] = ()) -> Path:
    """``docs/results.md``: the command, the machine, the protocol table, then per protocol the measured
    tables and plots, the ``hashseek train`` runs, and apart from them the quoted figures; plots and
    per-protocol JSON go beside it. ``splits``: each protocol's current split; a record measured on another
    split is marked older. ``trained``: ``trained_runs.trained_record`` records (a user source's runs, whose
    split is no protocol's, get a section of their own)."""
    page = Path(page)
    folder = page.with_suffix("")
    records = check_measured(records)
    splits = splits or {}
    shown = [split_marked(r, splits.get(r["protocol"]["name"])) for r in records]
    older = sum(r["mode"].endswith(OLDER) for r in shown)
    lines = ["# Results", "", "Regenerated by:", "", "```", command, "```", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, no GPU; "
             f"Python {machine['python']}, torch {machine['torch']}, numpy {machine['numpy']}.", "",
             "Every measured row states the mode that produced it (deep heads trained on frozen backbone maps "
             "on CPU, shallow hashers fitted on frozen pooled features) and its training time. Rows marked "
             "*quoted* are the papers' own figures, on their own data and backbones: they are listed for "
             "orientation only and never mixed into the measured tables. Times (training, search) are those of "
             "the run that produced each row: rows carried over with `--reuse` keep their original run's times "
             "(its date is `created` in the per-protocol JSON).", ""]
    if trained:
        lines += [f"The *Trained with `hashseek train`* tables ({len(trained)} runs) are the path users run: the "
                  "source's split with validation images held out, the epoch chosen on them, the test queries read "
                  "once; each row names its mode, backbone, input size and device. `benchmarks/run_all.py "
                  f"--trained RUN` keeps a run's figures in `{folder.name}/trained/`.", ""]
    if splits:
        lines += [f"Every row's mode says the split it was measured on: *{CURRENT}* (the shipped split: training "
                  "on its training images, epochs and settings selected on its validation images) or "
                  f"*{OLDER}* ({older} runs, carried over with `--reuse`: measured before the protocol held out "
                  "its validation images, on the whole training list, with a fixed number of epochs; their "
                  "sizes are the protocol table's \"older protocol\" rows). The two are never merged into one "
                  "row; where a method was measured on both, the current row alone is kept.", ""]
    lines += ["## Protocols", ""]
    lines += [protocol_table(shown), "", protocol_notes(records), ""] if records else ["Nothing measured yet.", ""]
    for protocol in protocols:
        rows = [r for r in records if r["protocol"]["name"] == protocol]
        marked = [split_marked(r, splits.get(protocol)) for r in rows]
        cited = [q for q in quoted if q["protocol"] == protocol]
        ours = _trained_lines(trained, protocol, page)
        if not rows and not cited and not ours:
            continue
        lines += [f"## {protocol}", ""]
        if rows:
            images = protocol_plots(marked, folder, protocol, prefix=f"{protocol}-")
            best = confusion_record(rows)
            write_json(folder / f"{protocol}.json",
                       {"command": command, "records": [_for_page_json(r, keep_confusion=r is best) for r in rows]})
            lines += _protocol_sections(marked, bits, images, page.parent)
        elif not ours:
            lines += ["Not measured in this run.", ""]
        lines += ours
        if cited:
            lines += ["**Quoted from the papers (not measured here)**", "", quoted_table(cited), ""]
    for source in dict.fromkeys(r["split"]["name"] for r in trained if r["split"]["name"] not in protocols):
        lines += [f"## {source} (a user's source, its own split)", "", *_trained_lines(trained, source, page)]
    page.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(page, "\n".join(lines))


def _trained_lines(trained: Sequence[dict], split_name: str, page: Path) -> list[str]:
    """The ``hashseek train`` tables of one split, and their plot over code length where a setting has two."""
    lines = trained_sections(trained, split_name)
    curves = trained_curves([r for r in trained if r["split"]["name"] == split_name])
    if curves:
        name = split_name.replace("/", "_")
        plot = plots.plot_trained_vs_bits(curves, page.with_suffix("") / f"{name}-trained-vs-bits.png", split_name)
        lines += [f"![trained_vs_bits]({plot.relative_to(page.parent).as_posix()})", ""]
    return lines


def _for_page_json(record: dict, keep_confusion: bool) -> dict:
    """Per-protocol JSON beside the page: every figure, and the confusion matrix of the best run only
    (the plotted one; the others stay in the run cache), so that the page can be rebuilt from it."""
    out = {k: v for k, v in record.items() if k != "cached"}
    if keep_confusion:
        return out
    out["figures"] = {k: v for k, v in record["figures"].items() if k != "confusion_matrix"}
    for part in ("seen", "unseen"):
        if part in record:
            out[part] = {k: v for k, v in record[part].items() if k != "confusion_matrix"}
    out.pop("classes", None)
    return out
