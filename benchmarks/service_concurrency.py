"""Concurrent readers and writers against the web service, and the promises that must hold (issue #15).

Protocol. ``hashseek serve`` runs in its own process on 127.0.0.1 over a fresh copy of the
50-image Caltech101 collection of ``service_decode_memory.py``. For ``--seconds``, 4 searching
clients (each request one of: similar to one of the 50 original ids, 404 once it is removed;
random search; upload search of a real Caltech101 JPEG; k=10, the server's search defaults
otherwise), 1 adding client (real
Caltech101 JPEGs that are not in the collection, one per request, with their labels) and 1
removing client (the 50 original ids in a seeded random order, then images added during the
run, oldest first; one request every 0.2 s) run closed-loop, each from its own thread with its
own connection. Checked afterwards: no 5xx; no search answered with an image whose removal was
acknowledged before the search was sent; every acknowledged add not removed since readable with
its name; every acknowledged remove answered 404; the library size; and, after the server
stopped, the collection reopened with ``check()`` clean.

    python benchmarks/service_concurrency.py --work ~/.cache/hashseek/bench
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _server import serve_process  # noqa: E402
from service_decode_memory import CLASSES, small_collection  # noqa: E402

from hashseek.core.atomic import atomic_write_json  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.eval.cost import machine  # noqa: E402
from hashseek.search.collection import Collection  # noqa: E402

SEARCHERS = 4


class Run:
    """What the clients saw: statuses and latencies per kind, acknowledged adds and removes, broken promises."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: dict[str, Counter] = {}
        self.latencies: dict[str, list[float]] = {}
        self.added: dict[int, str] = {}
        self.removed: list[int] = []
        self.broken: list[str] = []

    def record(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses.setdefault(kind, Counter())[status] += 1
            self.latencies.setdefault(kind, []).append(seconds)


def searcher(url: str, run: Run, stop: threading.Event, seed: int, photo: bytes, n_images: int) -> None:
    rng = random.Random(seed)
    name = "/api/collections/caltech-slice50"
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            kind = rng.choice(["similar", "random", "upload"])
            gone = set(run.removed)
            start = time.perf_counter()
            if kind == "similar":
                response = client.get(f"{name}/images/{rng.randrange(1, n_images + 1)}/similar", params={"k": 10})
            elif kind == "random":
                response = client.get(f"{name}/search/random", params={"k": 10, "seed": rng.randrange(10**6)})
            else:
                response = client.post(f"{name}/search", params={"k": 10}, files={"file": ("q.jpg", photo)})
            run.record(kind, response.status_code, time.perf_counter() - start)
            if response.status_code == 200 and (stale := gone & {h["id"] for h in response.json()["hits"]}):
                run.broken.append(f"a {kind} search returned removed images {sorted(stale)}")


def adder(url: str, run: Run, stop: threading.Event, photos: list[tuple[str, bytes]]) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        for image_id, data in photos:
            if stop.is_set():
                return
            start = time.perf_counter()
            response = client.post("/api/collections/caltech-slice50/images", data={"label": image_id.split("/")[0]},
                                   files=[("files", (image_id.replace("/", "-"), data, "image/jpeg"))])
            run.record("add", response.status_code, time.perf_counter() - start)
            if response.status_code == 201:
                run.added.update(dict.fromkeys(response.json()["ids"], image_id.replace("/", "-")))


def remover(url: str, run: Run, stop: threading.Event, ids: list[int]) -> None:
    """The original ids first, then images the adder added during the run (oldest first)."""
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            if not ids:
                with run.lock:
                    ids = sorted(set(run.added) - set(run.removed))[:1]
                if not ids:
                    time.sleep(0.2)
                    continue
            image_id = ids.pop(0)
            start = time.perf_counter()
            response = client.delete(f"/api/collections/caltech-slice50/images/{image_id}")
            run.record("remove", response.status_code, time.perf_counter() - start)
            if response.status_code == 200:
                run.removed.append(image_id)
            time.sleep(0.2)


def verify(url: str, run: Run) -> dict:
    checks = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        name = "/api/collections/caltech-slice50"
        removed = set(run.removed)
        checks["adds_present"] = all(client.get(f"{name}/images/{i}").json().get("name") == n
                                     for i, n in run.added.items() if i not in removed)
        checks["removes_gone"] = all(client.get(f"{name}/images/{i}").status_code == 404 for i in run.removed)
        checks["library_size"] = client.get("/health").json()["collections"]["caltech-slice50"] == \
            50 + len(run.added) - len(run.removed)
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=cache_root() / "bench")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "bench"
                        / "service_concurrency.json")
    args = parser.parse_args()
    source, photo = small_collection(args.work)
    dataset = load_dataset("caltech101")
    photos = [(i, dataset.read_bytes(i)) for c in CLASSES
              for i in [j for j in dataset.ids if j.startswith(c + "/")][11:75]]
    random.Random(0).shuffle(photos)
    removals = random.Random(1).sample(range(1, 51), 50)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "caltech-slice50"
        shutil.copytree(source, path)
        run, stop = Run(), threading.Event()
        with serve_process(path) as (_, url):
            threads = [threading.Thread(target=searcher, args=(url, run, stop, n, photo, 50)) for n in range(SEARCHERS)]
            threads += [threading.Thread(target=adder, args=(url, run, stop, photos)),
                        threading.Thread(target=remover, args=(url, run, stop, removals))]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            checks = verify(url, run)
        with Collection.open(path) as collection:
            checks["check_ok_after_reopen"] = collection.check().ok
            checks["reopened_size"] = len(collection) == 50 + len(run.added) - len(run.removed)
    requests = sum(sum(c.values()) for c in run.statuses.values())
    server_errors = sum(n for c in run.statuses.values() for status, n in c.items() if status >= 500)
    checks.update(no_5xx=server_errors == 0, no_removed_image_in_results=not run.broken)
    payload = {"benchmark": "service_concurrency", "command": " ".join(["python", *sys.argv]),
               "protocol": __doc__.split("Protocol. ")[1].split("\n\n")[0].replace("\n", " "),
               "clients": {"searching": SEARCHERS, "adding": 1, "removing": 1}, "seconds": wall,
               "requests": requests, "requests_per_second": requests / wall,
               "adds_acknowledged": len(run.added), "removes_acknowledged": len(run.removed),
               "statuses": {k: {str(s): n for s, n in sorted(c.items())} for k, c in run.statuses.items()},
               "latency_ms": {k: {"p50": float(np.percentile(v, 50) * 1000), "p99": float(np.percentile(v, 99) * 1000)}
                              for k, v in run.latencies.items()},
               "checks": checks, "broken_promises": run.broken[:20], "machine": machine()}
    atomic_write_json(args.out, payload)
    print(f"{requests} requests in {wall:.0f} s, checks: {checks}; wrote {args.out}", file=sys.stderr)
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
