"""Exact and near-duplicate groups of a collection, and the duplicates a new image meets when added.

Exact duplicates share their bytes (``images.content_hash``). Near-duplicates (resized,
re-compressed, slightly cropped, brightened or rotated copies) are pairs of codes within
``max_hamming`` (a self-join by multi-index hashing, ``search.selfjoin``) whose stored float
features are within ``max_distance`` (cosine distance, 1 - cos) and whose pictures line up
(``search.pixel_check``: similarity at least ``min_similarity``): the codes find candidates
cheaply, the float features drop most of them, the pixels confirm the rest. Confirmed pairs join
into groups (connected components); each group suggests a keeper: the largest image in pixels,
then the oldest added, then the smallest id.

The defaults were chosen by ``benchmarks/near_duplicates.py`` on its tuning half of Caltech101
(500 originals with 5 copies each among half of the other images), never on the half it
reports: the largest pair F1 among the settings with pair precision >= 0.98 there (precision
0.991 at recall 0.997). See docs/duplicates.md for the figures of the evaluation half.
"""
from __future__ import annotations

import io
import tarfile
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from hashseek.core.errors import InvalidInputError
from hashseek.search.library import ImageFiles
from hashseek.search.metadata import Metadata, Record
from hashseek.search.pixel_check import pair_similarity
from hashseek.search.selfjoin import code_words, components, hamming_of, hamming_pairs
from hashseek.search.store import LibraryStore

PAIR_CHUNK = 1 << 14   # feature pairs compared at once (two float32 blocks of this many rows)
HELD_VALUES = 1 << 26  # feature values (float32: 256 MiB) held at once to score pairs


@dataclass(frozen=True)
class DuplicateSettings:
    """How close two images must be to count as duplicates (chosen on the tuning half, see above)."""

    max_hamming: int = 12          # codes at most this many bits apart are candidates ...
    max_distance: float = 0.30     # ... kept when their features are at most this cosine distance apart ...
    min_similarity: float = 0.825  # ... and confirmed when their pictures line up at least this well

    def resolve(self, max_hamming: int | None = None, max_distance: float | None = None,
                min_similarity: float | None = None) -> "DuplicateSettings":
        """These settings with the given ones (None: the default) put in, checked."""
        hamming = self.max_hamming if max_hamming is None else int(max_hamming)
        distance = self.max_distance if max_distance is None else float(max_distance)
        similarity = self.min_similarity if min_similarity is None else float(min_similarity)
        if hamming < 0:
            raise InvalidInputError(f"max_hamming must be >= 0, got {hamming}")
        if not 0.0 <= distance <= 2.0:
            raise InvalidInputError(f"max_distance is a cosine distance in [0, 2], got {distance}")
        if not -1.0 <= similarity <= 1.0:
            raise InvalidInputError(f"min_similarity is a correlation in [-1, 1], got {similarity}")
        return DuplicateSettings(hamming, distance, similarity)


DUPLICATE_DEFAULTS = DuplicateSettings()


@dataclass
class DuplicateMember:
    """One image of a group, with its distances to the group's keeper (0 for the keeper itself)."""

    id: int
    name: str
    label: str | None
    hamming: int | None          # None: an image without a code yet (exact duplicates only)
    distance: float
    same_bytes: bool             # byte-identical to the keeper
    width: int | None
    height: int | None
    added_at: float


@dataclass
class DuplicateGroup:
    keeper: int
    members: list[DuplicateMember]   # the keeper first, then by distance to it

    @property
    def kind(self) -> str:
        """``exact`` when every member has the keeper's bytes, else ``near``."""
        return "exact" if all(m.same_bytes for m in self.members) else "near"

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.members]

    def to_dict(self) -> dict:
        return {"keeper": self.keeper, "kind": self.kind, "members": [asdict(m) for m in self.members]}


@dataclass
class DuplicateReport:
    """The groups of a collection (largest first), with the settings and the work that found them."""

    groups: list[DuplicateGroup]
    images: int
    max_hamming: int
    max_distance: float
    min_similarity: float
    candidates: int = 0          # code pairs within max_hamming
    confirmed: int = 0           # of those, within max_distance and min_similarity
    exact_pairs: int = 0
    method: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        """Images a user could remove: every member but the keepers."""
        return sum(len(g.members) - 1 for g in self.groups)

    def to_dict(self) -> dict:
        return {"images": self.images, "groups": [g.to_dict() for g in self.groups], "duplicates": self.duplicates,
                "max_hamming": self.max_hamming, "max_distance": self.max_distance,
                "min_similarity": self.min_similarity, "candidates": self.candidates,
                "confirmed": self.confirmed, "exact_pairs": self.exact_pairs, "method": self.method,
                "seconds": self.seconds}

    def __str__(self) -> str:
        return (f"{len(self.groups)} groups, {self.duplicates} duplicates among {self.images} images "
                f"(Hamming <= {self.max_hamming}, cosine distance <= {self.max_distance:g}, "
                f"pixel similarity >= {self.min_similarity:g})")


def cosine_distances(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cos between feature rows ``a`` and ``b`` of ``table`` (float16 or float32), pair by pair.

    The rows involved are read once, as unit float32 vectors, when they fit in ``HELD_VALUES``;
    otherwise each block of pairs reads its own."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    out = np.empty(len(a), np.float32)
    used = np.unique(np.concatenate([a, b]))
    held = len(used) * table.shape[1] <= HELD_VALUES
    if held:
        units = _unit(table[used])
        a, b = np.searchsorted(used, a), np.searchsorted(used, b)
    for start in range(0, len(a), PAIR_CHUNK):
        x, y = a[start:start + PAIR_CHUNK], b[start:start + PAIR_CHUNK]
        x, y = (units[x], units[y]) if held else (_unit(table[x]), _unit(table[y]))
        out[start:start + PAIR_CHUNK] = 1.0 - np.einsum("ij,ij->i", x, y)
    return out


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@dataclass
class ScoredPairs:
    """Library id pairs (a < b) whose codes are within a radius, with their feature distance and (for the
    pairs within the distance it was asked for) their pixel similarity, NaN elsewhere or without pictures."""

    a: np.ndarray
    b: np.ndarray
    hamming: np.ndarray
    distance: np.ndarray
    similarity: np.ndarray
    method: str

    def confirmed(self, settings: DuplicateSettings) -> np.ndarray:
        """Which pairs are duplicates under ``settings`` (a pair without pictures: by its codes and features)."""
        return ((self.hamming <= settings.max_hamming) & (self.distance <= settings.max_distance)
                & ~(self.similarity < settings.min_similarity))


def id_reader(meta: Metadata, read: Callable[[Record], bytes]) -> Callable[[int], bytes | None]:
    """A library id's bytes, None when it has none to read (a feature-only row, a vanished file)."""
    def read_id(image_id: int) -> bytes | None:
        record = meta.get(image_id)
        return None if record is None else _bytes_or_none(lambda: read(record))
    return read_id


def _bytes_or_none(read: Callable[[], bytes]) -> bytes | None:
    try:
        return read()
    except (OSError, KeyError, ValueError, tarfile.TarError):   # gone or unreadable: no pixels to check
        return None


def scored_pairs(meta: Metadata, store: LibraryStore, read: Callable[[Record], bytes], max_hamming: int,
                 max_distance: float) -> ScoredPairs:
    """The code self-join within ``max_hamming``, each pair scored by its stored features, and the pairs
    within ``max_distance`` by their pixels."""
    return with_pixels(feature_pairs(meta, store, max_hamming), meta, read, max_distance)


def feature_pairs(meta: Metadata, store: LibraryStore, max_hamming: int) -> ScoredPairs:
    """The code self-join within ``max_hamming``, each pair scored by its stored features (no pixels yet)."""
    ids, codes = meta.searchable_codes()
    stats: dict = {}
    i, j, d = hamming_pairs(codes, max_hamming, store.n_bits, stats)
    table, rows = store.feature_table(ids) if len(ids) else (np.empty((0, 1), np.float16), ids)
    distance = cosine_distances(table, rows[i], rows[j])
    return ScoredPairs(ids[i], ids[j], d, distance, np.full(len(i), np.nan, np.float32), stats.get("method", ""))


def with_pixels(pairs: ScoredPairs, meta: Metadata, read: Callable[[Record], bytes],
                max_distance: float) -> ScoredPairs:
    """``pairs`` with the pixel similarity of those within ``max_distance`` (NaN for the others)."""
    similarity = np.full(len(pairs.a), np.nan, np.float32)
    near = np.flatnonzero(pairs.distance <= max_distance)
    similarity[near] = pair_similarity(pairs.a[near], pairs.b[near], id_reader(meta, read))
    return ScoredPairs(pairs.a, pairs.b, pairs.hamming, pairs.distance, similarity, pairs.method)


def exact_pairs(meta: Metadata) -> tuple[np.ndarray, np.ndarray]:
    """Library id pairs with the same bytes: each image joined to the first with its content hash."""
    rows = meta.query("SELECT id, content_hash FROM images WHERE in_library AND content_hash IN "
                      "(SELECT content_hash FROM images WHERE in_library AND content_hash IS NOT NULL "
                      "GROUP BY content_hash HAVING COUNT(*) > 1) ORDER BY content_hash, id")
    first: dict[str, int] = {}
    pairs = [(first.setdefault(digest, image_id), image_id) for image_id, digest in rows]
    pairs = np.array([p for p in pairs if p[0] != p[1]], np.int64).reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def group_ids(ids: np.ndarray, edges: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Connected components (of two or more) of library ``ids`` joined by the id pairs in ``edges``."""
    a = np.concatenate([e[0] for e in edges]) if edges else np.empty(0, np.int64)
    b = np.concatenate([e[1] for e in edges]) if edges else np.empty(0, np.int64)
    root = components(len(ids), np.searchsorted(ids, a), np.searchsorted(ids, b))
    order = np.argsort(root, kind="stable")
    cuts = np.flatnonzero(np.diff(root[order])) + 1
    return [ids[g] for g in np.split(order, cuts) if len(g) > 1]


def find_duplicates(meta: Metadata, store: LibraryStore, read: Callable[[Record], bytes],
                    max_hamming: int | None = None, max_distance: float | None = None,
                    min_similarity: float | None = None) -> DuplicateReport:
    """The duplicate groups of a library; ``read`` gives a record's bytes (the pixel check, the sizes)."""
    start = perf_counter()
    settings = DUPLICATE_DEFAULTS.resolve(max_hamming, max_distance, min_similarity)
    scored = scored_pairs(meta, store, read, settings.max_hamming, settings.max_distance)
    near = scored.confirmed(settings)
    exact = exact_pairs(meta)
    groups = group_ids(store.ids, [(scored.a[near], scored.b[near]), exact])
    described = sorted((describe_group(meta, store, read, g) for g in groups), key=lambda g: (-len(g.members),
                                                                                            g.keeper))
    return DuplicateReport(described, len(store.ids), settings.max_hamming, settings.max_distance,
                           settings.min_similarity, len(scored.a),
                           int(near.sum()), len(exact[0]), scored.method, perf_counter() - start)


def pixel_size(read: Callable[[Record], bytes], record: Record) -> tuple[int | None, int | None]:
    """(width, height) from the image header; (None, None) for rows without a readable image."""
    try:
        with Image.open(io.BytesIO(read(record))) as image:
            return image.size
    except Exception:   # a feature-only row, a vanished file: its size is simply unknown
        return None, None


def describe_group(meta: Metadata, store: LibraryStore, read: Callable[[Record], bytes],
                   ids: np.ndarray) -> DuplicateGroup:
    """A group with its keeper (largest area, then oldest, then smallest id) and the distances to it."""
    records = [meta.get(int(i)) for i in ids]
    sizes = [pixel_size(read, r) for r in records]
    hashes = [meta.content_hash_of(r.id) for r in records]
    keep = min(range(len(records)), key=lambda n: (-((sizes[n][0] or 0) * (sizes[n][1] or 0)),
                                                   records[n].added_at, records[n].id))
    table, rows = store.feature_table(ids)
    distance = cosine_distances(table, np.full(len(ids), rows[keep]), rows)
    codes = [r.code for r in records]
    members = []
    for n, record in enumerate(records):
        same = n == keep or (hashes[n] is not None and hashes[n] == hashes[keep])
        hamming = (None if codes[n] is None or codes[keep] is None else
                   int(hamming_of(code_words(np.frombuffer(codes[n] + codes[keep], np.uint8).reshape(2, -1)),
                                  np.array([0]), np.array([1]))[0]))
        members.append(DuplicateMember(record.id, record.name, record.label, hamming,
                                       0.0 if same else round(max(float(distance[n]), 0.0), 6),
                                       same, *sizes[n], record.added_at))
    members.sort(key=lambda m: (m.id != records[keep].id, m.distance, m.id))
    return DuplicateGroup(records[keep].id, members)


def library_duplicates(store: LibraryStore, ids: Sequence[int], codes: np.ndarray | None, features: np.ndarray,
                       hashes: Sequence[str | None], reads: Sequence[Callable[[], bytes]]) -> dict[int, list[int]]:
    """For images just added (``ids``, their codes, features, content hashes and how to read their bytes):
    the library images added before each that it duplicates, exactly or nearly, under the default
    settings. One range search per image on the live index, no self-join; without codes (a hasher not
    fitted yet) exact ones only."""
    settings = DUPLICATE_DEFAULTS
    found: dict[int, set[int]] = {}
    for image_id, digest in zip(ids, hashes):
        if digest is not None:
            found[image_id] = {i for i in store.meta.ids_with_content(digest) if i < image_id}
    if codes is None or not len(ids):
        return {image_id: sorted(dups) for image_id, dups in found.items() if dups}
    hits = store.index.current().range_search(np.ascontiguousarray(codes, np.uint8), settings.max_hamming)
    pairs = []
    for n, (image_id, (_, near)) in enumerate(zip(ids, hits)):
        near = near[(near < image_id) & np.isin(near, store.ids)]
        if len(near):
            table, rows = store.feature_table(near)
            mine = np.asarray(features[n:n + 1], np.float16).astype(np.float32)
            distance = cosine_distances(np.concatenate([mine, table[rows].astype(np.float32)]),
                                        np.zeros(len(near), np.int64), np.arange(1, len(near) + 1))
            pairs += [(image_id, int(i)) for i in near[distance <= settings.max_distance]]
    if pairs:
        new = dict(zip(ids, reads))
        library = id_reader(store.meta, ImageFiles(store.path).read)
        a, b = np.array(pairs).T
        similarity = pair_similarity(a, b, lambda i: _bytes_or_none(new[i]) if i in new else library(i))
        for image_id, other in np.array(pairs)[~(similarity < settings.min_similarity)].tolist():
            found.setdefault(image_id, set()).add(other)
    return {image_id: sorted(dups) for image_id, dups in found.items() if dups}
