"""Latency of the web service on loopback: library search and upload search, 1 and 8 concurrent clients.

Protocol. ``hashseek serve`` runs in its own process on 127.0.0.1 over two collections:
Caltech101 (all 8,677 images, EfficientNet-Lite0 + ITQ 64 bits) and the same grown to
100,000 images with synthetic rows (see ``_service.synthetic_collection``). A bounded load
generator (httpx + asyncio, in this process) sends a fixed number of requests per scenario,
stopping early at a time cap; C clients each send their next request as soon as their last
one is answered (closed loop). Library search: GET /images/{id}/similar with ids drawn with
a seed from the real Caltech images; upload search: POST /search with real Caltech101
JPEGs (multipart). Both ask k=20, the top 1,000 Hamming candidates re-ranked by chi2 (fixed
here, so the figures stay comparable; the page starts from GET /api/search-defaults). Latency is measured by the client (request sent to response read); the
server's own ``took_ms`` is recorded beside it. A warm-up of 20 requests per scenario is
not counted. Client and server share the machine's cores.

    python benchmarks/service_latency.py --work ~/.cache/hashseek/bench
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from _server import serve_process  # noqa: E402
from _service import caltech_collection, synthetic_collection  # noqa: E402

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.search.collection import Collection  # noqa: E402

WARM_UP = 20
SEARCH = {"k": 20, "rerank": "chi2", "candidates": 1000}


async def run_scenario(url: str, make_request, clients: int, requests: int, time_cap: float) -> dict:
    """``requests`` requests from ``clients`` closed-loop clients, or fewer if ``time_cap`` seconds pass."""
    latencies, server_ms, errors = [], [], 0
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        for n in range(WARM_UP):
            (await make_request(http, n)).raise_for_status()
        start = time.perf_counter()

        async def client() -> None:
            nonlocal sent, errors
            while sent < requests and time.perf_counter() - start < time_cap:
                n = sent
                sent += 1
                t0 = time.perf_counter()
                response = await make_request(http, WARM_UP + n)
                latencies.append(time.perf_counter() - t0)
                if response.status_code == 200:
                    server_ms.append(response.json()["took_ms"])
                else:
                    errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - start
    ms = 1000 * np.array(latencies)
    return {"clients": clients, "requests": len(latencies), "errors": errors, "seconds": wall,
            "requests_per_second": len(latencies) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
            "server_took_p50_ms": float(np.percentile(server_ms, 50)) if server_ms else float("nan")}


def library_search(name: str, ids: np.ndarray):
    async def request(http: httpx.AsyncClient, n: int) -> httpx.Response:
        return await http.get(f"/api/collections/{name}/images/{int(ids[n % len(ids)])}/similar", params=SEARCH)
    return request


def upload_search(name: str, photos: list[bytes]):
    async def request(http: httpx.AsyncClient, n: int) -> httpx.Response:
        files = {"file": (f"query-{n}.jpg", photos[n % len(photos)], "image/jpeg")}
        return await http.post(f"/api/collections/{name}/search", params=SEARCH, files=files)
    return request


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=cache_root() / "bench")
    ap.add_argument("--large", type=int, default=100_000, help="size of the synthetic large collection")
    ap.add_argument("--requests", type=int, default=400, help="requests per library-search scenario")
    ap.add_argument("--upload-requests", type=int, default=150, help="requests per upload-search scenario")
    ap.add_argument("--time-cap", type=float, default=60, help="seconds per scenario at most")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/bench/service_latency.json"))
    args = ap.parse_args()

    caltech, built = caltech_collection(args.work)
    large = synthetic_collection(caltech, args.work / f"caltech101-synthetic{args.large // 1000}k", args.large)
    with Collection.open(caltech) as collection:    # its ids are the real images' ids in both collections
        real_ids = np.array([record.id for record in collection.list(limit=len(collection))])
    dataset = load_dataset("caltech101")
    rng = np.random.default_rng(args.seed)
    ids = rng.choice(real_ids, 1000, replace=False)
    photos = [dataset.read_bytes(i) for i in rng.choice(dataset.ids, 50, replace=False)]
    load_before = os.getloadavg()

    rows = []
    with serve_process([caltech, large]) as (_, url):
        for path, size in ((caltech, len(real_ids)), (large, args.large)):
            for query, make, count in (("library search", library_search(path.name, ids), args.requests),
                                       ("upload search", upload_search(path.name, photos), args.upload_requests)):
                for clients in args.clients:
                    row = asyncio.run(run_scenario(url, make, clients, count, args.time_cap))
                    rows.append({"collection": path.name, "images": size, "query": query, **row})
                    print(f"{path.name} {query} x{clients}: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                          f"{row['requests_per_second']:.1f} req/s", file=sys.stderr)

    setup = {"search": SEARCH, "warm_up_requests": WARM_UP, "time_cap_s": args.time_cap, "seed": args.seed,
             "client": "httpx.AsyncClient, closed loop, same machine",
             "server": "hashseek serve (uvicorn), own process",
             "caltech_build": built, "load_average_before": load_before, "load_average_after": os.getloadavg(),
             "machine": machine()}
    write_json(args.out, {"setup": setup, "rows": rows})
    args.out.with_suffix(".md").write_text(markdown(setup, rows))
    print(markdown(setup, rows))


def markdown(setup: dict, rows: list[dict]) -> str:
    m = setup["machine"]
    lines = [
        "# Service latency on loopback",
        "",
        f"`python benchmarks/service_latency.py` on {m['cpu']}, {m['cores']} cores (shared; load average "
        f"{setup['load_average_before'][0]:.1f} before, {setup['load_average_after'][0]:.1f} after), Python "
        f"{m['python']}. Server: `hashseek serve` in its own process; client: httpx + asyncio in another, "
        f"closed loop, on the same cores. Every query: k={SEARCH['k']}, top {SEARCH['candidates']} Hamming "
        f"candidates re-ranked by {SEARCH['rerank']}; {WARM_UP} warm-up requests per row not counted; a row "
        f"stops at its request count or {setup['time_cap_s']:.0f} s. Library search sends a library id, upload "
        "search a real Caltech101 JPEG (decoded and encoded by EfficientNet-Lite0 on the server). The 100k "
        "collection is Caltech101 plus synthetic feature rows (real features + noise, hashed by the same ITQ).",
        "",
        "| collection | images | query | clients | requests | p50 ms | p99 ms | mean ms | req/s "
        "| server p50 ms | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['collection']} | {r['images']:,} | {r['query']} | {r['clients']} | {r['requests']} | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_ms']:.1f} | {r['requests_per_second']:.1f} | "
                     f"{r['server_took_p50_ms']:.1f} | {r['errors']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
