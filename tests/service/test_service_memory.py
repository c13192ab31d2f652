"""Decode memory (issue #15 E): a burst of tiny uploads that decode to huge images must not take the
server's memory, nor keep it. Measured on a real ``hashseek serve`` process on 127.0.0.1."""
from __future__ import annotations

import io
import statistics
import threading
import time

import httpx
from PIL import Image

from hashseek.service import create_app
from hashseek.service.media import decode_upload

UPLOADS = 8
PEAK_RISE_MB, SETTLED_RISE_MB, SETTLE_S = 400, 100, 10


def _bomb_png() -> bytes:
    """7000 x 7000 1-bit pixels (49 Mpx, under the 50 Mpx limit) in about 6 KB."""
    out = io.BytesIO()
    Image.new("1", (7000, 7000)).save(out, "PNG")
    return out.getvalue()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _burst(url: str, name: str, data: bytes) -> list[int]:
    statuses, gate = [], threading.Barrier(UPLOADS)

    def upload() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            gate.wait()
            statuses.append(client.post("/api/collections/caltech/search", params={"k": 3},
                                        files={"file": (name, data)}).status_code)

    threads = [threading.Thread(target=upload) for _ in range(UPLOADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_a_huge_png_is_decoded_straight_to_the_model_size():
    image = decode_upload(_bomb_png(), "bomb.png", 224, 50_000_000)
    assert image.mode == "RGB" and 224 <= min(image.size) < 2 * 224


def test_the_pixel_limit_is_a_setting(serve_app, collection_copy, photo):
    with Image.open(io.BytesIO(photo[1])) as image:
        pixels = image.width * image.height
    with serve_app(create_app(collection_copy(), max_pixels=pixels - 1)) as url, httpx.Client(base_url=url) as client:
        refused = client.post("/api/collections/caltech/search", files={"file": ("p.jpg", photo[1])})
        assert refused.status_code == 422 and f"max_pixels={pixels - 1}" in refused.json()["detail"]
    with serve_app(create_app(collection_copy(), max_pixels=pixels)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/api/collections/caltech/search", files={"file": ("p.jpg", photo[1])}).status_code == 200


def test_a_burst_of_bomb_uploads_is_bounded_and_given_back(serve_cli, collection_copy, photo):
    png = _bomb_png()
    assert len(png) < 10_000
    with serve_cli(collection_copy()) as (process, url):
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.monotonic(), _rss_mb(process.pid)))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert _burst(url, "photo.jpg", photo[1]) == [200] * UPLOADS      # warm-up: model, threads, arenas
        time.sleep(2)
        now = time.monotonic()
        baseline = statistics.median(mb for t, mb in samples if t > now - 1)
        assert _burst(url, "bomb.png", png) == [200] * UPLOADS
        answered = time.monotonic()
        deadline = answered + SETTLE_S
        while time.monotonic() < deadline and _rss_mb(process.pid) - baseline > SETTLED_RISE_MB:
            time.sleep(0.1)
        settled = _rss_mb(process.pid)
        done.set()
        sampler.join()
    peak = max(mb for _, mb in samples)
    print(f"baseline {baseline:.0f} MB, peak +{peak - baseline:.0f} MB, settled +{settled - baseline:.0f} MB")
    assert peak - baseline <= PEAK_RISE_MB, (baseline, peak)
    assert settled - baseline <= SETTLED_RISE_MB, (baseline, settled)
