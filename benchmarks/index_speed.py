"""Hamming index speed: raw FAISS vs hashseek's backends, the sublinear IVF mode, and the re-rank stage.

Measured in one run, on one machine:
1. exact top-k over random 64-bit codes: raw ``IndexBinaryFlat``, hashseek ``flat`` and the
   numpy reference; per-request latency (one query per call, raw and flat interleaved
   query by query so background load hits both alike) and batched throughput, at one
   thread and at all threads;
2. ``ivf`` on clustered codes (centres + random bit flips, like deep-hash output):
   latency, speed-up over ``flat`` and recall@k against the exact ``flat`` answer;
3. coarse-to-fine at 1M items through the engine's ``rank``: Hamming top-1000, then the
   fused read of the candidates' float16 rows + re-rank distance, then the sort; per
   query, one thread;
4. bytes per item in memory (RSS of a fresh process) and on disk, per backend.

    python benchmarks/index_speed.py --sizes 1000000 10000000 --queries 200 --out docs/bench/index_speed.json
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402

from hashseek.index import create_index, pack_bits  # noqa: E402
from hashseek.index.base import sidecar_path  # noqa: E402
from hashseek.search.distances import DISTANCES, pairwise_distance  # noqa: E402
from hashseek.search.engine import rank  # noqa: E402


def random_codes(rng: np.random.Generator, n: int, n_bytes: int = 8) -> np.ndarray:
    return rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)


def clustered_codes(rng: np.random.Generator, n: int, centres: np.ndarray, flip_p: float,
                    chunk: int = 1_000_000) -> np.ndarray:
    """Each code: a random centre with every bit flipped with probability ``flip_p``."""
    out = np.empty((n, centres.shape[1] // 8), dtype=np.uint8)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        flips = rng.random((m, centres.shape[1]), dtype=np.float32) < flip_p
        out[s:s + m] = pack_bits(centres[rng.integers(0, len(centres), m)] ^ flips)
    return out


def per_query_ms(search, queries: np.ndarray, k: int) -> np.ndarray:
    times = np.empty(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter()
        search(queries[i:i + 1], k)
        times[i] = time.perf_counter() - t0
    return times * 1e3


def interleaved_ms(searches: dict, queries: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Latency of several searches, alternating between them on every query."""
    times = {name: np.empty(len(queries)) for name in searches}
    for i in range(len(queries)):
        for name, search in searches.items():
            t0 = time.perf_counter()
            search(queries[i:i + 1], k)
            times[name][i] = time.perf_counter() - t0
    return {name: t * 1e3 for name, t in times.items()}


def batch_ms(search, queries: np.ndarray, k: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        search(queries, k)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3 / len(queries)


def exact_section(n: int, args, rng: np.random.Generator, thread_counts: list[int]) -> dict:
    codes = random_codes(rng, n)
    queries = random_codes(rng, args.queries)
    raw = faiss.IndexBinaryFlat(64)
    raw.add(codes)
    t0 = time.perf_counter()
    numpy_index = create_index("numpy", 64)
    numpy_index.add(codes, np.arange(n))
    flat = create_index("flat", 64)
    flat.add(codes, np.arange(n))
    build_s = time.perf_counter() - t0
    _, raw_ids = raw.search(queries, args.k)
    _, flat_ids = flat.search(queries, args.k)
    n_numpy = max(2, args.queries // (10 if n <= 1_000_000 else 40))
    _, numpy_ids = numpy_index.search(queries[:n_numpy], args.k)
    result = {"n": n, "k": args.k, "queries": args.queries, "numpy_queries": n_numpy,
              "build_s_numpy_plus_flat": build_s,
              "flat_equals_raw": bool(np.array_equal(raw_ids, flat_ids)),
              "numpy_equals_flat": bool(np.array_equal(numpy_ids, flat_ids[:n_numpy])),
              "threads": {}}
    result["numpy_latency_ms_median"] = float(np.median(per_query_ms(numpy_index.search, queries[:n_numpy], args.k)))
    for t in thread_counts:
        faiss.omp_set_num_threads(t)
        flat.threads = t
        lat = interleaved_ms({"raw": raw.search, "flat": flat.search}, queries, args.k)
        result["threads"][t] = {
            "latency_ms_median": {"raw_faiss": float(np.median(lat["raw"])), "flat": float(np.median(lat["flat"]))},
            "flat_over_raw_median_of_ratios": float(np.median(lat["flat"] / lat["raw"])),
            "batch_ms_per_query": {"raw_faiss": batch_ms(raw.search, queries, args.k),
                                   "flat": batch_ms(flat.search, queries, args.k)},
        }
    faiss.omp_set_num_threads(thread_counts[-1])
    return result


def ivf_section(args, rng: np.random.Generator) -> dict:
    n = args.ivf_size
    centre_bits = rng.integers(0, 2, (args.centres, 64), dtype=np.uint8)
    t0 = time.perf_counter()
    codes = clustered_codes(rng, n, centre_bits, args.flip_p)
    queries = clustered_codes(rng, args.queries, centre_bits, args.flip_p)
    gen_s = time.perf_counter() - t0
    flat = create_index("flat", 64)
    flat.add(codes, np.arange(n))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    exact_d, exact_ids = flat.search(queries, args.k)
    flat.threads = 1
    flat_ms = float(np.median(per_query_ms(flat.search, queries, args.k)))
    ivf = create_index("ivf", 64, nlist=args.nlist, seed=args.seed)
    t0 = time.perf_counter()
    ivf.train(codes)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf.add(codes, np.arange(n))
    add_s = time.perf_counter() - t0
    del codes
    ivf.threads = 1
    sweep = []
    for nprobe in args.nprobe:
        ivf.nprobe = nprobe
        ms = float(np.median(per_query_ms(ivf.search, queries, args.k)))
        d, ids = ivf.search(queries, args.k)
        recall = np.mean([len(np.intersect1d(a, b)) / args.k for a, b in zip(ids, exact_ids)])
        tie_aware = float(np.mean(d <= exact_d[:, -1:]))
        sweep.append({"nprobe": nprobe, "latency_ms_median": ms, "speedup_vs_flat": flat_ms / ms,
                      "recall_at_k": float(recall), "tie_aware_recall_at_k": tie_aware})
    return {"n": n, "centres": args.centres, "flip_p": args.flip_p, "nlist": ivf.nlist, "k": args.k,
            "generate_s": gen_s, "train_s": train_s, "add_s": add_s, "flat_latency_ms_median": flat_ms,
            "sweep": sweep}


def rerank_section(args, rng: np.random.Generator) -> dict:
    """The engine's own coarse-to-fine path (``search.engine.rank``) over a 1M-row float16 table."""
    n, dim, cand = args.rerank_items, args.feature_dim, args.candidates
    codes = random_codes(rng, n)
    flat = create_index("flat", 64, threads=1)
    flat.add(codes, np.arange(n))
    block = rng.random((4096, dim), dtype=np.float32).astype(np.float16)
    features = np.resize(block, (n, dim))  # real memory, so the row reads pay their cache misses
    queries = random_codes(rng, args.queries)
    query_features = rng.random((args.queries, dim), dtype=np.float32).astype(np.float16)

    def features_of(ids):
        return features, ids  # item id = row, as in a collection without removals

    rank(flat, queries[0], args.k, candidates=cand, rerank=args.metric, feature=query_features[0],
         features_of=features_of)  # compiles the metric kernel once, outside the timing
    parts = {"coarse": [], "rerank": [], "total": []}
    for i in range(args.queries):
        t0 = time.perf_counter()
        ranking = rank(flat, queries[i], args.k, candidates=cand, rerank=args.metric,
                       feature=query_features[i], features_of=features_of)
        total = time.perf_counter() - t0
        for name, v in (("coarse", ranking.timings["coarse"]), ("rerank", ranking.timings["rerank"]),
                        ("total", total)):
            parts[name].append(v * 1e3)
    metrics = {}
    rows = rng.choice(n, cand, replace=False)
    for metric in DISTANCES.names():
        pairwise_distance(query_features[0], features, metric, rows=rows)
        times = []
        for q in query_features:
            t0 = time.perf_counter()
            pairwise_distance(q, features, metric, rows=rows)
            times.append(time.perf_counter() - t0)
        metrics[metric] = {"median": float(np.median(times) * 1e3), "min": float(np.min(times) * 1e3)}
    return {"items": n, "candidates": cand, "k": args.k, "feature_dim": dim, "dtype": "float16",
            "metric": args.metric, "path": "hashseek.search.engine.rank (FAISS flat top-M, fused row read + "
            "float16 decode + distance, stable sort)",
            "ms_median": {name: float(np.median(v)) for name, v in parts.items()},
            "ms_min": {name: float(np.min(v)) for name, v in parts.items()},
            "ms_p90_total": float(np.percentile(parts["total"], 90)),
            "distance_only_ms": metrics}


def memory_probe(kind: str, n: int, seed: int) -> dict:
    """Run in a fresh process: RSS growth and file size of one backend holding n 64-bit codes."""
    rng = np.random.default_rng(seed)
    codes, ids = random_codes(rng, n), np.arange(n, dtype=np.int64)
    kw = {"nlist": 1024} if kind == "ivf" else {}
    index = create_index(kind, 64, **kw)
    if kind == "ivf":
        index.train(codes[:200_000])
    before = _rss()
    index.add(codes, ids)
    grown = _rss() - before
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index"
        index.save(path)
        disk = path.stat().st_size + sidecar_path(path).stat().st_size
    return {"memory_bytes_per_item": grown / n, "disk_bytes_per_item": disk / n}


def _rss() -> int:
    """Resident bytes after handing freed heap pages back, so temporaries do not count."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_section(args) -> dict:
    out = {}
    for kind in ("flat", "numpy", "hash", "multihash", "ivf"):
        cmd = [sys.executable, __file__, "--memory-probe", kind, "--memory-items", str(args.memory_items),
               "--seed", str(args.seed)]
        out[kind] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return out


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def markdown(result: dict) -> str:
    p = result["protocol"]
    lines = [f"Machine: {p['machine']['cpu']}, nproc {p['machine']['cores']}; faiss {p['faiss']}, "
             f"numpy {p['machine']['numpy']}, torch {p['machine']['torch']}; seed {p['seed']}; "
             f"load average before {p['load_before']}, after {p['load_after']}.",
             ""]
    if "exact" in result:
        lines += [f"Exact top-{p['k']}, random 64-bit codes, ms per query (median; latency = one query per call, "
                  "raw and flat interleaved; batch = all queries in one call):", "",
                  "| items | threads | raw IndexBinaryFlat | hashseek flat | flat/raw | raw batch | flat batch | numpy |",
                  "|---|---|---|---|---|---|---|---|"]
    for sec in result.get("exact", []):
        for t, r in sec["threads"].items():
            lat, b = r["latency_ms_median"], r["batch_ms_per_query"]
            lines.append(f"| {sec['n']:,} | {t} | {lat['raw_faiss']:.2f} | {lat['flat']:.2f} | "
                         f"{r['flat_over_raw_median_of_ratios']:.3f} | {b['raw_faiss']:.2f} | {b['flat']:.2f} | "
                         f"{sec['numpy_latency_ms_median']:.1f} |")
    for sec in result.get("exact", []):
        lines.append(f"\n{sec['n']:,} items: flat ids == raw ids: {sec['flat_equals_raw']}; numpy == flat "
                     f"({sec['numpy_queries']} queries): {sec['numpy_equals_flat']}")
    if "ivf" in result:
        v = result["ivf"]
        lines += ["", f"Sublinear mode: ivf, {v['n']:,} clustered codes ({v['centres']} centres, bit flip p="
                  f"{v['flip_p']}), nlist {v['nlist']}, one thread; flat {v['flat_latency_ms_median']:.2f} ms; "
                  f"train {v['train_s']:.0f} s, add {v['add_s']:.0f} s:", "",
                  f"| nprobe | ms/query | speed-up vs flat | recall@{v['k']} (ids) | tie-aware recall |",
                  "|---|---|---|---|---|"]
        for s in v["sweep"]:
            lines.append(f"| {s['nprobe']} | {s['latency_ms_median']:.3f} | {s['speedup_vs_flat']:.1f}x | "
                         f"{s['recall_at_k']:.3f} | {s['tie_aware_recall_at_k']:.3f} |")
    if "rerank" in result:
        r = result["rerank"]
        lines += ["", f"Coarse-to-fine, {r['items']:,} items, top-{r['candidates']} Hamming then {r['metric']} on "
                  f"{r['feature_dim']}-d {r['dtype']}, one thread, ms per query:", "",
                  "| | Hamming top-M | re-rank (read + distance + sort) | total |", "|---|---|---|---|"]
        for stat in ("median", "min"):
            m = r[f"ms_{stat}"]
            lines.append(f"| {stat} | {m['coarse']:.2f} | {m['rerank']:.2f} | {m['total']:.2f} |")
        lines += ["", f"p90 total {r['ms_p90_total']:.2f} ms.", "",
                  f"Distance alone ({r['candidates']} rows of a {r['items']:,} x {r['feature_dim']} {r['dtype']} "
                  "table, read in place), median / min ms: "
                  + ", ".join(f"{k} {v['median']:.2f} / {v['min']:.2f}"
                              for k, v in r["distance_only_ms"].items())]
    if "memory" in result:
        lines += ["", f"Bytes per item, {p['memory_items']:,} 64-bit codes:", "",
                  "| backend | memory | disk |", "|---|---|---|"]
        for kind, v in result["memory"].items():
            lines.append(f"| {kind} | {v['memory_bytes_per_item']:.1f} | {v['disk_bytes_per_item']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ivf-size", type=int, default=10_000_000)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--flip-p", type=float, default=1 / 16, help="per-bit flip probability around a centre")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--rerank-items", type=int, default=1_000_000)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--feature-dim", type=int, default=1280)
    ap.add_argument("--metric", default="chi2")
    ap.add_argument("--memory-items", type=int, default=1_000_000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["exact", "ivf", "rerank", "memory"])
    ap.add_argument("--out", default="docs/bench/index_speed.json")
    ap.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args.memory_items, args.seed)))
        return

    all_threads = os.cpu_count() or 1
    thread_counts = sorted({1, all_threads})
    rng = np.random.default_rng(args.seed)
    result: dict = {"protocol": {"machine": machine(), "faiss": faiss.__version__, "seed": args.seed,
                                 "k": args.k, "thread_counts": thread_counts,
                                 "memory_items": args.memory_items, "load_before": load_average(),
                                 "code_bits": 64}}
    if "exact" not in args.skip:
        result["exact"] = [exact_section(n, args, rng, thread_counts) for n in args.sizes]
    if "ivf" not in args.skip:
        result["ivf"] = ivf_section(args, rng)
    if "rerank" not in args.skip:
        result["rerank"] = rerank_section(args, rng)
    if "memory" not in args.skip:
        result["memory"] = memory_section(args)
    result["protocol"]["load_after"] = load_average()
    write_json(args.out, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
