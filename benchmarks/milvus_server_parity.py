"""Same retrieval from FAISS and a Milvus standalone server: every `caltech101` protocol query, ids and distances.

The codes: EfficientNet-Lite0 pooled features of every Caltech101 image (the feature cache that
`hashseek eval` fills, ~/.cache/hashseek/features; computed here when missing), ITQ at 64 bits
fitted on the protocol's train split (seed 0). The database codes go, under the same ids and in
the same order, into FAISS ``flat`` and into hashseek's ``milvus`` index on the PyPI ``milvus``
2.3.5 standalone server started on 127.0.0.1 (``BIN_FLAT``, then ``BIN_IVF_FLAT``); every
protocol query is answered by all of them in the same run. Recorded: queries whose top-k ids and
Hamming distances are identical to FAISS (ties included), the same for a radius search, and
recall@k of ``BIN_IVF_FLAT`` against FAISS (by ids, and tie-aware).

    python benchmarks/milvus_server_parity.py --out docs/bench/milvus_server_parity.json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests"))
from _common import machine, write_json  # noqa: E402
from milvus_server import MilvusServerProcess  # noqa: E402

import hashseek.index.milvus_index  # noqa: E402,F401  (registers "milvus")
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol  # noqa: E402
from hashseek.hashers import create_hasher  # noqa: E402
from hashseek.index import create_index  # noqa: E402
from hashseek.models.features import extract_features  # noqa: E402


def identical(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> int:
    return int(sum(np.array_equal(a[0][n], b[0][n]) and np.array_equal(a[1][n], b[1][n]) for n in range(len(a[0]))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--radius", type=int, default=12)
    ap.add_argument("--nlist", type=int, default=64)
    ap.add_argument("--nprobe", type=int, default=8)
    ap.add_argument("--out", default="docs/bench/milvus_server_parity.json")
    args = ap.parse_args()

    dataset = load_dataset("caltech101")
    protocol = get_protocol("caltech101", dataset)
    features = extract_features(dataset)   # EfficientNet-Lite0, pooled: a cache hit after `hashseek eval`
    row = {name: i for i, name in enumerate(features.ids)}
    pick = lambda names: np.asarray(features.features[[row[n] for n in names]], np.float32)  # noqa: E731
    hasher = create_hasher("itq", 64, seed=0).fit(pick(protocol.train))
    db_codes, q_codes = hasher.transform(pick(protocol.database)), hasher.transform(pick(protocol.query))
    ids = np.arange(len(db_codes), dtype=np.int64)

    flat = create_index("flat", 64, threads=1)
    flat.add(db_codes, ids)
    want, want_range = flat.search(q_codes, args.k), flat.range_search(q_codes, args.radius)
    result = {"protocol": {"dataset": "caltech101", "protocol": "caltech101 seed 0", "queries": len(q_codes),
                           "database": len(db_codes), "bits": 64,
                           "codes": "efficientnet_lite0 pooled features (feature cache) + itq fitted on the train "
                                    "split, seed 0", "k": args.k, "radius": args.radius,
                           "tie_rule": "insertion order", "nlist": args.nlist, "nprobe": args.nprobe,
                           "server": "PyPI milvus 2.3.5 standalone on 127.0.0.1, same machine",
                           "command": "python benchmarks/milvus_server_parity.py " + " ".join(sys.argv[1:])},
              "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="milvus-parity-") as tmp:
        server = MilvusServerProcess(Path(tmp) / "server")
        server.start()
        try:
            for index_type in ("BIN_FLAT", "BIN_IVF_FLAT"):
                milvus = create_index("milvus", 64, uri=server.uri, collection_name=f"parity_{index_type.lower()}",
                                      if_exists="drop", index_type=index_type, nlist=args.nlist, nprobe=args.nprobe)
                started = time.perf_counter()
                milvus.add(db_codes, ids)
                add_s = time.perf_counter() - started
                milvus.wait_indexed()
                milvus.client.release_collection(milvus.collection_name)   # serve the sealed, indexed segments
                milvus.client.load_collection(milvus.collection_name)
                started = time.perf_counter()
                got = milvus.search(q_codes, args.k)
                search_s = time.perf_counter() - started
                row_result = {"add_s": add_s, "ms_per_query_batched": 1000 * search_s / len(q_codes),
                              "knn_identical_queries": identical(got, want)}
                if index_type == "BIN_FLAT":
                    got_range = milvus.range_search(q_codes, args.radius)
                    row_result["range_identical_queries"] = int(sum(
                        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(got_range, want_range)))
                else:
                    row_result[f"recall_at_{args.k}"] = float(np.mean(
                        [len(set(g) & set(w)) / args.k for g, w in zip(got[1], want[1])]))
                    row_result[f"tie_aware_recall_at_{args.k}"] = float(np.mean(got[0] <= want[0][:, -1:]))
                result[index_type] = row_result
                print(index_type, row_result, file=sys.stderr)
                milvus.drop()
        finally:
            server.stop()
    write_json(args.out, result)
    flat_row = result["BIN_FLAT"]
    print(f"BIN_FLAT k-NN (k={args.k}): {flat_row['knn_identical_queries']}/{len(q_codes)} queries identical to FAISS "
          f"(ids and Hamming distances); radius {args.radius}: {flat_row['range_identical_queries']}/{len(q_codes)}")


if __name__ == "__main__":
    main()
