"""Keep a collection in step with a folder: new files in, deleted files out, rewritten files re-encoded.

A sync walks the folder (one ``stat`` per image file) and compares it with the library rows whose
source is a path under it. A file whose size, mtime and ctime match what was recorded with its
content hash (``search.file_stats``) is unchanged without being read; any other is hashed (sha256):
same bytes, unchanged; new bytes, re-encoded. Bytes already in the library (a moved or copied file)
take that row's stored features and code instead of being decoded, and a removed source that
comes back with its old bytes is restored.

Crash safety is ``add``'s: every batch is one SQLite transaction (a changed file's new row
replaces its old one inside it), removals are one more, so a killed sync leaves each file either
synced or not, and the next sync finishes the rest. Removal never follows from what could not be
seen: a subfolder that cannot be read keeps its entries, and a folder with no images at all (an
unmounted disk) would remove everything, so it is refused unless ``allow_empty``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hashseek.core.errors import ConflictError, InvalidInputError, NotFoundError
from hashseek.core.hasher import ImageHasher
from hashseek.data.datasets import (BAD_NAME, file_kind, is_bad_name, is_hidden_name, is_image_name,
                                    is_skipped_folder, printable_name)
from hashseek.data.loader import iter_batches
from hashseek.search import file_stats
from hashseek.search.file_stats import FileStat
from hashseek.search.metadata import NewRow
from hashseek.search.store import LibraryStore

log = logging.getLogger(__name__)
VANISHED = "vanished during the sync"


@dataclass
class SyncReport:
    """What a sync did, by source path. ``copied``: added or updated from the stored features of the same
    bytes, without decoding; ``vanished``: files seen by the walk but gone when read (those that were in
    the library are also in ``removed``); ``not_images``: files passed over for their names, by suffix (as
    ``AddReport.not_images``); ``timings``: seconds of each stage."""

    folder: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    unchanged: int = 0
    copied: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    vanished: list[str] = field(default_factory=list)
    not_images: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.updated or self.relabelled)

    def __str__(self) -> str:
        text = (f"added {len(self.added)}, removed {len(self.removed)}, updated {len(self.updated)}, "
                f"unchanged {self.unchanged}, unreadable {len(self.unreadable)}")
        extra = [f"{n} {what}" for n, what in ((len(self.relabelled), "relabelled"), (len(self.vanished), "vanished"),
                                               (self.copied, "taken from stored features")) if n]
        return text + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Row:
    id: int
    content_hash: str | None
    label: str | None
    in_library: bool


@dataclass
class Plan:
    """The walk compared with the library: what to read, and what each file turned out to be."""

    root: Path
    files: dict[str, tuple[str, FileStat]]          # source -> (path relative to root, stat)
    rows: dict[str, Row]                            # source -> its row (library or removed)
    blind: list[tuple[str, str]]                    # (path prefix, reason) of subfolders that could not be read
    not_images: dict[str, int] = field(default_factory=dict)   # files passed over for their names, by suffix
    hashes: dict[str, str] = field(default_factory=dict)

    def label(self, source: str) -> str | None:
        parent = os.path.dirname(self.files[source][0])
        return os.path.basename(parent) if parent else None


def sync_folder(store: LibraryStore, image_hasher: ImageHasher, folder: str | Path, exclude: Path,
                labels_from_folders: bool, allow_empty: bool, batch_size: int, workers: int | None,
                progress: bool) -> SyncReport:
    """Bring the library rows under ``folder`` in step with its image files (``exclude``: the collection's
    own directory, skipped when it lies inside the folder)."""
    start = time.perf_counter()
    root = checked_folder(folder)
    report = SyncReport(str(root))
    plan = walk(root, exclude.expanduser().resolve())
    report.unreadable += [(prefix.rstrip(os.sep), reason) for prefix, reason in plan.blind]
    report.not_images = plan.not_images
    prefix = str(root).rstrip(os.sep) + os.sep
    plan.rows = library_rows(store, prefix)
    gone = [s for s, row in plan.rows.items() if row.in_library and s not in plan.files
            and not any(s.startswith(unseen) for unseen, _ in plan.blind)]
    in_library = sum(row.in_library for row in plan.rows.values())
    if not plan.files and in_library and not allow_empty:
        raise ConflictError(f"{root} holds no images: syncing would remove all {in_library} images that came from "
                            "it. Is a disk unmounted? Pass allow_empty (--allow-empty) to remove them")
    report.timings["walk"] = time.perf_counter() - start

    stats = hash_changed(store, plan, report, workers, progress)
    adds, updates, restores = [], [], []
    for source in plan.files:
        row, digest = plan.rows.get(source), plan.hashes.get(source)
        if digest is None:      # unreadable, vanished, or unchanged by its recorded stat
            continue
        if row is None or not row.in_library:
            (restores if row is not None and row.content_hash == digest else adds).append(source)
        elif row.content_hash is None or row.content_hash == digest:
            report.unchanged += 1
        else:
            updates.append(source)
    gone += [s for s in report.vanished if s in plan.rows and plan.rows[s].in_library]

    t = time.perf_counter()
    for source in restores:
        store.restore(plan.rows[source].id, NewRow(plan.files[source][0], source,
                                                   label=plan.label(source) if labels_from_folders else None))
        report.added.append(source)
    encoded = encode(store, image_hasher, plan, adds + updates, labels_from_folders, report, batch_size, workers,
                     progress)
    gone += [s for s in updates if s in report.vanished]
    if labels_from_folders:
        relabel(store, plan, report)
    report.timings["encode"] = time.perf_counter() - t

    t = time.perf_counter()
    if gone:
        store.remove(sorted(plan.rows[s].id for s in set(gone)))
        file_stats.forget(store.meta, gone)
        report.removed = sorted(set(gone))
    file_stats.save(store.meta, ((s, plan.files[s][1], plan.hashes[s]) for s in stats + encoded + restores),
                    time.time_ns())
    report.timings["remove"] = time.perf_counter() - t
    report.timings["total"] = time.perf_counter() - start
    if report.unreadable:
        log.warning("%s: %d files or folders could not be read, e.g. %s: %s", root, len(report.unreadable),
                    *report.unreadable[0])
    return report


def checked_folder(folder: str | Path) -> Path:
    """The folder, resolved; a missing, non-folder or unreadable one is a typed error before anything is done."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise NotFoundError(f"no such folder: {root}")
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a folder: sync needs a folder of image files")
    try:
        with os.scandir(root):
            pass
    except OSError as err:
        raise InvalidInputError(f"cannot read the folder {root}: {err.strerror or err}") from err
    return root.resolve()


def walk(root: Path, exclude: Path) -> Plan:
    """Every image file under ``root`` with its stat; subfolders that cannot be read are noted (``blind``),
    other files counted by suffix (``not_images``), as ``FolderDataset`` counts them."""
    files: dict[str, tuple[str, FileStat]] = {}
    blind: list[tuple[str, str]] = []
    not_images: Counter[str] = Counter()
    stack = [(root, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as entries:
                entries = list(entries)
        except OSError as err:
            blind.append((str(folder) + os.sep, f"folder not readable: {err.strerror or err}"))
            continue
        for entry in entries:
            name = rel + entry.name
            if is_bad_name(entry.name):   # not storable: reported, as an unreadable folder is
                blind.append((printable_name(str(root / name)), BAD_NAME))
                continue
            try:
                if entry.is_dir(follow_symlinks=False):   # as ``add_folder``: no loop through a linked folder
                    if Path(entry.path) != exclude and not is_skipped_folder(entry.path):   # as FolderDataset
                        stack.append((Path(entry.path), name + "/"))
                elif is_image_name(entry.name) and entry.is_file():
                    files[str(root / name)] = (name, FileStat.of(entry.stat()))
                elif not is_hidden_name(entry.name) and entry.is_file():
                    not_images[file_kind(entry.name)] += 1
            except OSError:   # gone between listing and stat: as if the walk had not seen it
                continue
    return Plan(root, files, {}, blind, dict(not_images))


def library_rows(store: LibraryStore, prefix: str) -> dict[str, Row]:
    """Rows (library and removed) whose source is a file path under ``prefix`` (archive members excluded)."""
    rows = store.meta.query("SELECT source, id, content_hash, label, in_library FROM images "
                            "WHERE substr(source, 1, ?) = ? AND instr(source, '::') = 0", (len(prefix), prefix))
    return {r[0]: Row(r[1], r[2], r[3], bool(r[4])) for r in rows}


def hash_changed(store: LibraryStore, plan: Plan, report: SyncReport, workers: int | None,
                 progress: bool) -> list[str]:
    """Hash every file whose recorded stat does not vouch for it; the sources of library files found
    unchanged by their bytes (their stats are recorded at the end)."""
    start = time.perf_counter()
    recorded = file_stats.load(store.meta, str(plan.root).rstrip(os.sep) + os.sep)
    todo = []
    for source, (_, stat) in plan.files.items():
        row, seen = plan.rows.get(source), recorded.get(source)
        if (row is not None and row.in_library and seen is not None and seen[0] == stat
                and seen[1] == row.content_hash):
            report.unchanged += 1
        else:
            todo.append(source)

    def digest(source: str) -> tuple[str, str | None, str | None]:
        try:
            with open(source, "rb") as f:
                return source, hashlib.file_digest(f, "sha256").hexdigest(), None
        except FileNotFoundError:
            return source, None, VANISHED
        except OSError as err:
            return source, None, err.strerror or str(err)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        bar = tqdm(pool.map(digest, todo), total=len(todo), desc=f"hashing {plan.root.name}", unit="file",
                   disable=not progress or len(todo) < 1000)
        for source, value, reason in bar:
            if value is not None:
                plan.hashes[source] = value
            elif reason == VANISHED:
                report.vanished.append(source)
            else:
                report.unreadable.append((source, reason))
    report.timings["hash"] = time.perf_counter() - start
    unchanged = [s for s in todo if s in plan.hashes and (row := plan.rows.get(s)) is not None and row.in_library
                 and row.content_hash in (None, plan.hashes[s])]
    adopted = [(plan.hashes[s], plan.rows[s].id) for s in unchanged if plan.rows[s].content_hash is None]
    if adopted:   # rows from before content hashes were kept take the bytes they find
        with store.meta.transaction(searchable=False) as db:
            db.executemany("UPDATE images SET content_hash = ? WHERE id = ?", adopted)
    return unchanged


def encode(store: LibraryStore, image_hasher: ImageHasher, plan: Plan, sources: list[str], labels_from_folders: bool,
           report: SyncReport, batch_size: int, workers: int | None, progress: bool) -> list[str]:
    """Add new files and replace the rows of changed ones, batch by batch; bytes already in the library
    take its stored features. Returns the sources now synced."""
    twin_labels: dict[str, str | None] = {}   # a moved file keeps the label its bytes had

    def new_row(source: str) -> NewRow:
        row = plan.rows.get(source)
        label = (plan.label(source) if labels_from_folders else
                 row.label if row is not None and row.label is not None else twin_labels.get(source))
        return NewRow(plan.files[source][0], source, None, label, plan.hashes[source])

    def note(sources: list[str]) -> None:
        for source in sources:
            (report.updated if (row := plan.rows.get(source)) is not None and row.in_library
             else report.added).append(source)

    copies, decode = [], []
    for source in sources:
        twins = [i for i in store.meta.ids_with_content(plan.hashes[source]) if store.in_library(i)]
        (copies if twins else decode).append((source, twins[0] if twins else None))
    fitted = image_hasher.is_fitted
    if copies:   # read before any batch replaces the rows they come from
        twin_ids = np.array([twin for _, twin in copies])
        features = store.features.read(store.feature_rows(twin_ids))
        records = [store.meta.get(int(twin)) for twin in twin_ids]
        codes = [record.code for record in records]
        twin_labels.update((source, record.label) for (source, _), record in zip(copies, records))
        for i in range(0, len(copies), batch_size):
            batch = [source for source, _ in copies[i:i + batch_size]]
            packed = (np.stack([np.frombuffer(c, np.uint8) for c in codes[i:i + batch_size]])
                      if fitted and all(c is not None for c in codes[i:i + batch_size]) else None)
            store.commit([new_row(s) for s in batch], features[i:i + batch_size],
                         packed if fitted else None, replacing=replaced(plan, batch))
            note(batch)
        report.copied = len(copies)
    done = [source for source, _ in copies]
    todo = [source for source, _ in decode]
    hashes: dict[str, str] = {}

    def read(source: str) -> bytes:   # in a worker thread: the row keeps the hash of the bytes encoded
        data = Path(source).read_bytes()
        hashes[source] = hashlib.sha256(data).hexdigest()
        return data

    bar = tqdm(total=len(todo), desc=f"encoding {plan.root.name}", unit="img", disable=not progress or not todo)
    for batch in iter_batches(todo, read, image_hasher.preprocess, batch_size, workers):
        for source, reason in batch.failed:
            if os.path.exists(source):
                report.unreadable.append((source, reason))
            else:
                report.vanished.append(source)
        if batch.ids:
            plan.hashes.update({s: hashes[s] for s in batch.ids})
            codes, features = (image_hasher.encode_arrays(batch.inputs) if fitted
                               else (None, image_hasher.features(batch.inputs)))
            store.commit([new_row(s) for s in batch.ids], features, codes, replacing=replaced(plan, batch.ids))
            note(list(batch.ids))
            done += batch.ids
        bar.update(len(batch.ids) + len(batch.failed))
    bar.close()
    return done


def replaced(plan: Plan, sources: list[str]) -> list[int]:
    """The rows (changed files, or removed sources coming back with new bytes) that new rows replace."""
    return [plan.rows[s].id for s in sources if s in plan.rows]


def relabel(store: LibraryStore, plan: Plan, report: SyncReport) -> None:
    """With labels from folders: library files whose folder no longer matches their label."""
    fresh = set(report.added) | set(report.updated)
    moved = [(s, row.id, plan.label(s)) for s, row in plan.rows.items()
             if row.in_library and s in plan.files and s not in fresh and row.label != plan.label(s)]
    if moved:
        with store.meta.transaction(searchable=False) as db:
            for _, image_id, label in moved:
                store.meta.relabel(db, image_id, label)
        report.relabelled = [s for s, _, _ in moved]
