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

A source that ships its own split (every image under a top-level ``train/``, ``val/`` or ``test/``
folder, each holding class folders, as most public datasets come) keeps it: its figures are then
comparable with the dataset's own. A missing validation or test part is drawn from the training
images by the rules above; ``SplitSettings(folders=False)`` (``--resplit``) pools the images and
draws a random split instead.

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
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                 "validation": "validation", "dev": "validation", "test": "query", "testing": "query"}


@dataclass(frozen=True)
class SplitSettings:
    """How a user's source is split (the one place of these defaults)."""

    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    database: str = "split"          # split: training + validation images; all: every image, leave-one-out
    folders: bool = True             # keep the source's own train/ val/ test/ folders when it has them

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


def _carve(n: int, fraction: float) -> int:
    """How many of a class's ``n`` training images a missing part takes (one at least, one left to train)."""
    return min(max(1, _round(n * fraction)), n - 1) if n >= 2 else 0


def split_folders(dataset: ImageDataset) -> dict[str, list[str]]:
    """The source's own split, part -> the top-level folders giving it (e.g. ``{"train": ["train"],
    "query": ["test"]}``), when every labelled image sits in a class folder under one of ``SPLIT_FOLDERS``
    and a training part comes with a validation or a test part; else ``{}``."""
    found: dict[str, set[str]] = {}
    for record in dataset.records:
        if record.label < 0:
            continue
        top, _, rest = record.id.partition("/")
        part = SPLIT_FOLDERS.get(top.casefold())
        if part is None or "/" not in rest:       # part/class/image: the class folder sits inside the part
            return {}
        found.setdefault(part, set()).add(top)
    if "train" not in found or len(found) < 2:
        return {}
    return {part: sorted(found[part]) for part in PARTS if part in found}


def split_source(dataset: ImageDataset, settings: SplitSettings = SplitSettings(), *,
                 excluded: dict[str, str] | None = None, source: str | None = None) -> Protocol:
    """The seeded, stratified split of ``dataset``'s labelled images (or the source's own split folders);
    ``excluded`` (id -> reason, e.g. unreadable) are left out and recorded; ``source`` (a path) is what
    reopens the dataset later."""
    excluded = dict(excluded or {})
    folders = split_folders(dataset) if settings.folders else {}
    groups: dict[int, list[str]] = {}
    for record in dataset.records:
        if record.label >= 0 and record.id not in excluded:
            groups.setdefault(record.label, []).append(record.id)
    if len(groups) < 2:
        raise InvalidInputError(f"{dataset.name}: a split needs at least two classes with readable images, "
                                f"found {len(groups)}")
    rng = np.random.default_rng(settings.seed)
    query, validation, train = [], [], []
    for label, ids in sorted(groups.items()):
        q, v, t = _given_parts(ids, folders, settings, rng) if folders else _drawn_parts(ids, settings, rng)
        query, validation, train = query + q, validation + v, train + t
    if folders and settings.database != "all":
        known = set(dataset.labels(train + validation).tolist())
        unfindable = [i for i, label in zip(query, dataset.labels(query)) if label not in known]
        excluded.update(dict.fromkeys(unfindable, "a test image of a class with no training or validation "
                                                  "image: the database holds nothing to find"))
        query = [i for i in query if i not in excluded]
    everything = train + validation + (query if settings.database == "all" else [])
    return Protocol(
        f"{dataset.name}-split", source or dataset.name, settings.seed, _description(settings, folders),
        _ordered(query, dataset), _ordered(everything, dataset), _ordered(train, dataset),
        validation=_ordered(validation, dataset), excluded=excluded, leave_one_out=settings.database == "all",
        folders=folders)


def _drawn_parts(ids: list[str], s: SplitSettings, rng: np.random.Generator) -> tuple[list, list, list]:
    """(test queries, validation, training) of one class, drawn at random by the small-class rules."""
    shuffled = [ids[i] for i in rng.permutation(len(ids))]
    _, n_val, n_test = class_plan(len(ids), s.val_fraction, s.test_fraction)
    return shuffled[:n_test], shuffled[n_test:n_test + n_val], shuffled[n_test + n_val:]


def _given_parts(ids: list[str], folders: dict[str, list[str]], s: SplitSettings,
                 rng: np.random.Generator) -> tuple[list, list, list]:
    """One class's parts from the source's folders; a part the source lacks is drawn from its training images."""
    by_part: dict[str, list[str]] = {part: [] for part in PARTS}
    for image_id in ids:
        by_part[SPLIT_FOLDERS[image_id.partition("/")[0].casefold()]].append(image_id)
    train = [by_part["train"][i] for i in rng.permutation(len(by_part["train"]))]
    query, validation = by_part["query"], by_part["validation"]
    if "query" not in folders:
        n = _carve(len(train), s.test_fraction)
        query, train = train[:n], train[n:]
    if "validation" not in folders:
        n = _carve(len(train), s.val_fraction)
        validation, train = train[:n], train[n:]
    return query, validation, train


def _description(s: SplitSettings, folders: dict[str, list[str]]) -> str:
    database = ("every image of the source, each query left out of its own ranking" if s.database == "all"
                else "the training and validation images")
    if not folders:
        return (f"Seeded stratified split of a labelled source: per class {s.test_fraction:.0%} test queries, "
                f"{s.val_fraction:.0%} validation (selection), the rest training; every class keeps a training "
                f"image, a class of 1 gives no query, of 2 no validation image. Database: {database}.")
    names = {"train": "training", "validation": "validation (selection)", "query": "test queries"}
    given = "; ".join(f"{', '.join(f + '/' for f in fs)} -> {names[part]}" for part, fs in folders.items())
    drawn = [f"{fraction:.0%} of each class's training images drawn as {names[part]} (seed {s.seed})"
             for part, fraction in (("query", s.test_fraction), ("validation", s.val_fraction))
             if part not in folders]
    return (f"The source's own split folders: {given}" + (f"; {'; '.join(drawn)}" if drawn else "")
            + f". Database: {database}.")


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
    if protocol.folders:
        lines.append(f"{protocol.description} (--resplit draws a random split of all the images instead)")
    lines += folder_label_notes(protocol.database + protocol.query, under_split_folders=bool(protocol.folders))
    note = not_read_note(dataset.ignored)   # e.g. a video, or an iPhone's .heic without pillow-heif
    if note:
        lines.append(note)
    if protocol.excluded:
        lines.append(f"{len(protocol.excluded)} image(s) left out of every part:")
        lines += [f"  {image_id}: {reason}" for image_id, reason in sorted(protocol.excluded.items())]
    return lines
