"""Zero-training float retrieval with each conv-map aggregation (issue #20): mAP@all, P@20 and the
query time of a linear cosine search, on the caltech101 and cars-bmw13 protocols.

    python benchmarks/aggregation.py [--protocols cars-bmw13 caltech101] [--out docs/bench/aggregation.json]

The backbone's last conv maps are extracted once (cached); every pooling then runs on them in torch.
R-MAC's whitening is learnt on the database maps; NetVLAD is k-means-initialised on database
descriptors and not trained (its trained form goes through the trainer).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import machine, write_json
from hashseek.core.metrics import mean_average_precision, precision_at_k
from hashseek.data import get_protocol, load_dataset
from hashseek.data.protocols import protocol_dataset
from hashseek.models.aggregation import create_pooling, list_poolings
from hashseek.models.features import BackboneEncoder, extract_features


def pooled(name: str, maps: np.ndarray, fit_maps: np.ndarray, channels: int) -> np.ndarray:
    pooling = create_pooling(name, channels)
    with torch.no_grad():
        fit = torch.from_numpy(np.asarray(fit_maps, np.float32))
        if name == "rmac":
            pooling.fit_whitening(fit)
        elif name == "netvlad":
            descriptors = fit.permute(0, 2, 3, 1).reshape(-1, channels).numpy()
            rng = np.random.default_rng(0)
            pooling.init_from(descriptors[rng.choice(len(descriptors), min(20_000, len(descriptors)), replace=False)])
        out = [pooling(torch.from_numpy(np.asarray(maps[i:i + 256], np.float32))).numpy()
               for i in range(0, len(maps), 256)]
    vectors = np.concatenate(out)
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)


def run(protocol_name: str, backbone: str) -> list[dict]:
    dataset = load_dataset(protocol_dataset(protocol_name))
    protocol = get_protocol(protocol_name, dataset)
    ids = sorted(set(protocol.query) | set(protocol.database))
    encoder = BackboneEncoder(backbone, kind="map")
    maps = extract_features(dataset, ids, encoder=encoder)
    row = {i: n for n, i in enumerate(maps.ids)}
    q = np.array([row[i] for i in protocol.query if i in row])
    d = np.array([row[i] for i in protocol.database if i in row])
    labels = maps.labels
    fit_rows = d if len(d) <= 2000 else np.sort(np.random.default_rng(0).choice(d, 2000, replace=False))
    rows = []
    for name in list_poolings():
        t0 = time.perf_counter()
        vectors = pooled(name, maps.features, maps.features[fit_rows], encoder.backbone.feature_channels)
        pool_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        distances = 1 - vectors[q] @ vectors[d].T
        search_ms = 1000 * (time.perf_counter() - t0) / len(q)
        rows.append({"protocol": protocol_name, "pooling": name, "dim": int(vectors.shape[1]),
                     "map_all": mean_average_precision(distances, labels[q], labels[d]),
                     "precision_at_20": float(precision_at_k(distances, labels[q], labels[d], 20)),
                     "linear_search_ms_per_query": search_ms, "pooling_seconds": pool_seconds,
                     "queries": int(len(q)), "database": int(len(d))})
        print(f"{protocol_name:12s} {name:8s} dim {rows[-1]['dim']:6d}  mAP@all {rows[-1]['map_all']:.4f}  "
              f"P@20 {rows[-1]['precision_at_20']:.4f}  {search_ms:.2f} ms/query", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=["cars-bmw13", "caltech101"])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--out", default="docs/bench/aggregation.json")
    args = parser.parse_args()
    rows = [r for name in args.protocols for r in run(name, args.backbone)]
    write_json(args.out, {"script": "benchmarks/aggregation.py", "backbone": args.backbone, "machine": machine(),
                          "metric": "cosine distance, ties by database order; test queries of each protocol",
                          "rows": rows})


if __name__ == "__main__":
    main()
