"""Same retrieval from FAISS and Milvus: every `caltech101` protocol query, ids and Hamming distances.

The codes come from a Caltech101 collection (EfficientNet-Lite0 + ITQ, built by
`benchmarks/collection_speed.py` and reused from --work); both backends index the same
database codes under the same ids, in the same order, and answer every query.

    python benchmarks/milvus_parity.py --work ~/.cache/hashseek/bench
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from collection_speed import build  # noqa: E402

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.data.protocols import get_protocol  # noqa: E402
from hashseek.index import create_index  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.search import Collection  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=cache_root() / "bench")
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--radius", type=int, default=12)
    ap.add_argument("--out", default="docs/bench/milvus_parity.json")
    args = ap.parse_args()

    dataset = load_dataset("caltech101")
    protocol = get_protocol("caltech101", dataset)
    path = args.work / "caltech101-efficientnet_lite0-itq64"
    build(path, dataset, 64, "efficientnet_lite0")
    with Collection.open(path) as c:
        records = [c.get(int(i)) for i in (r.id for r in c.list(limit=len(c)))]
    by_name = {r.name: r for r in records}
    db = [by_name[i] for i in protocol.database]
    queries = [by_name[i] for i in protocol.query]
    db_codes = np.stack([np.frombuffer(r.code, np.uint8) for r in db])
    q_codes = np.stack([np.frombuffer(r.code, np.uint8) for r in queries])
    ids = np.array([r.id for r in db], np.int64)
    n_bits = 8 * db_codes.shape[1]

    faiss_index = create_index("flat", n_bits, threads=1)
    faiss_index.add(db_codes, ids)
    with tempfile.TemporaryDirectory() as tmp:
        milvus = create_index("milvus", n_bits, uri=str(Path(tmp) / "parity.db"), collection_name="parity")
        t0 = time.perf_counter()
        milvus.add(db_codes, ids)
        add_s = time.perf_counter() - t0
        fd, fi = faiss_index.search(q_codes, args.k)
        t0 = time.perf_counter()
        md, mi = milvus.search(q_codes, args.k)
        search_s = time.perf_counter() - t0
        same_knn = int(sum(np.array_equal(fi[n], mi[n]) and np.array_equal(fd[n], md[n]) for n in range(len(queries))))
        fr, mr = faiss_index.range_search(q_codes, args.radius), milvus.range_search(q_codes, args.radius)
        same_range = int(sum(np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0]) for a, b in zip(fr, mr)))
        milvus.close()
    result = {"protocol": {"dataset": "caltech101", "protocol": "caltech101 seed 0", "queries": len(queries),
                           "database": len(db), "bits": n_bits, "codes": "efficientnet_lite0 + itq (collection)",
                           "k": args.k, "radius": args.radius, "tie_rule": "insertion order"},
              "machine": machine(), "knn_identical_queries": same_knn, "range_identical_queries": same_range,
              "milvus_add_s": add_s, "milvus_ms_per_query_batched": 1000 * search_s / len(queries)}
    write_json(args.out, result)
    print(f"k-NN (k={args.k}): {same_knn}/{len(queries)} queries identical (ids and Hamming distances); "
          f"radius {args.radius}: {same_range}/{len(queries)} identical")


if __name__ == "__main__":
    main()
