"""A zero-training collection grown one image at a time ends as good as one built in one batch
(the refit policy of ``hashseek.search.refit_policy``), and the study the policy was chosen by.

Bar (``docs/bench/refit_growth.json``): Caltech101, ``caltech101`` protocol (seed 0). The library is
2,000 images drawn at random (seed 0) from the protocol's database, leaving out its train and
validation images (the policy was chosen on those); the queries are the protocol's query images,
none of which is in the library. Two collections with the default policy, built from the same
encoded features through ``Collection.add_features`` (no codes given: the collection codes and
refits exactly as it does for added images): *grown*, one image per call from 1 to 2,000, and
*batch*, all 2,000 in one call. Both are searched with the default search (``SEARCH_DEFAULTS``:
Hamming candidates re-ranked by cosine) by each query's feature through ``search_vector``, over
the whole library (P@20 and mAP@all), and Hamming-only (``rerank=None``) too. Bar: the grown
collection's P@20 within 0.01 of the batch one's. ``--e2e N`` repeats it end to end on the first N
library images: real files added one per ``add_paths`` call (decoded and encoded there) against
one ``add_paths`` call with all of them.

Study (``--select``, ``docs/bench/refit_policy_select.json``): on validation data only, the
protocol's train images (2,454) in a random order as the library, its validation images as the
queries. At library sizes n, ITQ fitted on the first m <= n images (m = n / factor: the worst
moment of a policy with that growth factor, just before it refits) codes the whole library; the
default search and Hamming-only are scored as above, with the engine's own order
(``search.engine.result_order``). Also the refits each factor makes from 2 to 2,000 images.

    python benchmarks/refit_growth.py --e2e 200
    python benchmarks/refit_growth.py --select

Features come from the hashseek feature cache (``extract_features`` of the whole dataset: about
10 minutes on an idle 2-core machine the first time, then a cache hit); the same pooled, float16
features a collection stores.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.core.bits import hamming_distances  # noqa: E402
from hashseek.core.metrics import mean_average_precision, precision_at_k  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol  # noqa: E402
from hashseek.hashers import create_hasher  # noqa: E402
from hashseek.models.features import BackboneEncoder, extract_features  # noqa: E402
from hashseek.search.collection import Collection  # noqa: E402
from hashseek.search.defaults import SEARCH_DEFAULTS  # noqa: E402
from hashseek.search.engine import candidate_cut, result_order  # noqa: E402
from hashseek.search.refit_policy import REFIT_DEFAULTS, RefitPolicy  # noqa: E402

FACTORS = (1.25, 1.5, 2.0, 3.0, 4.0)
SIZES = (64, 128, 256, 512, 1024, 2048, 2454)


def features(dataset) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """Row of each image id, (n, d) float32 of the stored float16 features, integer labels."""
    encoded = extract_features(dataset, encoder=BackboneEncoder("efficientnet_lite0"))
    rows = {image_id: n for n, image_id in enumerate(encoded.ids)}
    return rows, np.asarray(encoded.features, np.float16).astype(np.float32), np.asarray(encoded.labels)


def scores(ranked: list[np.ndarray], query_labels: np.ndarray, library_labels: np.ndarray) -> dict:
    """P@20 and mAP@all of rankings given as library positions in result order (one per query)."""
    order = np.stack(ranked)
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(order.shape[1])[None].repeat(len(order), 0), axis=1)
    return {"precision_at_20": round(precision_at_k(position, query_labels, library_labels, 20), 4),
            "map_all": round(mean_average_precision(position, query_labels, library_labels), 4)}


def search_all(collection: Collection, queries: np.ndarray, query_labels: np.ndarray, library_labels: np.ndarray,
               position_of: dict[int, int]) -> dict:
    """Every query by its feature, the whole library ranked: the default search and Hamming-only."""
    out = {}
    for name, rerank in (("default", SEARCH_DEFAULTS.rerank), ("hamming_only", None)):
        ranked = [np.array([position_of[i] for i in collection.search_vector(q, k=len(collection), rerank=rerank).ids])
                  for q in tqdm(queries, desc=f"searching {collection.path.name} ({name})", unit="query")]
        out[name] = scores(ranked, query_labels, library_labels)
    return out


def grow(collection: Collection, add_one, n: int) -> dict:
    """Add ``n`` items one call each; the sizes at which the hasher was (re)fitted and how long those calls took."""
    refits, refit_seconds, plain = [], 0.0, []
    for i in tqdm(range(n), desc=f"growing {collection.path.name}", unit="img"):
        digest = collection.image_hasher.fit_digest
        start = time.perf_counter()
        add_one(i)
        took = time.perf_counter() - start
        if collection.image_hasher.fit_digest != digest:
            refits.append(len(collection))
            refit_seconds += took
        else:
            plain.append(took)
    return {"refits": len(refits), "refit_at": refits, "seconds_of_adds_that_refitted": round(refit_seconds, 2),
            "median_seconds_of_other_adds": round(float(np.median(plain)), 4), "seconds_total": None}


def bar(args) -> dict:
    dataset = load_dataset("caltech101")
    protocol = get_protocol("caltech101", dataset, seed=0)
    rows, feats, labels = features(dataset)
    held = set(protocol.train) | set(protocol.validation)
    pool = [i for i in protocol.database if i not in held]
    library = [pool[j] for j in np.random.default_rng(0).permutation(len(pool))[:args.images]]
    lib_rows, q_rows = np.array([rows[i] for i in library]), np.array([rows[i] for i in protocol.query])
    assert not set(library) & set(protocol.query)
    names = [dataset.classes[label] for label in labels[lib_rows]]
    out = {"data": {"dataset": "caltech101", "protocol": "caltech101 seed 0", "library": len(library),
                    "library_from": "protocol database minus its train and validation images, random order (seed 0)",
                    "queries": len(q_rows), "queries_from": "protocol query images (none in the library)"},
           "policy": REFIT_DEFAULTS.to_dict(), "search": SEARCH_DEFAULTS.to_dict()}
    work = Path(tempfile.mkdtemp(prefix="refit-growth-"))
    try:
        results = {}
        for mode in ("grown", "batch"):
            start = time.perf_counter()
            with Collection.create(work / mode) as collection:
                if mode == "grown":
                    made = grow(collection, lambda i: collection.add_features(
                        feats[lib_rows[i:i + 1]], None, [f"f:{library[i]}"], [library[i]], names[i:i + 1]), len(library))
                else:
                    collection.add_features(feats[lib_rows], None, [f"f:{i}" for i in library], library, names)
                    made = {"refits": 1, "refit_at": [len(collection)]}
                made["seconds_total"] = round(time.perf_counter() - start, 2)
                made["fit"] = collection.info()["fit"]
                position_of = {r.id: n for n, r in enumerate(collection.list(limit=len(library)))}
                made.update(search_all(collection, feats[q_rows], labels[q_rows], labels[lib_rows], position_of))
            results[mode] = made
        out["features"] = results
        gap = results["grown"]["default"]["precision_at_20"] - results["batch"]["default"]["precision_at_20"]
        out["bar"] = {"p20_grown_minus_batch": round(gap, 4), "tolerance": 0.01, "passed": abs(gap) <= 0.01}
        if args.e2e:
            out["end_to_end"] = end_to_end(args.e2e, dataset, library, labels, lib_rows, feats, q_rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def end_to_end(n: int, dataset, library, labels, lib_rows, feats, q_rows, work: Path) -> dict:
    """The first ``n`` library images as real files: one ``add_paths`` call each, against one call for all."""
    files = []
    for image_id in library[:n]:
        target = work / "files" / image_id
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(dataset.read_bytes(image_id))
        files.append(target)
    names = [dataset.classes[label] for label in labels[lib_rows[:n]]]
    out = {"images": n, "how": "Collection.add_paths: one image per call (grown) vs all in one call (batch); "
                              "queries searched by their cached features"}
    for mode in ("grown", "batch"):
        start = time.perf_counter()
        with Collection.create(work / f"e2e-{mode}") as collection:
            if mode == "grown":
                made = grow(collection, lambda i: collection.add_paths(files[i:i + 1], names[i:i + 1],
                                                                       progress=False), n)
            else:
                collection.add_paths(files, names, progress=True)
                made = {"refits": 1, "refit_at": [len(collection)]}
            made["seconds_total"] = round(time.perf_counter() - start, 2)
            by_source = {str(Path(f).resolve()): k for k, f in enumerate(files)}
            position_of = {r.id: by_source[r.source] for r in collection.list(limit=n)}
            made.update(search_all(collection, feats[q_rows], labels[q_rows], labels[lib_rows[:n]], position_of))
        out[mode] = made
    return out


def select(args) -> dict:
    """The policy study on validation data (see the module docstring)."""
    dataset = load_dataset("caltech101")
    protocol = get_protocol("caltech101", dataset, seed=0)
    rows, feats, labels = features(dataset)
    order = np.array([rows[i] for i in protocol.train])[np.random.default_rng(0).permutation(len(protocol.train))]
    queries, query_labels = feats[[rows[i] for i in protocol.validation]], labels[[rows[i] for i in protocol.validation]]
    table = []
    cases = [(n, m, f) for n in SIZES if n <= len(order) for f, m in [(1.0, n)] + [(f, max(2, int(n / f))) for f in FACTORS]]
    for n, m, factor in tqdm(cases, desc="fits", unit="fit"):
        library, library_labels = feats[order[:n]], labels[order[:n]]
        start = time.perf_counter()
        itq = create_hasher("itq", 64, seed=0).fit(feats[order[:m]])
        fit_seconds = time.perf_counter() - start
        hamming = hamming_distances(itq.transform(queries), itq.transform(library))
        unit = library / np.linalg.norm(library, axis=1, keepdims=True)
        cosine = 1 - (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
        ids, cut = np.arange(n), SEARCH_DEFAULTS.candidate_count(n)
        default = [result_order(h, d, ids, candidate_cut(h, cut)) for h, d in zip(hamming, cosine)]
        hamming_only = [np.lexsort((ids, h)) for h in hamming]
        table.append({"library": n, "fitted_on": m, "factor": factor, "fit_seconds": round(fit_seconds, 2),
                      "default": scores(default, query_labels, library_labels),
                      "hamming_only": scores(hamming_only, query_labels, library_labels)})
    ladders = {}
    for factor in FACTORS:
        policy, fitted, sizes = RefitPolicy(min_images=REFIT_DEFAULTS.min_images, growth=factor), None, []
        for images in range(1, 2001):
            if policy.due(images, fitted):
                sizes.append(images)
                fitted = images
        ladders[str(factor)] = {"refits": len(sizes), "refit_at": sizes,
                                "images_recoded": sum(sizes), "worst_fit_share": round(1 / factor, 3)}
    return {"data": {"dataset": "caltech101", "protocol": "caltech101 seed 0", "library": "train images, random "
                     "order (seed 0)", "queries": f"{len(queries)} validation images"},
            "rows": table, "refits_from_2_to_2000": ladders, "min_images": REFIT_DEFAULTS.min_images,
            "note": "factor 1.0 rows: fit on the whole library (what a refit gives); others: fit on n/factor"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="library size of the bar")
    parser.add_argument("--e2e", type=int, default=0, help="also the end-to-end run on this many real files")
    parser.add_argument("--select", action="store_true", help="the policy study on validation data instead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    out = select(args) if args.select else bar(args)
    out.update(machine=machine(), seconds=round(time.perf_counter() - start, 1),
               command="python " + " ".join(["benchmarks/refit_growth.py"] + sys.argv[1:]))
    default = Path("docs/bench") / ("refit_policy_select.json" if args.select else "refit_growth.json")
    print(f"wrote {write_json(args.out or default, out)}")
    if not args.select:
        print({mode: row["default"] for mode, row in out["features"].items()}, out["bar"])


if __name__ == "__main__":
    main()
