"""The three stores of a collection kept in step: SQLite rows, feature rows and the index.

Every change commits in SQLite last (its features are appended and fsynced first), then is
followed in memory: the library's ids and feature rows, and the index when it was current.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from hashseek.core.atomic import atomic_write_bytes
from hashseek.core.errors import ConflictError, DamagedError, InvalidInputError, NotFoundError, ReadOnlyError
from hashseek.core.hasher import ImageHasher
from hashseek.search.checker import CHUNK, feature_damage
from hashseek.search.feature_store import FeatureStore
from hashseek.search.index_cache import IndexCache
from hashseek.search.layout import FEATURES_FILE, HASHER_DIR, IMAGES_DIR
from hashseek.search.metadata import Metadata, NewRow
from hashseek.search.refit_policy import FIT_IMAGES, record_fit
from hashseek.search.storage import os_error

log = logging.getLogger(__name__)


class LibraryStore:
    """SQLite rows, features and index of one model of a collection; repairs a crash's leftovers on open."""

    def __init__(self, path: Path, meta: Metadata, config: dict, image_hasher: ImageHasher,
                 damaged_ok: bool = False):
        """Opens read-only when ``meta`` is (nothing is cut, coded or rewritten). A feature file shorter
        than SQLite says is a ``DamagedError`` naming the repair command, unless ``damaged_ok``
        (``check`` and ``repair`` open what they examine)."""
        self.path, self.meta, self.read_only = path, meta, meta.read_only
        self.busy: str | None = None   # why changes are refused for now (a reindex being staged)
        self.n_bits = int(config["n_bits"])
        self.features = FeatureStore(path / FEATURES_FILE, int(config["feature_dim"]), read_only=meta.read_only)
        self.index = IndexCache(path, meta, config["index"], config.get("index_options"), self.n_bits)
        self._adopt_committed_fit(image_hasher)
        self.damage = feature_damage(meta, self.features)
        if self.damage and not damaged_ok:
            self.features.close()
            raise DamagedError(f"{self.damage}: run `{meta.repair}` to re-encode the lost rows")
        if not self.read_only and not self.damage:
            dropped = self.features.cut_to(meta.feature_rows_used())
            if dropped:
                log.info("%s: dropped %d feature rows of an unfinished batch", path, dropped)
            self.sync_codes(image_hasher)
        self.ids, self.rows = meta.library_rows()   # library ids ascending, and their feature rows
        self.index.load()

    def close(self) -> None:
        self.index.close()
        self.features.close()

    # ------------------------------------------------------------------ changes
    def commit(self, rows: list[NewRow], features: np.ndarray, codes: np.ndarray | None,
               uploads: dict[str, bytes] | None = None, replacing: Sequence[int] = ()) -> list[int]:
        """One batch: stored copies (``uploads``: name under images/ -> bytes), then features (fsynced),
        then one SQLite transaction. All or nothing: a failure (a full disk) removes the batch's new
        copies and cuts its feature rows before it raises. ``replacing``: rows (library or removed)
        deleted in the same transaction, so their source keys pass to the new rows (a synced file
        whose content changed)."""
        self.require_writable()
        with np.errstate(over="ignore"):  # out-of-range values become inf and are refused below
            features = np.asarray(features, np.float16)
        n_bytes = -(-self.n_bits // 8)
        if features.shape[1:] != (self.features.dim,) or (codes is not None and codes.shape[1:] != (n_bytes,)):
            raise InvalidInputError(f"expected ({self.features.dim},) features and {n_bytes}-byte codes, got "
                                    f"{features.shape[1:]} and {None if codes is None else codes.shape[1:]}")
        if not np.isfinite(features).all():  # NaN or beyond float16's range: re-ranking needs finite values
            raise InvalidInputError("features must be finite in float16 (|x| <= 65504); nothing of this batch "
                                    "was added")
        gone = [i for i in replacing if self.in_library(i)]
        written = self._store_uploads(uploads)
        try:
            first = self.features.append(features)
            packed = [None] * len(rows) if codes is None else [code.tobytes() for code in codes]
            try:
                with self.meta.transaction(searchable=codes is not None or bool(gone)) as db:
                    if replacing:
                        self.meta.drop(db, replacing)
                    ids = self.meta.insert(db, rows, packed, range(first, first + len(rows)), time.time())
            except BaseException:
                self.features.undo_append(first)
                raise
        except BaseException:
            self._unlink_uploads(written)
            raise
        self._forget(gone)
        self._added(np.array(ids), first + np.arange(len(ids)), codes, gone)
        return ids

    def restore(self, old_id: int, row: NewRow, uploads: dict[str, bytes] | None = None) -> int:
        """Re-adding a removed source: the same features and code under a new id (no decoding)."""
        self.require_writable()
        written = self._store_uploads(uploads)
        try:
            with self.meta.transaction(searchable=True) as db:
                new_id, old = self.meta.restore(db, old_id, row, time.time())
        except BaseException:
            self._unlink_uploads(written)
            raise
        codes = None if old.code is None else np.frombuffer(old.code, np.uint8)[None]
        self._added(np.array([new_id]), np.array([old.feature_row]), codes)
        return new_id

    def remove(self, ids: list[int]) -> None:
        """Tombstone library images and delete their stored copies; unknown ids raise NotFoundError."""
        self.require_writable()
        missing = [i for i in ids if not self.in_library(i)]
        if missing:
            raise NotFoundError(f"not in the collection: {', '.join(map(str, missing))}")
        stored = self.meta.stored_names(ids)
        with self.meta.transaction(searchable=True) as db:
            self.meta.mark_removed(db, ids)
        self._forget(ids)
        self.index.follow_remove(np.array(ids))
        for name in stored:
            (self.path / IMAGES_DIR / name).unlink(missing_ok=True)

    def relabel(self, image_id: int, label: str | None) -> None:
        self.require_writable()
        if not self.in_library(image_id):
            raise NotFoundError(f"not in the collection: {image_id}")
        with self.meta.transaction(searchable=False) as db:
            self.meta.relabel(db, image_id, label)

    def refit(self, image_hasher: ImageHasher, hasher_dir: Path) -> None:
        """Fit a refittable hasher on (a sample of) the library's stored features and recompute the codes.

        Crash-safe: the new fit's arrays are saved beside the live ones, one SQLite transaction switches
        every code and the fit's digest, then ``hasher.json`` names the new fit. Killed before the
        transaction commits, the collection keeps the old fit and codes; after, an open adopts the fit
        SQLite names (``_adopt_committed_fit``). A failure before the commit leaves the old fit in memory too."""
        self.require_writable()
        if not image_hasher.can_refit:
            raise ConflictError(f"{self.path}: its codes come from a trained model "
                                f"({image_hasher.describe().get('type')!r}), which is not fitted on the collection; "
                                "only zero-training (pretrained+shallow) collections refit. `hashseek reindex "
                                "--model` switches the model")
        if len(self.ids) < 2:
            raise ConflictError(f"fitting needs at least 2 images, the collection has {len(self.ids)}")
        old = image_hasher.fit_digest, image_hasher.n_fit
        try:
            with threadpool_limits(1):   # BLAS's spinning threads made a 2,000-row fit 4-8x slower on 2 busy cores
                image_hasher.fit(self.features.read(self.rows[image_hasher.fit_sample(len(self.rows))]))
            image_hasher.save_fit(hasher_dir)
            self.sync_codes(image_hasher)
        except BaseException as err:
            image_hasher.use_fit(hasher_dir, *old)
            if isinstance(err, OSError):
                raise (os_error(err, hasher_dir, "saving the fitted hasher") or err) from err
            raise
        try:
            image_hasher.save(hasher_dir)
        except OSError as err:   # committed: the next open adopts the fit SQLite names
            log.warning("%s: hasher.json still names the previous fit (%s); the next open adopts the new one",
                        self.path, err)

    def _adopt_committed_fit(self, image_hasher: ImageHasher) -> None:
        """A refit killed after its codes were committed but before ``hasher.json`` named its fit: use
        the fit SQLite names (and, when writable, point ``hasher.json`` at it)."""
        digest, folder = self.meta.state("fit_digest"), self.path / HASHER_DIR
        if not (image_hasher.can_refit and digest and digest != image_hasher.fit_digest
                and image_hasher.has_fit(folder, digest)):
            return
        images = self.meta.state(FIT_IMAGES)
        image_hasher.use_fit(folder, digest, None if images is None else len(image_hasher.fit_sample(int(images))))
        log.info("%s: adopted the fit %s its codes were committed with", self.path, digest)
        if not self.read_only:
            try:
                image_hasher.save(folder)
            except OSError as err:
                log.warning("%s: hasher.json was not updated (%s); the next open adopts the fit again", self.path, err)

    def sync_codes(self, image_hasher: ImageHasher) -> None:
        """Give every row the code of a refittable hasher's current fit: after a first fit, a refit,
        or a crash between them (the state table records which fit the codes came from)."""
        if not (image_hasher.can_refit and image_hasher.is_fitted):
            return
        digest = image_hasher.describe().get("fit_digest")
        refit = self.meta.state("fit_digest") != digest
        rows = self.meta.feature_rows_needing_codes(all_rows=refit)
        if not len(rows) and not refit:
            return
        codes = [image_hasher.codes_from_features(self.features.read(rows[i:i + CHUNK, 1]))
                 for i in range(0, len(rows), CHUNK)]
        with self.meta.transaction(searchable=True) as db:
            if codes:
                self.meta.set_codes(db, rows[:, 0], np.concatenate(codes))
            self.meta.set_state("fit_digest", digest, db)
            if refit:
                record_fit(self.meta, db)

    def _store_uploads(self, uploads: dict[str, bytes] | None) -> list[Path]:
        """Write the copies not there yet; the paths written (a failed batch removes them again)."""
        written = []
        try:
            for name, data in (uploads or {}).items():
                if not (target := self.path / IMAGES_DIR / name).exists():
                    atomic_write_bytes(target, data)
                    written.append(target)
        except OSError as err:
            self._unlink_uploads(written)
            raise (os_error(err, self.path / IMAGES_DIR, "storing an uploaded image") or err) from err
        return written

    @staticmethod
    def _unlink_uploads(paths: list[Path]) -> None:
        for target in paths:
            target.unlink(missing_ok=True)

    def require_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.path} is open read-only: adding, removing, relabelling and refitting "
                                "need a writable open")
        if self.busy is not None:
            raise ConflictError(self.busy)

    def _added(self, ids: np.ndarray, rows: np.ndarray, codes: np.ndarray | None, replaced: list[int] = ()) -> None:
        """Follow a committed insert in memory; the index only when it was current (else it is rebuilt)."""
        self.ids = np.concatenate([self.ids, ids])
        self.rows = np.concatenate([self.rows, rows])
        if codes is not None or len(replaced):
            self.index.follow_add(ids, codes, np.array(replaced, dtype=np.int64))

    def _forget(self, ids: Sequence[int]) -> None:
        """Library ids that left, out of the in-memory id and feature-row arrays."""
        keep = ~np.isin(self.ids, ids)
        self.ids, self.rows = self.ids[keep], self.rows[keep]

    # ------------------------------------------------------------------ reading
    def in_library(self, image_id: int) -> bool:
        pos = np.searchsorted(self.ids, image_id)
        return bool(pos < len(self.ids) and self.ids[pos] == image_id)

    def feature_rows(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        if len(ids) and (pos.max(initial=0) >= len(self.ids) or np.any(self.ids[pos] != ids)):
            raise NotFoundError(f"not in the collection: {ids[~np.isin(ids, self.ids)][:5].tolist()}")
        return self.rows[pos]

    def feature_table(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the memory-mapped feature store, the ids' rows in it): re-ranking reads rows in place."""
        rows = self.feature_rows(ids)
        return self.features.table(rows), rows
