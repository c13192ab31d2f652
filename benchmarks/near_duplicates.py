"""Near-duplicate detection on Caltech101: pair recall and precision of ``Collection.duplicates``.

1,000 originals drawn (seed 0) from the 8,677 Caltech101 images each get 5 copies: a 50% resize,
a JPEG re-compression at quality 30, a 90% centre crop, brightness +20% and a 5 degree rotation
(black corners). The 13,677 images go into one zero-training collection (pretrained
EfficientNet-Lite0 + ITQ 64 bits, fitted on the Caltech101 images, the copies added after).
The ground truth: a true pair is two images of one duplicate set. A set is an original's family
(the original and its 5 copies) joined with Caltech101's own duplicates, decided before any
detector ran by a strict rule on the base images alone (``natural_duplicates``): the same size
within 2 px and grey thumbnails (aspect ignored) that correlate >= 0.95 at 32x32 and >= 0.99 at
128x128, i.e. the same photograph saved twice. Caltech101 holds such repeats (menorah, buddha,
anchor, pagoda, ibis, water lilies, some Faces and Faces_easy, ...); without the rule, a detector
that groups a planted original with its repeat was charged 6 false pairs for it. Looser relatives
(retouched, vignetted, re-coloured or captioned versions of one photo; catalogue shots of one
motorbike; Faces_easy crops of Faces; the mirrored Leopards) stay distinct: a pair of them counts
as false. Two figures per half: ``tune``/``eval`` score the pairs with a planted image (an
original or a copy) of the half, pairs of two unplanted images are left out; ``*_strict`` scores
every pair with an image of the half. Per-edit recall: the share of the copies of each edit that
land in their original's group.

Tuning and evaluation never share an image: every Caltech101 image falls (seed 0) in the tuning
or the evaluation half (500 originals in each, the other images split evenly), copies follow
their original. The defaults of ``search.duplicates`` were chosen on the tuning half: the largest
pair F1 among the settings with pair precision >= 0.98 there (ties: the cheaper, stricter
settings); the figures of the evaluation half are the bar. A predicted pair counts in a half when
either image lies in it (a pair across the halves counts in both). The grid:
max_hamming 4..12, max_distance 0.1..0.35, min_similarity 0.3..0.95; the self-join (with the
feature distances) and the pixel similarities are computed once (at the grid's widest) and kept
beside the collection, the pixels under a hash of ``search/pixel_check.py``.

    nice -n 19 python benchmarks/near_duplicates.py --work ~/.cache/hashseek/bench/near_duplicates

The copies and the collection are made once (several minutes on 2 cores) and reused.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.core.atomic import atomic_path, atomic_write_bytes, atomic_write_json  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.data.datasets import open_images  # noqa: E402
from hashseek.data.near_copies import COPY_KINDS as KINDS, make_copy  # noqa: E402
from hashseek.core.paths import data_root  # noqa: E402
from hashseek.data.named import NAMED_DATASETS  # noqa: E402
from hashseek.search.collection import COLLECTION_JSON, Collection  # noqa: E402
from hashseek.search import pixel_check  # noqa: E402
from hashseek.search.duplicates import (DUPLICATE_DEFAULTS, DuplicateSettings, ScoredPairs, exact_pairs,  # noqa: E402
                                       feature_pairs, with_pixels)
from hashseek.search.selfjoin import components  # noqa: E402

DISTANCES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35)                    # max_distance values swept
SIMILARITIES = tuple(np.round(np.arange(0.3, 0.951, 0.025), 3))   # min_similarity values swept
N_ORIGINALS = 1000


def make_copies(dataset, work: Path) -> dict:
    """Draw the originals and halves, write the copies under work/copies/<class>/; the manifest."""
    manifest_path = work / "manifest.json"
    if manifest_path.is_file():
        return json.loads(manifest_path.read_text())
    rng = np.random.default_rng(0)
    ids = dataset.ids
    originals = sorted(rng.choice(len(ids), N_ORIGINALS, replace=False).tolist())
    tune_originals = set(rng.permutation(originals)[:N_ORIGINALS // 2].tolist())
    others = [i for i in range(len(ids)) if i not in set(originals)]
    tune_others = set(rng.permutation(others)[:len(others) // 2].tolist())
    copies = work / "copies"
    families = []
    for n, index in enumerate(originals):
        image_id = ids[index]
        image = Image.open(io.BytesIO(dataset.read_bytes(image_id))).convert("RGB")
        names = []
        for kind in KINDS:
            name = f"{Path(image_id).stem}__{n:04d}__{kind}.jpg"
            target = copies / Path(image_id).parent / name
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, make_copy(image, kind))
            names.append(name)
        families.append({"original": image_id, "copies": names, "half": "tune" if index in tune_originals else "eval"})
        if n % 100 == 0:
            print(f"copies of {n}/{N_ORIGINALS} originals", file=sys.stderr)
    manifest = {"families": families,
                "other_halves": {ids[i]: ("tune" if i in tune_others else "eval") for i in others}}
    write_json(manifest_path, manifest)
    return manifest


def build(work: Path, archive: Path) -> dict:
    """The collection: Caltech101 first (the ITQ fit), then the copies; how long it took."""
    path, record = work / "collection", work / "build.json"
    if (path / COLLECTION_JSON).is_file() and record.is_file():
        return json.loads(record.read_text())
    start = time.perf_counter()
    with Collection.create(path) as collection:
        first = collection.add_folder(archive)
        second = collection.add_folder(work / "copies")
    seconds = time.perf_counter() - start
    print(f"built {path}: {first}; {second} in {seconds:.0f} s", file=sys.stderr)
    return json.loads(write_json(record, {"seconds": seconds, "images": first.added + second.added}).read_text())


def natural_duplicates(dataset, work: Path) -> list[list[str]]:
    """Caltech101's own repeats by the strict rule of the module docstring: pairs of image ids, cached."""
    path = work / "natural_duplicates.json"
    if path.is_file():
        return json.loads(path.read_text())["pairs"]
    ids = dataset.ids
    small, sizes = np.empty((len(ids), 32 * 32), np.float32), np.empty((len(ids), 2), int)
    for n, image_id in enumerate(tqdm(ids, desc="natural duplicates: thumbnails", mininterval=5)):
        with Image.open(io.BytesIO(dataset.read_bytes(image_id))) as image:
            sizes[n] = image.size
            image.draft("L", (128, 128))
            small[n] = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), np.float32).ravel()
    small = _unit_rows(small)
    pairs = []
    for start in range(0, len(ids), 1024):                        # all pairs, 1,024 rows at a time
        i, j = np.nonzero(small[start:start + 1024] @ small.T >= 0.95)
        i += start
        keep = (i < j) & (np.abs(sizes[i] - sizes[j]) <= 2).all(axis=1)
        pairs += list(zip(i[keep].tolist(), j[keep].tolist()))
    large = {}

    def thumbnail(n: int) -> np.ndarray:
        if n not in large:
            with Image.open(io.BytesIO(dataset.read_bytes(ids[n]))) as image:
                grey = np.asarray(image.convert("L").resize((128, 128), Image.Resampling.BOX), np.float32)
            large[n] = _unit_rows(grey.reshape(1, -1))[0]
        return large[n]
    same = [[ids[i], ids[j]] for i, j in pairs if float(thumbnail(i) @ thumbnail(j)) >= 0.99]
    atomic_write_json(path, {"rule": "same size within 2 px; grey thumbnails (aspect ignored, mean-free) correlate "
                                     ">= 0.95 at 32x32 and >= 0.99 at 128x128", "pairs": same})
    print(f"{len(same)} natural duplicate pairs among {len(ids)} images", file=sys.stderr)
    return same


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


@dataclass
class Truth:
    """Each library image (ids ascending): its duplicate set (-1: none), whether it is planted (an original
    or a copy), its half (True: tuning), its copy kind ('' for Caltech101 images) and its family's original."""

    ids: np.ndarray
    truth: np.ndarray
    planted: np.ndarray
    tune: np.ndarray
    kind: np.ndarray
    original: np.ndarray   # row of the family's original (-1: not planted)


def ground_truth(collection: Collection, manifest: dict, natural: list[list[str]]) -> Truth:
    """Families (an original and its copies) joined with the natural duplicates, as duplicate sets."""
    family_of = {f["original"]: n for n, f in enumerate(manifest["families"])}
    half_of = {f["original"]: f["half"] for f in manifest["families"]} | manifest["other_halves"]
    records = collection.list(0, -1)
    n = len(records)
    ids, family, tune = np.array([r.id for r in records]), np.full(n, -1), np.zeros(n, bool)
    kind, row_of = np.full(n, "", object), {}
    for row, record in enumerate(records):
        where, separator, member = record.source.partition("::")
        if separator:
            family[row] = family_of.get(member, -1)
            tune[row] = half_of[member] == "tune"
            row_of[member] = row
        else:
            family[row] = int(Path(record.source).name.split("__")[-2])
            kind[row] = Path(record.source).stem.split("__")[-1]
            tune[row] = manifest["families"][family[row]]["half"] == "tune"
    planted = family >= 0
    original = np.full(n, -1)
    original[planted] = [row_of[manifest["families"][f]["original"]] for f in family[planted]]
    a = np.concatenate([original[planted], [row_of[x] for x, _ in natural]]).astype(np.int64)
    b = np.concatenate([np.flatnonzero(planted), [row_of[y] for _, y in natural]]).astype(np.int64)
    root = components(n, a, b)
    _, inverse, count = np.unique(root, return_inverse=True, return_counts=True)
    return Truth(ids, np.where(count[inverse.ravel()] > 1, root, -1), planted, tune, kind, original)


def _pairs_touching(size: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Pairs inside groups of ``size`` members with at least one of their ``scored`` members."""
    return size * (size - 1) // 2 - (size - scored) * (size - scored - 1) // 2


def _group_counts(keys: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, inverse = np.unique(keys, axis=-1, return_inverse=True)
    inverse = inverse.ravel()
    return np.bincount(inverse), np.bincount(inverse, weights=scored).astype(np.int64)


def pair_scores(root: np.ndarray, truth: Truth, scored: np.ndarray) -> dict:
    """Pair precision and recall of the groups (``root``: each image's component) over the pairs with a
    ``scored`` image."""
    predicted = int(_pairs_touching(*_group_counts(root, scored)).sum())
    inside = truth.truth >= 0
    found = int(_pairs_touching(*_group_counts(np.stack([root[inside], truth.truth[inside]]), scored[inside])).sum())
    n_true = int(_pairs_touching(*_group_counts(truth.truth[inside], scored[inside])).sum())
    return {"predicted_pairs": predicted, "true_pairs_found": found, "true_pairs": n_true,
            "precision": found / predicted if predicted else 1.0, "recall": found / n_true if n_true else 1.0}


def half_scores(root: np.ndarray, truth: Truth) -> dict:
    """Both halves, pairs with a planted image (``tune``, ``eval``) and every pair (``*_strict``)."""
    out = {}
    for half, mask in (("tune", truth.tune), ("eval", ~truth.tune)):
        out[half] = pair_scores(root, truth, mask & truth.planted)
        out[half + "_strict"] = pair_scores(root, truth, mask)
    return out


def edit_recall(root: np.ndarray, truth: Truth, half: np.ndarray) -> dict:
    """Per edit: the share of the half's copies that land in their original's group."""
    out = {}
    for kind in KINDS:
        copies = np.flatnonzero((truth.kind == kind) & half)
        out[kind] = float(np.mean(root[copies] == root[truth.original[copies]]))
    return out


def sweep(truth: Truth, scored: ScoredPairs, exact, radii, distances, similarities) -> list[dict]:
    """Pair scores of both halves at every (max_hamming, max_distance, min_similarity) of the grid."""
    ids = truth.ids
    a, b = np.searchsorted(ids, scored.a), np.searchsorted(ids, scored.b)
    ea, eb = np.searchsorted(ids, exact[0]), np.searchsorted(ids, exact[1])
    rows = []
    for radius in radii:
        for distance in distances:
            for similarity in similarities:
                keep = scored.confirmed(DuplicateSettings(radius, distance, similarity))
                root = components(len(ids), np.concatenate([a[keep], ea]), np.concatenate([b[keep], eb]))
                rows.append({"max_hamming": int(radius), "max_distance": float(distance),
                             "min_similarity": float(similarity), **half_scores(root, truth)})
        print(f"swept max_hamming {radius}", file=sys.stderr)
    return rows


def f1(scores: dict) -> float:
    p, r = scores["precision"], scores["recall"]
    return 2 * p * r / (p + r) if p + r else 0.0


def choose(rows: list[dict], min_precision: float) -> dict:
    """The largest tuning F1 at tuning precision >= ``min_precision``; ties: the cheaper, stricter settings."""
    ok = [r for r in rows if r["tune"]["precision"] >= min_precision]
    return max(ok, key=lambda r: (round(f1(r["tune"]), 4), -r["max_hamming"], -r["max_distance"],
                                  r["min_similarity"]))


def scored_once(collection: Collection, work: Path, radius: int, distance: float) -> tuple[ScoredPairs, float]:
    """The self-join with feature distances (cached by radius) and the pixel similarities (cached by radius,
    distance and the pixel check's source); the seconds the join took when first made."""
    join_cache = work / f"join-r{radius}.npz"
    if join_cache.is_file():
        saved = np.load(join_cache)
        pairs = ScoredPairs(*(saved[k] for k in ("a", "b", "hamming", "distance")),
                            np.full(len(saved["a"]), np.nan, np.float32), str(saved["method"]))
        seconds = float(saved["seconds"])
    else:
        start = time.perf_counter()
        pairs = feature_pairs(collection._meta, collection._store, radius)
        seconds = time.perf_counter() - start
        with atomic_path(join_cache) as tmp, open(tmp, "wb") as out:
            np.savez(out, a=pairs.a, b=pairs.b, hamming=pairs.hamming, distance=pairs.distance,
                     method=pairs.method, seconds=seconds)
    version = hashlib.sha256(Path(pixel_check.__file__).read_bytes()).hexdigest()[:10]
    pixel_cache = work / f"pixels-r{radius}-d{distance}-{version}.npy"
    if pixel_cache.is_file():
        return ScoredPairs(pairs.a, pairs.b, pairs.hamming, pairs.distance, np.load(pixel_cache), pairs.method), seconds
    scored = with_pixels(pairs, collection._meta, collection._files.read, distance)
    with atomic_path(pixel_cache) as tmp, open(tmp, "wb") as out:
        np.save(out, scored.similarity)
    return scored, seconds


def plot(rows: list[dict], defaults: DuplicateSettings, at_defaults: dict, path: Path) -> None:
    """Left: pair precision-recall over min_similarity at the default radius, for each max_distance swept;
    right: precision and recall against min_similarity at the default radius and distance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    for distance in sorted({row["max_distance"] for row in rows}):
        line = [row for row in rows if row["max_hamming"] == defaults.max_hamming and row["max_distance"] == distance]
        bold = np.isclose(distance, defaults.max_distance)
        for half, style in (("eval", "-"), ("eval_strict", ":")) if bold else (("eval", "-"),):
            ax.plot([x[half]["recall"] for x in line], [x[half]["precision"] for x in line], style,
                    lw=2.5 if bold else 0.9,
                    label=f"cosine <= {distance:g}" + (", all pairs" if "strict" in half else ""))
        if bold:
            for half, style in (("eval", "-"), ("eval_strict", ":")):
                for measure, colour in (("precision", "C0"), ("recall", "C1")):
                    right.plot([x["min_similarity"] for x in line], [x[half][measure] for x in line], style,
                               color=colour, label=f"{measure}" + (", all pairs" if "strict" in half else ""))
    ax.plot([at_defaults["eval"]["recall"]], [at_defaults["eval"]["precision"]], "ko",
            label=f"defaults (Hamming <= {defaults.max_hamming}, cosine <= {defaults.max_distance:g}, "
                  f"similarity >= {defaults.min_similarity:g})")
    right.axvline(defaults.min_similarity, color="k", lw=0.8, label="default min_similarity")
    for axis in (ax, right):
        axis.axhline(0.98, color="grey", lw=0.5)
        axis.legend(fontsize=7, loc="lower left")
    ax.axvline(0.95, color="grey", lw=0.5)
    ax.set_xlabel("pair recall (evaluation half)")
    ax.set_ylabel("pair precision (evaluation half)")
    ax.set_xlim(0.8, 1.0)
    ax.set_ylim(0.8, 1.002)
    right.set_xlabel("min_similarity (pixel check threshold)")
    right.set_ylabel("evaluation half")
    right.set_ylim(0.8, 1.002)
    fig.suptitle(f"Near-duplicates, Caltech101 + 1,000 x 5 copies: over min_similarity, Hamming <= "
                 f"{defaults.max_hamming}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=cache_root() / "bench" / "near_duplicates")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--max-radius", type=int, default=12, help="largest max_hamming swept")
    parser.add_argument("--min-precision", type=float, default=0.98, help="tuning-half precision floor")
    parser.add_argument("--out", type=Path, default=Path("docs/bench/near_duplicates.json"))
    args = parser.parse_args(argv)
    archive = data_root() / NAMED_DATASETS["caltech101"]
    args.work.mkdir(parents=True, exist_ok=True)
    dataset = open_images(archive)
    manifest = make_copies(dataset, args.work)
    built = build(args.work, archive)
    if args.build_only:
        return
    natural = natural_duplicates(dataset, args.work)
    with Collection.open(args.work / "collection", read_only=True) as collection:
        truth = ground_truth(collection, manifest, natural)
        ids = truth.ids
        scored, join_seconds = scored_once(collection, args.work, args.max_radius, max(DISTANCES))
        exact = exact_pairs(collection._meta)
        rows = sweep(truth, scored, exact, range(4, args.max_radius + 1, 2), DISTANCES, SIMILARITIES)
        chosen = choose(rows, args.min_precision)
        report = collection.duplicates()   # the shipped defaults, as a user gets them
        edges = [(np.full(len(g.members), g.keeper), np.array(g.ids)) for g in report.groups]
        root = components(len(ids), *(np.searchsorted(ids, np.concatenate([e[k] for e in edges] or [np.empty(0, int)]))
                                       for k in (0, 1)))
    defaults = half_scores(root, truth)
    plot(rows, DUPLICATE_DEFAULTS, defaults, args.out.with_suffix(".png"))
    a, b = np.searchsorted(ids, scored.a), np.searchsorted(ids, scored.b)
    true = (truth.truth[a] == truth.truth[b]) & (truth.truth[a] >= 0)
    payload = {
        "command": "nice -n 19 python benchmarks/near_duplicates.py", "machine": machine(),
        "data": "caltech101.tar: 8,677 images; 1,000 originals (seed 0) x 5 copies " + ", ".join(KINDS),
        "collection": "zero-training: EfficientNet-Lite0 pooled features + ITQ 64 bits fitted on the 8,677 "
                      "Caltech101 images; copies added after",
        "build": built, "images": len(ids),
        "protocol": "pair precision/recall of the groups; tuning and evaluation halves share no image "
                    f"(defaults chosen on tuning: largest F1 at precision >= {args.min_precision}). "
                    "A true pair: two images of one duplicate set (an original with its 5 copies, joined with "
                    "Caltech101's own repeats by the strict rule of 'natural_duplicates'). "
                    "'tune'/'eval': pairs with a planted image (an original or a copy) of the half are scored, pairs "
                    "of two unplanted Caltech101 images are not; '*_strict': every pair with an image of the half "
                    "is scored; 'edit_recall_at_defaults': per edit, the share of the half's copies in their "
                    "original's group",
        "natural_duplicates": {"rule": "same size within 2 px; grey thumbnails (aspect ignored, mean-free) "
                                       "correlate >= 0.95 at 32x32 and >= 0.99 at 128x128",
                               "pairs": len(natural), "sets_of_planted_originals_with_one":
                                   len(np.intersect1d(truth.truth[truth.planted],
                                                      truth.truth[~truth.planted & (truth.truth >= 0)]))},
        "defaults": {"max_hamming": DUPLICATE_DEFAULTS.max_hamming, "max_distance": DUPLICATE_DEFAULTS.max_distance,
                     "min_similarity": DUPLICATE_DEFAULTS.min_similarity},
        "chosen_on_tuning_half": {k: chosen[k] for k in ("max_hamming", "max_distance", "min_similarity", "tune")},
        "at_defaults": defaults,
        "edit_recall_at_defaults": {half: edit_recall(root, truth, mask)
                                    for half, mask in (("tune", truth.tune), ("eval", ~truth.tune))},
        "collection_duplicates_seconds": report.seconds, "collection_duplicates_note": "niced, beside other jobs",
        "groups_at_defaults": len(report.groups), "candidates_at_defaults": report.candidates,
        "self_join": {"max_radius": args.max_radius, "pairs": len(scored.a), "method": scored.method,
                      "seconds": join_seconds},
        "true_pair_quantiles_within_the_join": {  # 0.5, 0.9, 0.99 of the true pairs the join found
            "hamming": np.quantile(scored.hamming[true], [0.5, 0.9, 0.99]).tolist() if true.any() else [],
            "distance": np.quantile(scored.distance[true], [0.5, 0.9, 0.99]).tolist() if true.any() else []},
        "sweep": rows,
    }
    write_json(args.out, payload)
    print(json.dumps({k: payload[k] for k in ("defaults", "chosen_on_tuning_half", "at_defaults",
                                              "edit_recall_at_defaults", "collection_duplicates_seconds")}, indent=1))


if __name__ == "__main__":
    main()
