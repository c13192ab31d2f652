"""Server memory under a burst of decompression-bomb-like uploads (issue #15 E).

Protocol. ``hashseek serve`` runs in its own process on 127.0.0.1 over a small real collection
(Caltech101, 5 classes x 10 images, the default EfficientNet-Lite0 + ITQ 64 bits). After a
warm-up (8 concurrent uploads of a real Caltech101 JPEG, so the model, the thread pool and the
allocator's arenas exist), the baseline is the median resident set size (VmRSS of the server
process, sampled every 5 ms) over one quiet second. Then ``--uploads`` clients POST at once the
same PNG (7000 x 7000 1-bit pixels, all black, about 6 KB: 49 Mpx, under the 50 Mpx limit) to
``/search``, each from its own thread; the peak is the highest sample from the first request to
the last answer; the settled RSS is sampled for 10 s after the last answer. The burst is
repeated ``--rounds`` times (memory must not ratchet up). Client and server share the machine.

    python benchmarks/service_decode_memory.py --work ~/.cache/hashseek/bench
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _server import bomb_png, rss_mb, serve_process, upload_burst  # noqa: E402

from hashseek.core.atomic import atomic_write_json  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.eval.cost import machine  # noqa: E402
from hashseek.search.collection import Collection  # noqa: E402

CLASSES = ["airplanes", "Faces_easy", "Motorbikes", "watch", "sunflower"]
COLLECTION = "caltech-slice50"
SETTLE_SECONDS = 10.0


def small_collection(work: Path) -> tuple[Path, bytes]:
    """The 50-image Caltech101 collection (built once) and a real JPEG that is not in it."""
    dataset = load_dataset("caltech101")
    ids = [i for c in CLASSES for i in [j for j in dataset.ids if j.startswith(c + "/")][:10]]
    photo = dataset.read_bytes([j for j in dataset.ids if j.startswith("Motorbikes/")][10])
    path = work / COLLECTION
    if not (path / "collection.json").is_file():
        with Collection.create(path) as collection:
            collection.add_dataset(dataset, ids, progress=False)
    return path, photo


class Sampler(threading.Thread):
    """VmRSS of ``pid`` every 5 ms: (seconds since start, MB)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - self.start_time, rss_mb(self.pid)))
            time.sleep(0.005)

    def between(self, t0: float, t1: float) -> list[float]:
        return [mb for t, mb in list(self.samples) if t0 <= t <= t1]


def measure(url: str, pid: int, png: bytes, photo: bytes, uploads: int, rounds: int) -> dict:
    sampler = Sampler(pid)
    sampler.start()
    upload_burst(url, COLLECTION, "photo.jpg", photo, uploads)                  # warm-up: model, thread pool, arenas
    time.sleep(2.0)
    t = time.monotonic() - sampler.start_time
    baseline = statistics.median(sampler.between(t - 1.0, t))
    results = []
    for _ in range(rounds):
        t0 = time.monotonic() - sampler.start_time
        statuses = upload_burst(url, COLLECTION, "bomb.png", png, uploads)
        t1 = time.monotonic() - sampler.start_time
        time.sleep(SETTLE_SECONDS)
        after = [(t - t1, mb) for t, mb in list(sampler.samples) if t > t1]
        peak = max(sampler.between(t0, t1) + [mb for _, mb in after[:20]])
        back = next((dt for dt, mb in after if mb - baseline <= 100), None)
        results.append({"statuses": sorted(statuses), "burst_seconds": t1 - t0, "peak_mb": peak,
                        "peak_rise_mb": peak - baseline, "settled_mb": after[-1][1],
                        "settled_rise_mb": after[-1][1] - baseline, "seconds_to_within_100_mb": back})
        print(f"peak +{peak - baseline:.0f} MB, after {SETTLE_SECONDS:.0f} s +{after[-1][1] - baseline:.0f} MB, "
              f"statuses {sorted(set(statuses))}", file=sys.stderr)
    sampler.stop.set()
    return {"baseline_mb": baseline, "rounds": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=cache_root() / "bench")
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-decodes", type=int, help="the server's setting (default: its own)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "bench"
                        / "service_decode_memory.json")
    args = parser.parse_args()
    path, photo = small_collection(args.work)
    png = bomb_png()
    extra = [] if args.max_decodes is None else ["--max-decodes", str(args.max_decodes)]
    with serve_process(path, *extra) as (process, url):
        figures = measure(url, process.pid, png, photo, args.uploads, args.rounds)
    payload = {"benchmark": "service_decode_memory", "command": " ".join(["python", *sys.argv]),
               "protocol": __doc__.split("Protocol. ")[1].split("\n\n")[0].replace("\n", " "),
               "upload": {"format": "PNG", "mode": "1", "size": [7000, 7000], "bytes": len(png)},
               "uploads": args.uploads, "server_max_decodes": args.max_decodes or "default",
               "target": {"peak_rise_mb": 400, "settled_rise_mb": 100, "within_seconds": SETTLE_SECONDS},
               "machine": machine(), **figures}
    atomic_write_json(args.out, payload)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
