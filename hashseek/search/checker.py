"""The integrity check of a collection: metadata, features and index agree. It repairs nothing
(opening a collection repairs what an interrupted run left)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashseek.core.hasher import ImageHasher
from hashseek.search.feature_store import FeatureStore
from hashseek.search.index_cache import IndexCache
from hashseek.search.layout import FEATURES_FILE, IMAGES_DIR, INDEX_FILE, META_DB
from hashseek.search.metadata import Metadata

CHUNK = 8192            # rows per block when recomputing codes
_CHECK_SAMPLE = 10_000  # codes compared against the index


@dataclass
class CheckReport:
    """Counts and the problems ``check`` found; ``ok`` when there are none."""

    counts: dict[str, int]
    problems: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [", ".join(f"{k} {v}" for k, v in self.counts.items())]
        lines += [f"note: {n}" for n in self.notes] + [f"PROBLEM: {p}" for p in self.problems]
        lines.append("ok" if self.ok else f"{len(self.problems)} problem(s)")
        return "\n".join(lines)


def check(path: Path, meta: Metadata, features: FeatureStore, index: IndexCache, image_hasher: ImageHasher,
          n_bits: int) -> CheckReport:
    """Verify that metadata, features and index agree (see ``CheckReport``). On a read-only open, what
    a writable open would recover (rows of a batch that never committed, missing codes) is a note."""
    problems, notes = [f"{META_DB}: {found}" for found in meta.quick_check()], []
    total, library, coded = meta.query(
        "SELECT COUNT(*), SUM(in_library), SUM(in_library AND code IS NOT NULL) FROM images")[0]
    library, coded = library or 0, coded or 0
    n_rows = len(features)
    counts = {"images": library, "removed": total - library, "searchable": coded, "feature_rows": n_rows}
    damage, used = feature_damage(meta, features), meta.feature_rows_used()
    if damage:
        problems.append(f"{damage}: `{meta.repair}` re-encodes the lost rows")
    elif features.n_bytes > used * features.row_bytes:
        notes.append(f"{FEATURES_FILE} holds {features.n_bytes - used * features.row_bytes} bytes past the rows "
                     f"{META_DB} references (a batch that never committed): cut at the next writable open")
    bad_rows = meta.query("SELECT COUNT(*) FROM images WHERE feature_row < 0 OR feature_row >= ?", (n_rows,))[0][0]
    if bad_rows:
        problems.append(f"{bad_rows} rows reference feature rows beyond the {n_rows} stored")
    n_bytes = -(-n_bits // 8)
    bad_codes = meta.query("SELECT COUNT(*) FROM images WHERE code IS NOT NULL AND length(code) != ?",
                           (n_bytes,))[0][0]
    if bad_codes:
        problems.append(f"{bad_codes} codes do not have {n_bytes} bytes")
    if image_hasher.can_refit and not image_hasher.is_fitted and library >= 2:
        notes.append(f"the hasher is not fitted although {library} images are in (an add stopped before its fit, "
                     f"or the fit could not be saved): the next add or `{meta.repair}` fits it")
    if coded < library:
        fixed_on_open = meta.read_only and image_hasher.can_refit
        (problems if image_hasher.is_fitted and not fixed_on_open else notes).append(
            f"{library - coded} images have no code yet" + (": a writable open computes them" if fixed_on_open else ""))
    missing = [name for (name,) in meta.query("SELECT stored FROM images WHERE stored IS NOT NULL")
               if not (path / IMAGES_DIR / name).is_file()]
    if missing:
        problems.append(f"{len(missing)} stored copies are missing from {IMAGES_DIR}/, e.g. {missing[0]}")
    if image_hasher.can_refit and image_hasher.is_fitted:
        if meta.state("fit_digest") != image_hasher.describe().get("fit_digest"):
            problems.append("the codes were made by another fit than the saved hasher's")
        problems += _codes_match_features(meta, features, image_hasher)
    problems += _index_matches(meta, index)
    if index.saved_state() != index.state():
        notes.append(f"{INDEX_FILE} is stale; " + ("it was rebuilt in memory (a read-only open rewrites nothing)"
                                                    if meta.read_only else "it is rewritten on close"))
    return CheckReport(counts, problems, notes)


def feature_damage(meta: Metadata, features: FeatureStore) -> str | None:
    """What is wrong with a feature file that holds fewer rows than SQLite references (a cut file), or None."""
    needed = meta.feature_rows_used()
    if len(features) >= needed:
        return None
    tail = features.n_bytes - len(features) * features.row_bytes
    return (f"{features.path} is damaged: it holds {len(features)} feature rows"
            + (f" + {tail} bytes" if tail else "") + f", but {META_DB} references {needed}")


def _codes_match_features(meta: Metadata, features: FeatureStore, image_hasher: ImageHasher) -> list[str]:
    """A refittable hasher's codes are a function of the stored features: recompute and compare them all."""
    rows = meta.query("SELECT feature_row, code FROM images WHERE code IS NOT NULL AND feature_row < ?",
                      (len(features),))
    bad = 0
    for i in range(0, len(rows), CHUNK):
        block = rows[i:i + CHUNK]
        expected = image_hasher.codes_from_features(features.read([r[0] for r in block]))
        bad += sum(e.tobytes() != r[1] for e, r in zip(expected, block))
    return [f"{bad} codes differ from the codes of their stored features"] if bad else []


def _index_matches(meta: Metadata, cache: IndexCache) -> list[str]:
    """Same ids in the same (insertion) order, and each id found at Hamming 0 from its SQLite code."""
    ids, codes = meta.searchable_codes()
    index = cache.current()
    if not np.array_equal(index.ids(), ids):
        return [f"the index holds {len(index)} ids, not the {len(ids)} searchable ids in {META_DB} in id order"]
    if not len(ids):
        return []
    pick = np.sort(np.random.default_rng(0).permutation(len(ids))[:_CHECK_SAMPLE])
    found = index.range_search(np.ascontiguousarray(codes[pick]), 0)
    bad = sum(ids[i] not in hit_ids for i, (_, hit_ids) in zip(pick, found))
    return [f"{bad} of {len(pick)} sampled codes differ between {META_DB} and the index"] if bad else []
