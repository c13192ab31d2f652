"""Per-query speed and P@20 of a collection: hashed coarse-to-fine search vs linear float search.

Caltech101 (all 8,677 images) in one zero-training collection: pretrained EfficientNet-Lite0
pooled features + ITQ codes fitted on them. Queries are the ``caltech101`` protocol's query
images, searched by library click (their id); the database is every other image (the other
queries are excluded from the results). Hashed: the top ``--candidates`` by Hamming (or the
``--radius`` ball) re-ranked by chi2 on the stored float16 features. Linear: chi2 against
every database feature held in memory. Ties go to database order in both. The CBIR thesis's
figures are printed beside ours as "quoted" rows.

    python benchmarks/collection_speed.py --work ~/.cache/hashseek/bench

The collection is built once (a few minutes on 2 cores) and reused from ``--work``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol  # noqa: E402
from hashseek.core.metrics import precision_at_k  # noqa: E402
from hashseek.index import create_index  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.search.collection import COLLECTION_JSON, FEATURES_FILE, INDEX_FILE, Collection  # noqa: E402
from hashseek.search.distances import pairwise_distance  # noqa: E402

QUOTED = [  # CBIR thesis, Caltech101, library click, P@20 (their CNN features and hashing)
    {"method": "hashed coarse-to-fine (quoted)", "seconds_per_query": 0.140, "precision_at_20": 0.7475},
    {"method": "linear float search (quoted)", "seconds_per_query": 0.368, "precision_at_20": 0.7975},
]


def build(path: Path, dataset, bits: int, backbone: str) -> dict:
    """Create and fill the collection unless it exists; returns how long building it took (then or now)."""
    record = path.with_name(path.name + ".build.json")
    if (path / COLLECTION_JSON).is_file() and record.is_file():
        return json.loads(record.read_text())
    start = time.perf_counter()
    with Collection.create(path, n_bits=bits, backbone=backbone) as collection:
        report = collection.add_dataset(dataset)
    seconds = time.perf_counter() - start
    print(f"built {path}: {report} in {seconds:.0f} s", file=sys.stderr)
    write_json(record, {"seconds": seconds, "images_per_second": report.added / seconds,
                        "load_average_after": os.getloadavg()[0]})
    return json.loads(record.read_text())


def hashed_run(collection: Collection, queries: np.ndarray, labels: dict[int, str], k: int, **options) -> dict:
    seconds, hits, candidates = [], [], []
    for query in queries.tolist():
        result = collection.search(query, k, exclude=queries, **options)
        seconds.append(result.timings["total"])
        candidates.append(result.n_candidates)
        hits.append(sum(hit.label == labels[query] for hit in result.hits) / k)
    return {"seconds_per_query": float(np.mean(seconds)), "median_seconds": float(np.median(seconds)),
            "precision_at_20": float(np.mean(hits)), "mean_candidates": float(np.mean(candidates))}


def linear_run(collection: Collection, queries: np.ndarray, database: np.ndarray, labels: dict[int, str],
               k: int) -> dict:
    """chi2 against every database feature (held in memory as float32, its fastest form), stable top-k."""
    db_features = collection.features_of(database).astype(np.float32)
    seconds, rows = [], []
    for query in queries.tolist():
        start = time.perf_counter()
        distances = pairwise_distance(collection.features_of([query])[0], db_features, "chi2")
        np.argsort(distances, kind="stable")[:k]
        seconds.append(time.perf_counter() - start)
        rows.append(distances)
    classes = {c: n for n, c in enumerate(sorted(set(labels.values())))}
    precision = precision_at_k(np.stack(rows), [classes[labels[q]] for q in queries.tolist()],
                               [classes[labels[d]] for d in database.tolist()], k)
    return {"seconds_per_query": float(np.mean(seconds)), "median_seconds": float(np.median(seconds)),
            "precision_at_20": precision, "mean_candidates": float(len(database))}


def index_memory_per_item(kind: str, n_bits: int, n: int = 200_000) -> float:
    """Resident bytes per item of a ``kind`` index (codes, ids and FAISS's id map), measured on n random codes."""
    codes = np.random.default_rng(0).integers(0, 256, (n, -(-n_bits // 8)), dtype=np.uint8)
    ids = np.arange(n, dtype=np.int64)
    page = os.sysconf("SC_PAGE_SIZE")
    before = int(Path("/proc/self/statm").read_text().split()[1]) * page
    index = create_index(kind, n_bits)
    index.add(codes, ids)
    after = int(Path("/proc/self/statm").read_text().split()[1]) * page
    return (after - before) / len(index)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=cache_root() / "bench")
    ap.add_argument("--bits", type=int, default=64)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--radius", type=int, default=18, help="Hamming radius of the radius + chi2 row")
    ap.add_argument("--seed", type=int, default=0, help="protocol seed")
    ap.add_argument("--out", default="docs/bench/collection_speed.json")
    args = ap.parse_args()
    k = 20
    load_start = os.getloadavg()[0]  # the machine may be shared: timings depend on it
    index_memory = index_memory_per_item("flat", args.bits)  # first, before freed memory can be reused

    dataset = load_dataset("caltech101")
    protocol = get_protocol("caltech101", dataset, seed=args.seed)
    path = args.work / f"caltech101-{args.backbone}-itq{args.bits}"
    built = build(path, dataset, args.bits, args.backbone)
    with Collection.open(path) as collection:
        records = collection.list(limit=len(dataset))
        id_of = {r.name: r.id for r in records}
        labels = {r.id: r.label for r in records}
        queries = np.array([id_of[i] for i in protocol.query])
        database = np.array([id_of[i] for i in protocol.database])
        assert len(queries) + len(database) == len(collection), "database = every image but the queries"
        collection.search(int(queries[0]), k)  # warm-up: index, memory map, distance kernels
        rows = [
            {"method": "hashed: Hamming top-20", **hashed_run(collection, queries, labels, k)},
            {"method": f"hashed: top-{args.candidates} Hamming + chi2",
             **hashed_run(collection, queries, labels, k, rerank="chi2", candidates=args.candidates)},
            {"method": f"hashed: radius {args.radius} + chi2",
             **hashed_run(collection, queries, labels, k, rerank="chi2", radius=args.radius)},
            {"method": "linear: chi2 over all features", **linear_run(collection, queries, database, labels, k)},
        ]
        info = collection.info()
    n = info["images"]
    storage = {
        "disk_bytes_per_image": info["bytes_on_disk"] / n,
        "disk_features_bytes_per_image": (path / FEATURES_FILE).stat().st_size / n,
        "disk_index_bytes_per_image": (path / INDEX_FILE).stat().st_size / n,
        # the index (measured) + the collection's id -> feature row map; features stay memory-mapped on disk
        "memory_bytes_per_image_hashed": index_memory + 16,
        "memory_bytes_per_image_linear": 4 * info["feature_dim"],  # every feature resident, float32
    }
    setup = {"dataset": "caltech101", "protocol": f"caltech101 seed {args.seed}", "n_images": n,
             "n_query": len(queries), "n_database": len(database), "bits": args.bits, "backbone": args.backbone,
             "hasher": info["hasher"]["hasher"], "n_fit": info["hasher"]["n_fit"], "index": info["index"],
             "k": k, "query": "library click (by id), other queries excluded", "ties": "database order",
             "threads": {"faiss": 1, "distances": 1},
             "build": built, "machine": machine(), "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]}}
    write_json(args.out, {"setup": setup, "rows": rows, "quoted": QUOTED, "storage": storage})

    m = setup["machine"]
    print(f"Caltech101 {n} images: {len(queries)} protocol queries (seed {args.seed}) by library click vs "
          f"{len(database)} database images; {args.backbone} pooled + ITQ {args.bits} bits fitted on "
          f"{setup['n_fit']} images, {info['index']} index, built in {built['seconds']:.0f} s "
          f"({built['images_per_second']:.1f} images/s); {m['cpu']}, {m['cores']} cores, one thread per query, "
          f"load average {load_start:.1f} -> {setup['load_average_1min']['end']:.1f}\n")
    print("| method | s / query (mean) | median | candidates | P@20 |")
    print("|---|---|---|---|---|")
    for row in rows + QUOTED:
        median = f"{row['median_seconds']:.4f}" if "median_seconds" in row else "-"
        cands = f"{row['mean_candidates']:.0f}" if "mean_candidates" in row else "-"
        print(f"| {row['method']} | {row['seconds_per_query']:.4f} | {median} | {cands} | {row['precision_at_20']:.4f} |")
    print(f"\nbytes per image: {storage['disk_bytes_per_image']:.0f} on disk "
          f"({storage['disk_features_bytes_per_image']:.0f} float16 features); in memory "
          f"{storage['memory_bytes_per_image_hashed']:.0f} for hashed search vs "
          f"{storage['memory_bytes_per_image_linear']:.0f} for linear float search")


if __name__ == "__main__":
    main()
