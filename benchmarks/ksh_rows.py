"""KSH's settings chosen on a protocol's validation split, then its test row beside ITQ (issue #20).

Every candidate setting of ``hashseek.hashers.ksh`` is fitted on the protocol's training images
and scored by validation mAP@all (validation images searched by Hamming distance against the
training images); the best one alone is then scored on the test queries against the database
(mAP@all, mAP@R, P@20, top-8 vote: ``hashseek.core.metrics.retrieval_report``, ties by database
order), beside ITQ fitted on the same training features, as ``hashseek eval --method`` fits
every shallow hasher.

Features: frozen EfficientNet-Lite0 pooled vectors. ``--features pooled`` reads them from the
cache ``hashseek eval`` uses (caltech101); ``--features maps`` takes the spatial mean of the
cached per-part conv maps of ``benchmarks/protocol_maps.py`` (cifar10: no second pass over its
60,000 images).

    python benchmarks/ksh_rows.py --protocol caltech101 --features pooled --out docs/bench/ksh_caltech101.json
    python benchmarks/ksh_rows.py --protocol cifar10 --features maps --grid '{"n_anchors": 300}' ...
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
from protocol_maps import protocol_maps  # noqa: E402

from hashseek.core.bits import hamming_distances  # noqa: E402
from hashseek.core.metrics import mean_average_precision, retrieval_report  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol, protocol_dataset  # noqa: E402
from hashseek.hashers import create_hasher  # noqa: E402
from hashseek.models.features import BackboneEncoder, extract_features  # noqa: E402

PARTS = ("train", "validation", "query", "database")
# the paper's setting (300 anchors, 2,000 labelled) and more anchors / every labelled image
GRID = ({"n_anchors": 300, "n_labelled": 2000}, {"n_anchors": 300}, {"n_anchors": 600})


def pooled_parts(name: str, features: str, parts: tuple = PARTS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Part -> (float32 pooled features, labels)."""
    if features == "maps":
        out = {}
        for part, maps in protocol_maps(name, parts=parts).items():
            rows = [np.asarray(maps.features[i:i + 1024], np.float32).mean(axis=(2, 3))
                    for i in range(0, len(maps.features), 1024)]
            out[part] = (np.concatenate(rows).astype(np.float16).astype(np.float32), np.asarray(maps.labels))
        return out
    dataset = load_dataset(protocol_dataset(name))
    protocol = get_protocol(name, dataset, seed=0)
    ids = sorted(set().union(*(getattr(protocol, part) for part in PARTS)))
    pooled = extract_features(dataset, ids, encoder=BackboneEncoder("efficientnet_lite0", kind="pooled"))
    row = {i: n for n, i in enumerate(pooled.ids)}
    out = {}
    for part in parts:
        rows = [row[i] for i in getattr(protocol, part) if i in row]
        out[part] = (np.asarray(pooled.features[rows], np.float32), pooled.labels[rows])
    return out


def fitted(method: str, bits: int, settings: dict, train) -> tuple[object, float]:
    start = time.perf_counter()
    hasher = create_hasher(method, bits, seed=0, **settings)
    hasher.fit(train[0], train[1] if method == "ksh" else None)
    return hasher, round(time.perf_counter() - start, 1)


def validation_map(hasher, train, validation) -> float:
    distances = hamming_distances(hasher.transform(validation[0]), hasher.transform(train[0]))
    return round(float(mean_average_precision(distances, validation[1], train[1])), 4)


def test_row(hasher, query, database) -> dict:
    figures = retrieval_report(hamming_distances(hasher.transform(query[0]), hasher.transform(database[0])),
                               query[1], database[1], 20, 8)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", default="caltech101")
    parser.add_argument("--features", choices=("pooled", "maps"), default="pooled")
    parser.add_argument("--bits", type=int, default=48)
    parser.add_argument("--grid", nargs="+", type=json.loads, default=list(GRID),
                        help="KSH settings to choose from on validation, each a JSON object of keyword arguments")
    parser.add_argument("--split", nargs="+", default=["validation", "test"], choices=["validation", "test"],
                        help="validation alone chooses the settings without touching the test queries")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    test = "test" in args.split
    parts = pooled_parts(args.protocol, args.features, PARTS if test else ("train", "validation"))
    train, validation = parts["train"], parts["validation"]
    print({part: len(labels) for part, (_, labels) in parts.items()}, flush=True)

    candidates = []
    for settings in args.grid:
        hasher, seconds = fitted("ksh", args.bits, settings, train)
        candidates.append({"settings": {**hasher.config(), **settings}, "validation_map_all":
                           validation_map(hasher, train, validation), "fit_seconds": seconds, "hasher": hasher})
        print(f"ksh {settings}: validation mAP@all {candidates[-1]['validation_map_all']} ({seconds} s)", flush=True)
    best = max(candidates, key=lambda c: c["validation_map_all"])
    itq, itq_seconds = fitted("itq", args.bits, {}, train)
    rows = {"itq": {"validation_map_all": validation_map(itq, train, validation), "fit_seconds": itq_seconds},
            "ksh": {"settings": best["settings"], "validation_map_all": best["validation_map_all"],
                    "fit_seconds": best["fit_seconds"]}}
    if test:
        for row, hasher in ((rows["itq"], itq), (rows["ksh"], best["hasher"])):
            row["test"] = test_row(hasher, parts["query"], parts["database"])
    for method, row in rows.items():
        print(f"{method}: validation {row['validation_map_all']}  test {row.get('test')}", flush=True)
    write_json(args.out, {
        "script": "benchmarks/ksh_rows.py", "command": "python " + " ".join(sys.argv), "started": started,
        "load_average": os.getloadavg(), "machine": machine(), "protocol": args.protocol, "bits": args.bits,
        "features": f"EfficientNet-Lite0 pooled ({args.features})",
        "sizes": {part: len(labels) for part, (_, labels) in parts.items()},
        "selection": "KSH settings by validation mAP@all (validation queries vs training images); test run once",
        "ksh_candidates": [{k: v for k, v in c.items() if k != "hasher"} for c in candidates], "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
