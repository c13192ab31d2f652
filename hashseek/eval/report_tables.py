"""The results page's class-wise tables: each trained model's own classifier beside its code vote, and the
seen- and unseen-class queries of an unseen-classes protocol side by side.

The classifier comparison follows "How should we evaluate supervised hashing?" (arXiv 1609.06753): a
supervised hash model's top-k vote is only worth its codes if it is read beside what the model's own
classifier gets on the same queries. The seen/unseen tables show what codes learned on some classes do
for classes never trained on (Bilinear-HashNet's unseen-class setting).
"""
from __future__ import annotations

from typing import Iterable, Sequence

CLASS_METRICS = {"map_all": "mAP@all", "precision_at_20": "P@20", "vote_accuracy_top8": "top-8 vote accuracy"}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the one table writer of the reports and the results page."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _figure(record: dict, part: str, key: str) -> float | None:
    return record.get(part, {}).get(key)


def classifier_table(records: Sequence[dict]) -> str | None:
    """One row per trained model with a classifier: its classifier's top-1 accuracy and the top-8 vote over
    its codes on the same queries (and per part, seen and unseen classes, where the protocol has both);
    None when no record has a classifier."""
    rows = sorted((r for r in records if "classifier_accuracy" in r["figures"]),
                  key=lambda r: (r["method"], r["mode"], r["bits"] or 0))
    if not rows:
        return None
    parts = [p for p in ("seen", "unseen") if any(p in r for r in rows)]
    header = ["method", "mode", "bits", "own classifier top-1", "top-8 vote (codes)", "vote - classifier"]
    header += [f"{p}: {what}" for p in parts for what in ("classifier", "vote")]
    body = []
    for r in rows:
        f = r["figures"]
        line = [r["method"], r["mode"], str(r["bits"]), _cell(f["classifier_accuracy"]),
                _cell(f["vote_accuracy_top8"]), f"{f['vote_accuracy_top8'] - f['classifier_accuracy']:+.4f}"]
        line += [_cell(_figure(r, p, key)) for p in parts for key in ("classifier_accuracy", "vote_accuracy_top8")]
        body.append(line)
    return markdown_table(header, body)


def seen_unseen_table(records: Sequence[dict], metric: str, bits: Sequence[int | None]) -> str:
    """Method | mode | one "seen / unseen" cell per code length (the float baseline fills every column)."""
    cell = {(r["method"], r["mode"], r["bits"]): f"{_cell(_figure(r, 'seen', metric))} / "
                                                 f"{_cell(_figure(r, 'unseen', metric))}" for r in records}
    body = []
    for method, mode in dict.fromkeys((r["method"], r["mode"]) for r in records):
        if (method, mode, None) in cell:
            body.append([f"{method} (cosine, no codes)", mode, *[cell[(method, mode, None)]] * len(bits)])
        else:
            body.append([method, mode, *(cell.get((method, mode, b), "—") for b in bits)])
    return markdown_table(["method", "mode", *(f"{b} bits" if b else "value" for b in bits)], body)


def class_sections(records: Sequence[dict], bits: Sequence[int | None]) -> list[str]:
    """Markdown lines: the seen/unseen tables (records with an unseen part), then the classifier table."""
    out = []
    split = [r for r in records if "unseen" in r]
    if split:
        seen = next((r["seen"]["classes"] for r in split if "seen" in r), None)
        unseen = split[0]["unseen"]["classes"]
        out += [f"**Seen-class queries / unseen-class queries** (seen: the {len(seen) if seen else '?'} trained "
                f"classes; unseen, never trained on: {', '.join(unseen)}; one database of every class; "
                "each cell is seen / unseen)", ""]
        for metric, label in CLASS_METRICS.items():
            out += [f"*{label}, seen / unseen*", "", seen_unseen_table(split, metric, bits), ""]
    table = classifier_table(records)
    if table:
        out += ["**Own classifier vs code vote** (the test queries' top-1 accuracy of each model's own classifier "
                "beside the top-8 vote over its codes, as arXiv 1609.06753 asks; a classifier was never trained "
                "on the unseen classes, so it can hardly name them)", "", table, ""]
    return out
