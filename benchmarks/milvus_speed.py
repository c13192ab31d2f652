"""Milvus (milvus-lite, embedded) beside FAISS flat: bulk add throughput and top-k latency.

For each size, in one run on one machine, random 64-bit codes (seeded) go into hashseek's
``milvus`` index (a fresh milvus-lite file) and its ``flat`` index (FAISS, one thread).
Measured: bulk add in batches (codes/s, Milvus until its flush returns); per-query latency
(one query per call, Milvus and FAISS interleaved query by query so background load hits
both alike), p50 and p99 in ms, and Milvus's own top-k without the seq field and the tie rule; whether Milvus returned exactly FAISS's ids and distances
(the tie rule included); the milvus-lite server's resident memory and file size per item.
A size whose Milvus insert would overrun ``--budget-s`` stops there and reports what it reached.

    python benchmarks/milvus_speed.py --sizes 100000 1000000 --queries 200 --out docs/bench/milvus_speed.json
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

import hashseek.index.milvus_index  # noqa: E402,F401  (registers "milvus")
from hashseek.index import create_index  # noqa: E402

BATCH = 50_000
QUERY_RESERVE_S = 60  # of the budget, kept for the latency phase after the last insert


def server_rss_bytes() -> int:
    """Resident memory of the milvus-lite server, the child process pymilvus started for the file."""
    total = 0
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            if "milvus" in Path(f"/proc/{pid}/cmdline").read_text():
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def percentiles(ms: np.ndarray) -> dict:
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def run_size(n: int, args, deadline: float, workdir: Path) -> dict:
    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    ids = np.arange(n, dtype=np.int64)
    queries = rng.integers(0, 256, (args.queries, 8), dtype=np.uint8)

    flat = create_index("flat", 64, threads=1)
    t0 = time.perf_counter()
    for s in range(0, n, BATCH):
        flat.add(codes[s:s + BATCH], ids[s:s + BATCH])
    flat_add_s = time.perf_counter() - t0

    uri = str(workdir / f"n{n}.db")
    rss_before = server_rss_bytes()
    milvus = create_index("milvus", 64, uri=uri, collection_name="bench")
    rss_empty = server_rss_bytes() - rss_before
    added, t0 = 0, time.perf_counter()
    for s in range(0, n, BATCH):
        milvus.add(codes[s:s + BATCH], ids[s:s + BATCH])
        added = min(n, s + BATCH)
        elapsed = time.perf_counter() - t0
        if added < n and time.perf_counter() + elapsed / added * BATCH > deadline - QUERY_RESERVE_S:
            break  # the next batch would overrun the budget: report what was reached
    milvus.client.flush("bench")
    milvus_add_s = time.perf_counter() - t0
    rss_full = server_rss_bytes() - rss_before
    if added < n:  # compare like with like: FAISS over the same prefix
        flat = create_index("flat", 64, threads=1)
        flat.add(codes[:added], ids[:added])

    milvus.search(queries[:1], args.k)  # warm-up: load segments, caches
    flat.search(queries[:1], args.k)
    times = {name: np.empty(args.queries) for name in ("milvus", "milvus_raw", "flat")}
    raw_params = {"metric_type": "HAMMING", "params": {}}
    same = 0
    for i in range(args.queries):
        q = queries[i:i + 1]
        t = time.perf_counter()
        got = milvus.search(q, args.k)
        times["milvus"][i] = time.perf_counter() - t
        t = time.perf_counter()  # Milvus alone: top-k, no seq, no tie rule
        milvus.client.search("bench", data=[q[0].tobytes()], limit=args.k, search_params=raw_params)
        times["milvus_raw"][i] = time.perf_counter() - t
        t = time.perf_counter()
        want = flat.search(q, args.k)
        times["flat"][i] = time.perf_counter() - t
        same += bool(np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]))
    milvus.close()
    return {
        "n_requested": n, "n_reached": added, "k": args.k, "queries": args.queries,
        "add_codes_per_s": {"milvus": added / milvus_add_s, "flat": n / flat_add_s},
        "add_s": {"milvus": milvus_add_s, "flat": flat_add_s},
        "latency_ms": {name: percentiles(t * 1e3) for name, t in times.items()},
        "tie_rule_cost_median_of_ratios": float(np.median(times["milvus"] / times["milvus_raw"])),
        "milvus_equals_flat": same / args.queries,
        "milvus_server_rss_bytes_per_item": (rss_full - rss_empty) / added,
        "milvus_file_bytes_per_item": Path(uri).stat().st_size / added,
    }


def markdown(result: dict) -> str:
    p = result["protocol"]
    m = p["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; pymilvus {p['pymilvus']}, "
             f"milvus-lite {p['milvus_lite']}, faiss {p['faiss']}; random 64-bit codes, seed {p['seed']}, "
             f"top-{p['k']}, one query per call, FAISS on 1 thread; load average {p['load_before']} -> "
             f"{p['load_after']}.", "",
             "| items | backend | add (codes/s) | top-k p50 (ms) | top-k p99 (ms) | same ids as flat |",
             "|---|---|---|---|---|---|"]
    for row in result["sizes"]:
        n = f"{row['n_reached']:,}" + ("" if row["n_reached"] == row["n_requested"]
                                       else f" of {row['n_requested']:,} (budget)")
        for name in ("milvus", "flat"):
            lat = row["latency_ms"][name]
            same = f"{row['milvus_equals_flat']:.0%}" if name == "milvus" else ""
            lines.append(f"| {n} | {'milvus-lite' if name == 'milvus' else 'FAISS flat'} | "
                         f"{row['add_codes_per_s'][name]:,.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {same} |")
    last = result["sizes"][-1]
    lines += ["", "Milvus alone (top-k without the seq field and the tie rule), p50 / p99 ms: " + ", ".join(
        f"{r['n_reached']:,}: {r['latency_ms']['milvus_raw']['p50']:.2f} / {r['latency_ms']['milvus_raw']['p99']:.2f}"
        f" (tie rule x{r['tie_rule_cost_median_of_ratios']:.2f})" for r in result["sizes"]) + "."]
    lines += [f"milvus-lite server memory {last['milvus_server_rss_bytes_per_item']:.0f} B/item, file "
                  f"{last['milvus_file_bytes_per_item']:.0f} B/item at {last['n_reached']:,} items."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=600, help="wall-clock cap for the whole run")
    ap.add_argument("--out", default="docs/bench/milvus_speed.json")
    args = ap.parse_args()
    import importlib.metadata
    import pymilvus

    deadline = time.perf_counter() + args.budget_s
    protocol = {"machine": machine(), "faiss": faiss.__version__, "pymilvus": pymilvus.__version__,
                "milvus_lite": importlib.metadata.version("milvus-lite"), "seed": args.seed, "k": args.k,
                "code_bits": 64, "batch": BATCH, "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    sizes = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            sizes.append(run_size(n, args, deadline, Path(tmp)))
            print(sizes[-1], flush=True)
    protocol["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result = {"protocol": protocol, "sizes": sizes}
    write_json(args.out, result)
    table = markdown(result)
    Path(args.out).with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
