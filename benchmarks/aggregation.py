"""Zero-training float retrieval with each conv-map aggregation (issue #20): mAP@all, P@20 and the
query time of a linear cosine search, on the caltech101, cars-bmw13 and cifar10 protocols.

    python benchmarks/aggregation.py [--protocols cars-bmw13 caltech101] [--out docs/bench/aggregation.json]
    python benchmarks/aggregation.py --protocols cifar10 --poolings avg gem crow --out docs/bench/aggregation_cifar10.json

The backbone's last conv maps of the query and database images are extracted once, part by part
(``benchmarks/protocol_maps.py``, cached; cifar10's 55,000 are 6.9 GB), and read memory-mapped; every
pooling then runs on them in torch, 256 maps at a time. R-MAC's whitening is learnt on (up to
2,000) database maps; NetVLAD is k-means-initialised on database
descriptors and not trained (its trained form goes through the trainer).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _common import machine, write_json
from protocol_maps import protocol_maps
from hashseek.core.metrics import mean_average_precision, precision_at_k
from hashseek.models.aggregation import list_poolings
from hashseek.models.aggregation.fitting import fit_pooling, pool_maps


def cosine_distances(q: np.ndarray, d: np.ndarray, block: int = 4096) -> np.ndarray:
    return np.concatenate([1 - q.astype(np.float32) @ d[i:i + block].astype(np.float32).T
                           for i in range(0, len(d), block)], axis=1)


def run(protocol_name: str, backbone: str, poolings: list[str]) -> list[dict]:
    parts = protocol_maps(protocol_name, backbone=backbone, parts=("query", "database"))
    query, database = parts["query"], parts["database"]
    q_labels, d_labels = np.asarray(query.labels), np.asarray(database.labels)
    n = len(database.ids)
    fit_rows = np.arange(n) if n <= 2000 else np.sort(np.random.default_rng(0).choice(n, 2000, replace=False))
    rows = []
    for name in poolings:
        t0 = time.perf_counter()
        pooling = fit_pooling(name, database.features[fit_rows])
        q, d = pool_maps(pooling, query.features), pool_maps(pooling, database.features)
        pool_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        distances = cosine_distances(q, d)
        search_ms = 1000 * (time.perf_counter() - t0) / len(q)
        rows.append({"protocol": protocol_name, "pooling": name, "dim": int(q.shape[1]),
                     "map_all": mean_average_precision(distances, q_labels, d_labels),
                     "precision_at_20": float(precision_at_k(distances, q_labels, d_labels, 20)),
                     "linear_search_ms_per_query": search_ms, "pooling_seconds": pool_seconds,
                     "queries": int(len(q)), "database": int(len(d))})
        print(f"{protocol_name:12s} {name:8s} dim {rows[-1]['dim']:6d}  mAP@all {rows[-1]['map_all']:.4f}  "
              f"P@20 {rows[-1]['precision_at_20']:.4f}  {search_ms:.2f} ms/query", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=["cars-bmw13", "caltech101"])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--poolings", nargs="+", default=list_poolings(), choices=list_poolings())
    parser.add_argument("--out", default="docs/bench/aggregation.json")
    args = parser.parse_args()
    rows = []
    for name in args.protocols:
        for pooling in args.poolings:   # written after each pooling: a long run keeps what it measured
            rows += run(name, args.backbone, [pooling])
            write_json(args.out, {"script": "benchmarks/aggregation.py", "backbone": args.backbone,
                                  "machine": machine(), "command": "python " + " ".join(sys.argv),
                                  "metric": "cosine distance, ties by database order; test queries of each protocol",
                                  "rows": rows})


if __name__ == "__main__":
    main()
