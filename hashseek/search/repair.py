"""Repairing a collection (``hashseek check --repair``): rebuild what can be rebuilt, say what cannot.

SQLite is the truth. Feature rows it references but the file lost (a cut ``features.f16``) or that
hold another image's features (their code no longer matches them) are re-encoded from the stored
copy under ``images/`` or the source file or archive member; images whose bytes are gone too are
dropped and named. A partial or unreferenced tail of the feature file, and files under ``images/``
no image references, are deleted; codes are recomputed where the fit says so; the index is rebuilt
from SQLite and saved. What cannot be recovered (a stored copy that is gone) is reported.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hashseek.core.hasher import ImageHasher
from hashseek.data.loader import iter_batches
from hashseek.search.checker import CHUNK, CheckReport
from hashseek.search.layout import FEATURES_FILE, HASHER_DIR, IMAGES_DIR, INDEX_STATE
from hashseek.search.library import ImageFiles
from hashseek.search.metadata import Metadata
from hashseek.search.store import LibraryStore

log = logging.getLogger(__name__)


@dataclass
class RepairReport:
    """What ``repair`` rebuilt, what it could not recover, and the check after it. ``ok`` when nothing
    was lost and the check finds no problem."""

    repaired: list[str]
    unrecoverable: list[str]
    check: CheckReport

    @property
    def ok(self) -> bool:
        return self.check.ok and not self.unrecoverable

    def __str__(self) -> str:
        lines = [f"repaired: {line}" for line in self.repaired] or ["nothing needed repair"]
        lines += [f"NOT RECOVERED: {line}" for line in self.unrecoverable]
        return "\n".join(lines + [str(self.check)])


def repair(store: LibraryStore, image_hasher: ImageHasher, files: ImageFiles, command: str,
           batch_size: int = 32, progress: bool = True) -> tuple[list[str], list[str]]:
    """Repair the collection behind a writable ``store``; (what was repaired, what could not be recovered).
    ``command`` names the collection in messages (e.g. ``hashseek remove C``)."""
    meta, features = store.meta, store.features
    repaired, lost = [], []
    used = meta.feature_rows_used()
    if features.n_bytes % features.row_bytes or len(features) > used:
        extra = features.n_bytes - min(len(features), used) * features.row_bytes
        features.truncate(min(len(features), used))
        repaired.append(f"cut {extra} bytes of partial or unreferenced rows from {FEATURES_FILE}")
    cut = [r[0] for r in meta.query("SELECT id FROM images WHERE feature_row >= ? ORDER BY feature_row",
                                    (len(features),))]
    wrong = _ids_with_wrong_features(store, image_hasher)
    todo = {str(i): meta.get(i) for i in cut + wrong}
    encoded, failed = _reencode(store, image_hasher, files, todo, batch_size, progress)
    if encoded:
        why = f" ({len(cut)} lost from {FEATURES_FILE}, {len(wrong)} holding another image's)" if cut and wrong else ""
        repaired.append(f"re-encoded {encoded} feature row{'s' if encoded > 1 else ''}{why}")
    if failed:
        with meta.transaction(searchable=True) as db:
            meta.drop(db, [record.id for record, _ in failed])
        removed = sum(not record.in_library for record, _ in failed)
        if removed:
            repaired.append(f"dropped {removed} removed images whose features were lost (re-adding decodes them)")
        for record, reason in ((r, why) for r, why in failed if r.in_library):
            lost.append(f"image {record.id} ({record.name}, from {record.source}): its features are lost and "
                        f"its image cannot be read ({reason}); dropped, add it again to restore it")
    store.ids, store.rows = meta.library_rows()
    if features.cut_to(meta.feature_rows_used()):
        repaired.append(f"cut the rows of dropped images from the end of {FEATURES_FILE}")
    if image_hasher.can_refit and not image_hasher.is_fitted and len(store.ids) >= 2:   # a fit whose save failed
        store.refit(image_hasher, store.path / HASHER_DIR)
        repaired.append(f"fitted the hasher on the {len(store.ids)} images and coded them")
    store.sync_codes(image_hasher)
    repaired += _clean_images_dir(store.path, meta)
    missing = [(i, name) for i, name in meta.query("SELECT id, stored FROM images WHERE stored IS NOT NULL")
               if not (store.path / IMAGES_DIR / name).is_file()]
    if missing:
        ids = " ".join(str(i) for i, _ in missing)
        lost.append(f"{len(missing)} stored copies are gone from {IMAGES_DIR}/ (e.g. {missing[0][1]}) and "
                    f"exist nowhere else: their images stay searchable but cannot be shown; "
                    f"`{command} {ids}` takes them out")
    (store.path / INDEX_STATE).unlink(missing_ok=True)   # the index is rebuilt from SQLite and saved
    store.index.close()
    store.index.checkpoint()
    return repaired, lost


def _ids_with_wrong_features(store: LibraryStore, image_hasher: ImageHasher) -> list[int]:
    """Rows whose code is not the code of their stored features (under the fit that made the codes)."""
    meta, features = store.meta, store.features
    if not (image_hasher.can_refit and image_hasher.is_fitted
            and meta.state("fit_digest") == image_hasher.describe().get("fit_digest")):
        return []   # codes of another fit are recomputed by sync_codes; they say nothing of the features
    rows = meta.query("SELECT id, feature_row, code FROM images WHERE code IS NOT NULL AND feature_row < ? "
                      "ORDER BY feature_row", (len(features),))
    wrong = []
    for i in range(0, len(rows), CHUNK):
        block = rows[i:i + CHUNK]
        expected = image_hasher.codes_from_features(features.read(np.array([r[1] for r in block])))
        wrong += [r[0] for e, r in zip(expected, block) if e.tobytes() != r[2]]
    return wrong


def _reencode(store: LibraryStore, image_hasher: ImageHasher, files: ImageFiles, todo: dict, batch_size: int,
              progress: bool) -> tuple[int, list]:
    """Encode the images of ``todo`` (str id -> Record) again and write their feature rows and codes;
    (how many were, [(record, reason)] of those whose bytes could not be read)."""
    meta, features = store.meta, store.features
    done, failed = 0, []
    bar = tqdm(total=len(todo), desc="re-encoding", unit="img", disable=not progress or not todo)

    def read(key: str) -> bytes:
        try:
            return files.read(todo[key])
        except (KeyError, ValueError) as err:   # an archive without that member, a source that is no image
            raise OSError(str(err)) from err

    for batch in iter_batches(list(todo), read, image_hasher.preprocess, batch_size):
        failed += [(todo[key], reason) for key, reason in batch.failed]
        if batch.ids:
            records = [todo[key] for key in batch.ids]
            codes, encoded = (image_hasher.encode_arrays(batch.inputs) if image_hasher.is_fitted
                              else (None, image_hasher.features(batch.inputs)))
            for record, row in zip(records, encoded):
                features.write_rows(record.feature_row, row[None])
            if codes is not None:
                with meta.transaction(searchable=True) as db:
                    meta.set_codes(db, [r.id for r in records], codes)
            done += len(records)
        bar.update(len(batch.ids) + len(batch.failed))
    bar.close()
    return done, failed


def _clean_images_dir(path: Path, meta: Metadata) -> list[str]:
    """Delete files under images/ that no image references (a batch that failed or was killed)."""
    folder = path / IMAGES_DIR
    if not folder.is_dir():
        return []
    kept = {name for (name,) in meta.query("SELECT stored FROM images WHERE stored IS NOT NULL")}
    orphans = [p for p in folder.iterdir() if p.is_file() and p.name not in kept]
    for orphan in orphans:
        orphan.unlink()
    return [f"deleted {len(orphans)} files under {IMAGES_DIR}/ that no image references"] if orphans else []
