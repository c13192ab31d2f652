"""A Milvus standalone server beside FAISS flat at 1M codes: bulk add, top-100 latency, IVF recall, reconcile.

In one run, on one machine: the PyPI ``milvus`` 2.3.5 standalone server runs as a local process
on 127.0.0.1 (tests/milvus_server.py), with its data under a temporary folder. The codes are 64-bit
clustered codes (centres + random bit flips, like deep-hash output; the generator of
benchmarks/index_speed.py), seeded; queries are drawn the same way, apart from the database.

1. FAISS ``flat`` (one thread) and hashseek's ``milvus`` index on the server, ``BIN_FLAT`` then
   ``BIN_IVF_FLAT`` (nlist, nprobe fixed before the run: nlist 1024 as FAISS ``ivf``, nprobe 16,
   twice the nprobe that gave FAISS ``ivf`` 98% recall at 10M in docs/bench/index_speed.json):
   bulk add throughput (batches of 50,000 until the flush returns), the wait for the server's
   index build, the server's resident memory per code, per-query top-k latency (one query per
   call, Milvus and FAISS interleaved query by query), same ids and distances as FAISS (BIN_FLAT),
   recall@k against FAISS (BIN_IVF_FLAT: by ids, and tie-aware: hits within the exact k-th distance).
2. Reconcile after a ``kill -9`` of the client mid-add: a child process bulk-adds the codes to a
   fresh collection and is killed once it has acknowledged half; then ``reconcile`` lists what the
   server holds and sends only what is missing. Recorded: seconds (listing, sending), rows listed,
   codes sent, whether the collection then holds every id once, and beside it the time of a full
   upload of every code to a fresh collection (what a collection did before: drop and refill).

Each part runs on a fresh server (so its resident memory is that part's).

    python benchmarks/milvus_server_speed.py --n 1000000 --queries 200 --out docs/bench/milvus_server_speed.json
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests"))
from _common import machine, write_json  # noqa: E402
from index_speed import clustered_codes  # noqa: E402
from milvus_server import MilvusServerProcess  # noqa: E402

import hashseek.index.milvus_index  # noqa: E402,F401  (registers "milvus")
from hashseek.index import create_index  # noqa: E402

BATCH = 50_000


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentiles(seconds: np.ndarray) -> dict:
    ms = seconds * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def measure_server(server: MilvusServerProcess, index_type: str, codes: np.ndarray, ids: np.ndarray,
                   queries: np.ndarray, flat, args) -> dict:
    name = f"bench_{index_type.lower()}"
    rss_before = rss_bytes(server.proc.pid)
    index = create_index("milvus", 64, uri=server.uri, collection_name=name, if_exists="drop", tie_order="id",
                         index_type=index_type, nlist=args.nlist, nprobe=args.nprobe)
    started = time.perf_counter()
    for s in tqdm(range(0, len(ids), BATCH), desc=f"add {index_type}", unit="batch"):
        index.add(codes[s:s + BATCH], ids[s:s + BATCH])
    index.client.flush(name)
    add_s = time.perf_counter() - started
    index_wait_s = index.wait_indexed(timeout=1800)
    index.client.release_collection(name)     # load the sealed, indexed segments
    index.client.load_collection(name)
    rss_after = rss_bytes(server.proc.pid)
    index.search(queries[:2], args.k)          # warm-up
    times = {"milvus": np.empty(len(queries)), "flat": np.empty(len(queries))}
    same, recall, tie_aware = 0, [], []
    for i in tqdm(range(len(queries)), desc=f"search {index_type}", unit="query"):
        q = queries[i:i + 1]
        t = time.perf_counter()
        got = index.search(q, args.k)
        times["milvus"][i] = time.perf_counter() - t
        t = time.perf_counter()
        want = flat.search(q, args.k)
        times["flat"][i] = time.perf_counter() - t
        same += bool(np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]))
        recall.append(len(set(got[1][0]) & set(want[1][0])) / args.k)
        tie_aware.append(float(np.mean(got[0][0] <= want[0][0, -1])))
    index.drop()
    return {"index_type": index_type, "add_s": add_s, "add_codes_per_s": len(ids) / add_s,
            "index_build_wait_s": index_wait_s, "server_rss_bytes_per_code": (rss_after - rss_before) / len(ids),
            "latency_ms": {name: percentiles(t) for name, t in times.items()},
            "same_ids_and_distances_as_flat": same / len(queries), f"recall_at_{args.k}": float(np.mean(recall)),
            f"tie_aware_recall_at_{args.k}": float(np.mean(tie_aware))}


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import hashseek.index.milvus_index
    from hashseek.index import create_index
    uri, data = sys.argv[1], np.load(sys.argv[2])
    codes, ids = data["codes"], data["ids"]
    index = create_index("milvus", 64, uri=uri, collection_name="bench_reconcile", if_exists="drop", tie_order="id")
    for s in range(0, len(ids), 50000):
        index.add(codes[s:s + 50000], ids[s:s + 50000])
        print("acked", s + 50000, flush=True)
""")


def measure_reconcile(server: MilvusServerProcess, codes: np.ndarray, ids: np.ndarray, work: Path) -> dict:
    np.savez(work / "codes.npz", codes=codes, ids=ids)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, server.uri, str(work / "codes.npz")],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    acked = 0
    for line in writer.stdout:
        acked = int(line.split()[1])
        print(f"client acknowledged {acked:,}", file=sys.stderr)
        if acked >= len(ids) // 2:
            time.sleep(1.0)   # kill it inside the next batch, not between two
            os.kill(writer.pid, signal.SIGKILL)
            break
    writer.wait()
    index = create_index("milvus", 64, uri=server.uri, collection_name="bench_reconcile", if_exists="attach",
                         tie_order="id")
    held_before = len(index.ids())
    report = index.reconcile(ids, codes)
    held = index._listing(codes=False)[0]
    result = {"acknowledged_before_kill": acked, "held_after_kill": held_before, **report,
              "codes_sent": report["added"], "complete_and_unique": bool(len(held) == len(ids)
                                                                        and np.array_equal(np.sort(held), ids))}
    index.drop()
    full = create_index("milvus", 64, uri=server.uri, collection_name="bench_full", if_exists="drop", tie_order="id")
    started = time.perf_counter()   # what the collection did before: drop, then upload every code again
    for s in range(0, len(ids), BATCH):
        full.add(codes[s:s + BATCH], ids[s:s + BATCH])
    full.client.flush("bench_full")
    result["full_upload_s_same_run"] = time.perf_counter() - started
    full.drop()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--flip-p", type=float, default=1 / 16)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--skip", nargs="*", default=[], choices=["BIN_FLAT", "BIN_IVF_FLAT", "reconcile"])
    ap.add_argument("--out", default="docs/bench/milvus_server_speed.json")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    centres = rng.integers(0, 2, (args.centres, 64), dtype=np.uint8)
    codes = clustered_codes(rng, args.n, centres, args.flip_p)
    queries = clustered_codes(rng, args.queries, centres, args.flip_p)
    ids = np.arange(args.n, dtype=np.int64)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())

    flat = create_index("flat", 64, threads=1)
    started = time.perf_counter()
    for s in range(0, args.n, BATCH):
        flat.add(codes[s:s + BATCH], ids[s:s + BATCH])
    flat_add_s = time.perf_counter() - started

    results: dict = {"flat": {"add_s": flat_add_s, "add_codes_per_s": args.n / flat_add_s}}
    with tempfile.TemporaryDirectory(prefix="milvus-bench-") as tmp:
        for part in ("BIN_FLAT", "BIN_IVF_FLAT", "reconcile"):
            if part in args.skip:
                continue
            server = MilvusServerProcess(Path(tmp) / f"server-{part}")   # fresh: its memory is this part's
            started = time.perf_counter()
            server.start()
            results.setdefault("server_start_s", time.perf_counter() - started)
            try:
                if part == "reconcile":
                    results["reconcile_after_client_kill"] = measure_reconcile(server, codes, ids, Path(tmp))
                else:
                    results[part] = measure_server(server, part, codes, ids, queries, flat, args)
                print(results["reconcile_after_client_kill" if part == "reconcile" else part], file=sys.stderr)
            finally:
                server.stop()
    import pymilvus
    result = {"protocol": {"n": args.n, "queries": args.queries, "k": args.k, "seed": args.seed, "bits": 64,
                           "codes": f"clustered: {args.centres} centres, bit flip p={args.flip_p}",
                           "nlist": args.nlist, "nprobe": args.nprobe, "batch": BATCH,
                           "server": "PyPI milvus 2.3.5 standalone (v2.3.5-lite) on 127.0.0.1, same machine",
                           "pymilvus": pymilvus.__version__, "faiss_threads": 1,
                           "one query per call": True, "load_before": load_before,
                           "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                           "command": "python benchmarks/milvus_server_speed.py " + " ".join(sys.argv[1:])},
              "machine": machine(), **results}
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
