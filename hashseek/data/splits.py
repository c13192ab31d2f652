"""An honest split of a user's labelled source: seeded, stratified, written down as id lists.

Each class is shuffled with the seed and cut into test queries, validation images and training
images. Selection (epochs, checkpoint, settings) only ever sees the validation images; the test
queries are read once, for the final figures, against a database of the training and validation
images (the library a user would search), or of every image with ``database="all"`` (each query
left out of its own ranking). Small classes follow fixed rules instead of vanishing:

- every class keeps at least one training image (and so at least one database image);
- a class of one image gives no test query, a class of two no validation image: they are listed
  in the split's summary as untested / unvalidated, never dropped silently;
- unreadable files (and a collection's unlabelled images) are in no part; the split records them
  with the reason.

The result is a ``Protocol`` (``hashseek.data.protocols``), saved as ``split.json.gz`` beside a model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hashseek.core.errors import InvalidInputError
from hashseek.data.datasets import ImageDataset, folder_label_notes, not_read_note
from hashseek.data.protocols import Protocol

DATABASES = ("split", "all")
PARTS = ("train", "validation", "query")


@dataclass(frozen=True)
class SplitSettings:
    """How a user's source is split (the one place of these defaults)."""

    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    database: str = "split"          # split: training + validation images; all: every image, leave-one-out

    def __post_init__(self):
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise InvalidInputError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.val_fraction + self.test_fraction >= 1:
            raise InvalidInputError(f"val-fraction + test-fraction must leave images to train on, "
                                    f"got {self.val_fraction} + {self.test_fraction}")
        if self.database not in DATABASES:
            raise InvalidInputError(f"database must be one of {', '.join(DATABASES)}, got {self.database!r}")


def class_plan(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(training, validation, test) counts of a class of ``n`` images, by the small-class rules."""
    n_test = min(max(1, _round(n * test_fraction)), n - 1) if n >= 2 else 0
    rest = n - n_test
    n_val = min(max(1, _round(n * val_fraction)), rest - 1) if rest >= 2 else 0
    return rest - n_val, n_val, n_test


def _round(x: float) -> int:
    """Half up (Python's round sends 2.5 to 2)."""
    return int(x + 0.5)


def split_source(dataset: ImageDataset, settings: SplitSettings = SplitSettings(), *,
                 excluded: dict[str, str] | None = None, source: str | None = None) -> Protocol:
    """The seeded, stratified split of ``dataset``'s labelled images; ``excluded`` (id -> reason, e.g.
    unreadable) are left out and recorded; ``source`` (a path) is what reopens the dataset later."""
    excluded = dict(excluded or {})
    rng = np.random.default_rng(settings.seed)
    groups: dict[int, list[str]] = {}
    for record in dataset.records:
        if record.label >= 0 and record.id not in excluded:
            groups.setdefault(record.label, []).append(record.id)
    if len(groups) < 2:
        raise InvalidInputError(f"{dataset.name}: a split needs at least two classes with readable images, "
                                f"found {len(groups)}")
    query, validation, train = [], [], []
    for label, ids in sorted(groups.items()):
        shuffled = [ids[i] for i in rng.permutation(len(ids))]
        n_train, n_val, n_test = class_plan(len(ids), settings.val_fraction, settings.test_fraction)
        query += shuffled[:n_test]
        validation += shuffled[n_test:n_test + n_val]
        train += shuffled[n_test + n_val:]
    everything = train + validation + (query if settings.database == "all" else [])
    return Protocol(
        f"{dataset.name}-split", source or dataset.name, settings.seed, _description(settings),
        _ordered(query, dataset), _ordered(everything, dataset), _ordered(train, dataset),
        validation=_ordered(validation, dataset), excluded=excluded, leave_one_out=settings.database == "all")


def _description(s: SplitSettings) -> str:
    database = ("every image of the source, each query left out of its own ranking" if s.database == "all"
                else "the training and validation images")
    return (f"Seeded stratified split of a labelled source: per class {s.test_fraction:.0%} test queries, "
            f"{s.val_fraction:.0%} validation (selection), the rest training; every class keeps a training "
            f"image, a class of 1 gives no query, of 2 no validation image. Database: {database}.")


def _ordered(ids: list[str], dataset: ImageDataset) -> list[str]:
    """Dataset order: the database order (the tie rule) does not depend on the seed."""
    chosen = set(ids)
    return [i for i in dataset.ids if i in chosen]


def split_counts(protocol: Protocol, dataset: ImageDataset) -> dict[str, dict[str, int]]:
    """class -> images in each part (``train``, ``validation``, ``query``, ``database``)."""
    counts = {c: dict.fromkeys((*PARTS, "database"), 0) for c in dataset.classes}
    for part in (*PARTS, "database"):
        for label in dataset.labels(getattr(protocol, part)):
            counts[dataset.classes[label]][part] += 1
    return counts


def split_lines(protocol: Protocol, dataset: ImageDataset, per_class: bool = True) -> list[str]:
    """The split as a reader checks it: sizes, per-class counts (Markdown), what was left out and why."""
    sizes = protocol.sizes()
    counts = split_counts(protocol, dataset)
    lines = [f"split {protocol.name} (seed {protocol.seed}): {sizes['train']} training, {sizes['validation']} "
             f"validation, {sizes['query']} test queries; database {sizes['database']} images"
             + (" (leave-one-out)" if protocol.leave_one_out else "")]
    if per_class:
        lines += ["", "| class | training | validation | test queries | database |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {n['train']} | {n['validation']} | {n['query']} | {n['database']} |"
                  for c, n in counts.items()]
        lines.append("")
    trained = [c for c, n in counts.items() if n["train"]]
    untested = [c for c in trained if not counts[c]["query"]]
    unvalidated = [c for c in trained if not counts[c]["validation"]]
    if untested:
        lines.append(f"{len(untested)} class(es) too small for a test query (trained on, in the database, "
                     f"not tested): {', '.join(untested)}")
    if unvalidated:
        lines.append(f"{len(unvalidated)} class(es) too small for a validation image: {', '.join(unvalidated)}")
    lines += folder_label_notes(protocol.database + protocol.query)
    note = not_read_note(dataset.ignored)   # e.g. a video, or an iPhone's .heic without pillow-heif
    if note:
        lines.append(note)
    if protocol.excluded:
        lines.append(f"{len(protocol.excluded)} image(s) left out of every part:")
        lines += [f"  {image_id}: {reason}" for image_id, reason in sorted(protocol.excluded.items())]
    return lines
