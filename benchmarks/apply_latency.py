"""Search latency while a served collection switches to a trained model (the page's "Use this model").

Protocol. The cars-bmw13 images (all 531) form a zero-training collection (EfficientNet-Lite0 +
ITQ 64 bits), built once under ``--work`` and copied for each run. A gap+csq head (64 bits) is
trained on frozen maps of the same images (``--epochs``) and placed in the copy's ``training/``
folder as a finished run. ``hashseek serve`` runs the copy in its own process on 127.0.0.1. One
closed-loop client alternates a library search (GET /images/{id}/similar, ids drawn with a seed)
and an upload search (POST /search, real cars-bmw13 JPEGs), k=20 re-ranked by chi2: first
``--before`` pairs on the old model, then from ``POST /training/{run}/apply`` until the run's
``apply.state`` is no longer "applying" (the swap; the state is set on the collection's thread,
so a search answered before the client read "applying" was answered by the old model), then
``--before`` pairs on the new model. Before the background re-encoding, a search sent during an
apply waited for the whole re-encoding (it queued on the collection's thread behind it): up to
``apply_seconds``. Client, server and re-encoding share the machine's cores.

    python benchmarks/apply_latency.py --work ~/.cache/hashseek/bench
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from _server import serve_process  # noqa: E402
from collection_speed import build  # noqa: E402

from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.search.collection import Collection  # noqa: E402
from hashseek.train import TrainConfig, Trainer  # noqa: E402

RUN = "20260101-000000-fast-0000"
SEARCH = {"k": 20, "rerank": "chi2", "candidates": 1000}


def trained_run(work: Path, dataset, epochs: int) -> Path:
    """A finished run's folder (the model and its job.json), trained once under ``work``."""
    out = work / f"apply-latency-gap-csq64-{epochs}ep"
    if not (out / "job.json").is_file():
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        Trainer(TrainConfig(mode="frozen", epochs=epochs, head="gap", loss="csq", bits=64),
                progress=True).fit(dataset, list(dataset.ids), out_dir=out)
        (out / "job.json").write_text(json.dumps({
            "recipe": "fast", "settings": {}, "epochs": epochs, "state": "done", "started_at": started,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "error": None}))
    return out


def pair(http: httpx.Client, name: str, image_id: int, photo: bytes) -> tuple[float, float]:
    """(library search, upload search) latencies in seconds, as the client sees them."""
    times = []
    for send in (lambda: http.get(f"/api/collections/{name}/images/{image_id}/similar", params=SEARCH),
                 lambda: http.post(f"/api/collections/{name}/search", params=SEARCH,
                                   files={"file": ("query.jpg", photo, "image/jpeg")})):
        start = time.perf_counter()
        send().raise_for_status()
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def summary(seconds: list[float]) -> dict:
    ms = 1000 * np.array(seconds)
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "max_ms": float(ms.max())}


def switch_latency(url: str, name: str, ids: list[int], photos: list[bytes], seed: int, rounds: int,
                   start: Callable[[httpx.Client], None], state: Callable[[httpx.Client], dict],
                   running: str, done: str) -> tuple[list[dict], float, dict]:
    """Search pairs (a library search, an upload search) before, during and after a background model switch
    that ``start`` begins and ``state`` follows (``running`` until ``done``): the latency rows, the switch's
    seconds and the collection's info after it. Printed as it goes."""
    rng = np.random.default_rng(seed)
    draw = iter(range(10**9))
    phases = {"before": ([], []), "during": ([], []), "after": ([], [])}

    def next_pair(http: httpx.Client) -> tuple[float, float]:
        return pair(http, name, int(ids[rng.integers(len(ids))]), photos[next(draw) % len(photos)])

    def keep(phase: str, answered: tuple[float, float]) -> None:
        for kept, value in zip(phases[phase], answered):
            kept.append(value)

    with httpx.Client(base_url=url, timeout=600) as http:
        for _ in range(3):   # warm-up: the model loads
            next_pair(http)
        for _ in range(rounds):
            keep("before", next_pair(http))
        began = time.perf_counter()
        start(http)
        while True:
            answered = next_pair(http)
            status = state(http)
            if status["state"] != running:
                break
            keep("during", answered)
        seconds = time.perf_counter() - began
        if status["state"] != done:
            raise RuntimeError(f"the switch failed: {status}")
        info = http.get(f"/api/collections/{name}").json()
        for _ in range(rounds):
            keep("after", next_pair(http))
    rows = [{"phase": phase, "query": query, **summary(times)} for phase, (library, upload) in phases.items()
            for query, times in (("library", library), ("upload", upload)) if times]
    for row in rows:
        print(f"{row['phase']:>6} {row['query']:>7}: n {row['n']:3d}, p50 {row['p50_ms']:7.1f} ms, "
              f"p90 {row['p90_ms']:7.1f} ms, max {row['max_ms']:7.1f} ms", file=sys.stderr)
    return rows, seconds, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=cache_root() / "bench")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--before", type=int, default=20, help="search pairs before and after the apply")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/bench/apply_latency.json"))
    args = ap.parse_args()

    dataset = load_dataset("cars-bmw13")
    source = args.work / "cars-bmw13-efficientnet_lite0-itq64"
    build(source, dataset, 64, "efficientnet_lite0")
    run = trained_run(args.work, dataset, args.epochs)
    copy = args.work / "apply-latency" / "cars"
    shutil.rmtree(copy.parent, ignore_errors=True)
    shutil.copytree(source, copy)
    shutil.copytree(run, copy / "training" / RUN)
    with Collection.open(copy) as collection:
        ids = [record.id for record in collection.list(limit=len(collection))]
    photos = [dataset.read_bytes(i) for i in np.random.default_rng(args.seed).choice(dataset.ids, 20, replace=False)]
    load_before = os.getloadavg()
    run_url = f"/api/collections/{copy.name}/training/{RUN}"
    with serve_process([copy]) as (_, url):
        rows, apply_seconds, info = switch_latency(
            url, copy.name, ids, photos, args.seed, args.before,
            lambda http: http.post(f"{run_url}/apply").raise_for_status(),
            lambda http: http.get(run_url).json()["apply"], "applying", "applied")
    print(f"apply (re-encode {len(ids)} images + swap): {apply_seconds:.1f} s", file=sys.stderr)
    write_json(args.out, {
        "benchmark": "search latency during a model switch (background re-encoding)",
        "command": "python benchmarks/apply_latency.py " + " ".join(sys.argv[1:]),
        "data": f"cars-bmw13, all {len(ids)} images, zero-training EfficientNet-Lite0 + ITQ 64 bits",
        "model": f"gap+csq 64 bits trained {args.epochs} epochs on frozen maps of the same images",
        "search": SEARCH, "apply_seconds": apply_seconds, "images": len(ids),
        "new_hasher": info["hasher"].get("type"), "rows": rows,
        "note": "before the background re-encoding, a search sent during an apply waited up to apply_seconds",
        "load_average_before": load_before, "machine": machine()})


if __name__ == "__main__":
    main()
