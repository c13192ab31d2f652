"""Re-encoding a collection's library with another model, staged beside the live one and swapped in atomically.

Slots. ``slots/N/`` holds a model's ``hasher/``, ``features.f16`` and ``collection.json``; the
SQLite table ``slot_rows`` holds, per image id, its row in that slot's features and its code. The
state table names at most two slots: ``staging_slot`` (a reindex under way, for the model
``staging_model`` describes) and ``previous_slot`` (the model the last swap replaced). Any other
folder under ``slots/`` is a leftover of an interrupted run and is deleted.

A reindex (``Collection.reindex``, or ``begin_reindex`` / ``commit_reindex`` with the encoding on
another thread, ``search.staged_reindex``):

1. stage: continues the staging slot when it was started for the same model, else starts a new one;
2. encode: library images without a row in the slot, in batches: their features appended to the
   slot's ``features.f16`` and fsynced, then one transaction of ``slot_rows``. A kill loses at most
   the batch under way (feature rows past the last committed one are cut on resume); searches use
   the live model all along. A model that encodes as the live one (``keep_live_codes``: the same
   ``codes_digest``, e.g. only its classifier's temperature changed) decodes nothing: the live
   features and codes are staged as they are;
3. fit: a refittable hasher that is not fitted yet is fitted on the slot's features;
4. commit: the slot's ``collection.json`` is written, then ONE SQLite transaction is the switch:
   every row's live code and feature row go to a new previous slot, the rows take the staged
   ones (rows the slot lacks, removed or unreadable images, are deleted), the generation is
   bumped, and state ``swap`` names the two slots;
5. finish: the files follow, each step idempotent: ``features.f16`` and ``collection.json`` are
   hard-linked into the previous slot, then replaced by the staged files (never missing);
   ``hasher/`` is renamed into the previous slot, then the staged one into place. Opening a
   collection runs this step first whenever ``swap`` is set, so a kill at any point leaves the
   old model (before the commit) or the new one (after it), never a mix.

``restore_previous`` (or ``begin_restore``) makes the previous slot the staging slot as well and
reindexes with its model: only images added since the swap are encoded again. The slot stays the
previous one until the switch, so an interrupted restore leaves the model restorable (the next restore
continues it) and a reindex with another model meanwhile starts a slot of its own.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from hashseek.core.atomic import atomic_path, fsync_dir
from hashseek.core.errors import ConflictError, NotFoundError
from hashseek.core.hasher import HASHER_JSON, ImageHasher, load_image_hasher
from hashseek.data.loader import iter_batches
from hashseek.search.checker import CHUNK
from hashseek.search.feature_store import FeatureStore
from hashseek.search.layout import COLLECTION_JSON, FEATURES_FILE, HASHER_DIR, IMAGES_DIR, SLOTS_DIR, write_config
from hashseek.search.metadata import Metadata, Record

log = logging.getLogger(__name__)
STAGING, STAGING_MODEL, PREVIOUS, SWAP, NEXT_SLOT = "staging_slot", "staging_model", "previous_slot", "swap", "next_slot"


@dataclass
class ReindexReport:
    """What a reindex did: images encoded by this call, staged by an earlier (interrupted) one, and
    unreadable ones, which left the library at the swap."""

    encoded: int = 0
    resumed: int = 0
    kept: int = 0                                                  # codes kept: the model encodes as the live one
    failed: list[tuple[str, str]] = field(default_factory=list)   # (source, reason)
    n_bits: int = 0
    model: dict = field(default_factory=dict)                     # the new hasher's ``describe()``

    def __str__(self) -> str:
        kept = (f"kept {self.kept} codes as they were (the new model encodes as the old one: same weights and "
                "input), " if self.kept else "")
        return (f"{kept}re-encoded {self.encoded}, staged by an earlier run {self.resumed}, unreadable (left the "
                f"library) {len(self.failed)}; now {self.n_bits}-bit codes from {self.model.get('type')}")


def model_key(image_hasher: ImageHasher) -> str:
    """What a staging slot was started for: a rerun with an equal description continues it."""
    return json.dumps(image_hasher.describe(), sort_keys=True, default=str)


def stage_slot(path: Path, meta: Metadata, image_hasher: ImageHasher) -> str:
    """The staging slot for ``image_hasher``: the one under way when it was started for the same model."""
    key, slot = model_key(image_hasher), meta.state(STAGING)
    if slot is not None and meta.state(STAGING_MODEL) == key and (path / SLOTS_DIR / slot).is_dir():
        return slot
    new = _next_slot(meta)
    with meta.transaction(searchable=False) as db:
        if slot is not None and slot != meta.state(PREVIOUS):   # an interrupted restore's slot is kept
            db.execute("DELETE FROM slot_rows WHERE slot = ?", (slot,))
        meta.set_state(STAGING, new, db)
        meta.set_state(STAGING_MODEL, key, db)
        meta.set_state(NEXT_SLOT, str(int(new) + 1), db)
    remove_leftovers(path, meta)
    (path / SLOTS_DIR / new).mkdir(parents=True)
    return new


def encode(path: Path, meta: Metadata, slot: str, config: dict, image_hasher: ImageHasher, records: list[Record],
           read_bytes: Callable[[Record], bytes], batch_size: int, workers: int | None, progress: bool,
           on_batch: Callable[[list[int]], None] | None) -> ReindexReport:
    """Encode the records the slot lacks, fit a refittable hasher, write the slot's hasher and collection.json."""
    folder = path / SLOTS_DIR / slot
    if not (folder / HASHER_DIR / HASHER_JSON).is_file():
        image_hasher.save(folder / HASHER_DIR)
    def staged_rows() -> dict[int, int]:
        return dict(meta.query("SELECT id, feature_row FROM slot_rows WHERE slot = ?", (slot,)))

    staged = staged_rows()
    kept = 0 if staged else keep_live_codes(path, meta, slot, image_hasher)
    if kept:
        staged = staged_rows()
    todo = {str(r.id): r for r in records if r.id not in staged}
    report = ReindexReport(resumed=max(0, len(records) - len(todo) - kept), kept=kept)
    fitted = image_hasher.is_fitted
    store = FeatureStore(folder / FEATURES_FILE, image_hasher.feature_dim)
    try:
        store.cut_to(max(staged.values(), default=-1) + 1)   # rows of a batch killed before its commit
        bar = tqdm(total=len(todo), desc=f"reindexing {path.name}", unit="img", disable=not progress)
        for batch in iter_batches(list(todo), lambda key: read_bytes(todo[key]), image_hasher.preprocess,
                                  batch_size, workers):
            report.failed += [(todo[key].source, reason) for key, reason in batch.failed]
            if batch.ids:
                codes, features = (image_hasher.encode_arrays(batch.inputs) if fitted
                                   else (None, image_hasher.features(batch.inputs)))
                first = store.append(np.asarray(features, np.float16))
                ids = [int(key) for key in batch.ids]
                with meta.transaction(searchable=False) as db:
                    db.executemany("INSERT INTO slot_rows VALUES (?, ?, ?, ?)",
                                   [(slot, image_id, first + n, None if codes is None else codes[n].tobytes())
                                    for n, image_id in enumerate(ids)])
                report.encoded += len(ids)
                if on_batch is not None:
                    on_batch(ids)
            bar.update(len(batch.ids) + len(batch.failed))
        bar.close()
        if image_hasher.can_refit:
            _fit_and_code(meta, slot, store, image_hasher, folder)
    finally:
        store.close()
    report.n_bits, report.model = image_hasher.n_bits, image_hasher.describe()
    write_config(folder, {**config, "n_bits": image_hasher.n_bits, "feature_dim": image_hasher.feature_dim,
                          "made_with": image_hasher.describe(),
                          "reindexed": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return report


def keep_live_codes(path: Path, meta: Metadata, slot: str, image_hasher: ImageHasher) -> int:
    """Stage the live codes and features as they are when ``image_hasher`` encodes as the live model (an equal
    ``codes_digest``: the same weights and input, e.g. only the classifier's temperature changed): the live
    features file is copied into the slot, then one transaction stages every row. Nothing is decoded; the
    swap and the restorable previous model work as for any reindex. How many rows were staged (0: not so)."""
    digest = image_hasher.describe().get("codes_digest")
    live = path / COLLECTION_JSON
    if digest is None or not live.is_file() or json.loads(live.read_text()).get("made_with", {}).get(
            "codes_digest") != digest:
        return 0
    source = path / FEATURES_FILE
    with atomic_path(path / SLOTS_DIR / slot / FEATURES_FILE) as tmp:
        if source.is_file():
            shutil.copyfile(source, tmp)
        else:
            tmp.touch()
    with meta.transaction(searchable=False) as db:
        db.execute("INSERT INTO slot_rows SELECT ?, id, feature_row, code FROM images", (slot,))
    kept = meta.query("SELECT COUNT(*) FROM slot_rows WHERE slot = ?", (slot,))[0][0]
    log.info("%s: the new model encodes as the live one (codes digest %s): kept %d codes", path, digest, kept)
    return kept


def _fit_and_code(meta: Metadata, slot: str, store: FeatureStore, image_hasher: ImageHasher, folder: Path) -> None:
    """A refittable hasher: fitted on the staged features when it is not yet, then every staged code
    recomputed from its features (so codes stay a function of the stored features)."""
    rows = np.array(meta.query("SELECT id, feature_row FROM slot_rows WHERE slot = ? ORDER BY id", (slot,)),
                    dtype=np.int64).reshape(-1, 2)
    if not image_hasher.is_fitted:
        if len(rows) < 2:
            raise ConflictError(f"fitting the new hasher needs at least 2 images, the library has {len(rows)}")
        image_hasher.fit(store.read(rows[image_hasher.fit_sample(len(rows)), 1]))
        image_hasher.save(folder / HASHER_DIR)
    codes = [image_hasher.codes_from_features(store.read(rows[i:i + CHUNK, 1])) for i in range(0, len(rows), CHUNK)]
    with meta.transaction(searchable=False) as db:
        db.executemany("UPDATE slot_rows SET code = ? WHERE slot = ? AND id = ?",
                       [(code.tobytes(), slot, int(image_id)) for code, image_id in
                        zip(np.concatenate(codes) if codes else [], rows[:, 0])])


def commit_swap(path: Path, meta: Metadata, slot: str, image_hasher: ImageHasher) -> None:
    """The switch: one transaction puts the staged codes and feature rows in place and keeps the live
    ones as the previous slot. The files follow in ``finish_swap``."""
    if not (path / SLOTS_DIR / slot / COLLECTION_JSON).is_file():
        raise ConflictError(f"slot {slot} of {path} is not staged completely")
    previous, old_previous = _next_slot(meta), meta.state(PREVIOUS)
    gone = [row[0] for row in meta.query(
        "SELECT stored FROM images WHERE stored IS NOT NULL AND id NOT IN (SELECT id FROM slot_rows WHERE slot = ?)",
        (slot,))]
    with meta.transaction(searchable=True) as db:
        if old_previous is not None and old_previous != slot:   # (a restore stages the previous slot)
            db.execute("DELETE FROM slot_rows WHERE slot = ?", (old_previous,))
        db.execute("INSERT INTO slot_rows SELECT ?, id, feature_row, code FROM images", (previous,))
        db.execute("DELETE FROM images WHERE id NOT IN (SELECT id FROM slot_rows WHERE slot = ?)", (slot,))
        db.execute("UPDATE images SET feature_row = -1 - feature_row")   # feature rows are UNIQUE
        db.execute("UPDATE images SET (feature_row, code) = (SELECT s.feature_row, s.code FROM slot_rows s "
                   "WHERE s.slot = ? AND s.id = images.id)", (slot,))
        db.execute("DELETE FROM slot_rows WHERE slot = ?", (slot,))
        for key, value in ((STAGING, None), (STAGING_MODEL, None), (PREVIOUS, previous),
                           (NEXT_SLOT, str(int(previous) + 1)), (SWAP, json.dumps({"in": slot, "out": previous})),
                           ("fit_digest", image_hasher.describe().get("fit_digest") if image_hasher.can_refit
                            else None)):
            meta.set_state(key, value, db)
    for name in gone:   # stored copies of images that left the library at the swap
        (path / IMAGES_DIR / name).unlink(missing_ok=True)


def finish_swap(path: Path, meta: Metadata) -> None:
    """Move the files of a committed swap into place (idempotent: a rerun after a kill completes it),
    then delete slot folders the state no longer names. A read-only open cannot move them: it refuses
    a collection whose switch is committed but whose files are not in place yet."""
    swap = meta.state(SWAP)
    if meta.read_only:
        if swap is not None:
            raise ConflictError(f"{path}: a reindex was stopped right after its switch; open the collection once "
                                "writable to move its files into place")
        return
    if swap is not None:
        slots = json.loads(swap)
        staged, previous = path / SLOTS_DIR / slots["in"], path / SLOTS_DIR / slots["out"]
        previous.mkdir(parents=True, exist_ok=True)
        if (staged / HASHER_DIR).is_dir():
            if (path / HASHER_DIR).is_dir() and not (previous / HASHER_DIR).exists():
                os.rename(path / HASHER_DIR, previous / HASHER_DIR)
            os.rename(staged / HASHER_DIR, path / HASHER_DIR)
        for name in (FEATURES_FILE, COLLECTION_JSON):   # collection.json last
            if (staged / name).is_file():
                if not (previous / name).exists():
                    os.link(path / name, previous / name)
                os.replace(staged / name, path / name)
        fsync_dir(previous)
        fsync_dir(path)
        meta.set_state(SWAP, None)
        log.info("%s: swapped in the model of slot %s (the previous one is kept in slot %s)", path, *slots.values())
    remove_leftovers(path, meta)


def remove_leftovers(path: Path, meta: Metadata) -> None:
    """Delete slot folders that no state names (a replaced staging slot, a restored or replaced previous one)."""
    keep = {meta.state(STAGING), meta.state(PREVIOUS)}
    if meta.state(SWAP) is not None:
        keep |= set(json.loads(meta.state(SWAP)).values())
    folder = path / SLOTS_DIR
    for slot in (folder.iterdir() if folder.is_dir() else ()):
        if slot.name not in keep:
            shutil.rmtree(slot, ignore_errors=True)


def stage_previous(path: Path, meta: Metadata) -> ImageHasher:
    """Make the previous model's slot the staging slot too (it stays the previous one until the switch:
    an interrupted restore is continued by the next); its hasher, for the reindex that finishes the restore."""
    previous = meta.state(PREVIOUS)
    folder = None if previous is None else path / SLOTS_DIR / previous
    if folder is None or not (folder / HASHER_DIR / HASHER_JSON).is_file():
        raise NotFoundError(f"{path} keeps no previous model (it has not been reindexed)")
    image_hasher = load_image_hasher(folder / HASHER_DIR)
    staging = meta.state(STAGING)
    if staging == previous:   # a restore under way: ``stage_slot`` continues it
        return image_hasher
    with meta.transaction(searchable=False) as db:
        if staging is not None:   # another model's reindex, given up
            db.execute("DELETE FROM slot_rows WHERE slot = ?", (staging,))
        meta.set_state(STAGING, previous, db)
        meta.set_state(STAGING_MODEL, model_key(image_hasher), db)
    remove_leftovers(path, meta)
    return image_hasher


def previous_model(path: Path, meta: Metadata) -> dict | None:
    """How the previous model made its codes (its collection.json's ``made_with``), if one is kept."""
    previous = meta.state(PREVIOUS)
    spec = None if previous is None else path / SLOTS_DIR / previous / COLLECTION_JSON
    if spec is None or not spec.is_file():
        return None
    return json.loads(spec.read_text()).get("made_with")


def _next_slot(meta: Metadata) -> str:
    return meta.state(NEXT_SLOT) or "1"
