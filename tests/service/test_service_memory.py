"""Decode memory (issue #15 E): a burst of tiny uploads that decode to huge images must not take the
server's memory, nor keep it. Measured on a real ``hashseek serve`` process on 127.0.0.1."""
from __future__ import annotations

import io
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

from hashseek.service import create_app
from hashseek.service.media import decode_upload

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _server import bomb_png, rss_mb, upload_burst  # noqa: E402

UPLOADS = 8
PEAK_RISE_MB, SETTLED_RISE_MB, SETTLE_S = 400, 100, 10


def test_a_huge_png_is_decoded_straight_to_the_model_size():
    image = decode_upload(bomb_png(), "bomb.png", 224, 50_000_000)
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
    png = bomb_png()
    assert len(png) < 10_000
    with serve_cli(collection_copy()) as (process, url):
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.monotonic(), rss_mb(process.pid)))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert upload_burst(url, "caltech", "photo.jpg", photo[1], UPLOADS, k=3) == [200] * UPLOADS      # warm-up: model, threads, arenas
        time.sleep(2)
        now = time.monotonic()
        baseline = statistics.median(mb for t, mb in samples if t > now - 1)
        assert upload_burst(url, "caltech", "bomb.png", png, UPLOADS, k=3) == [200] * UPLOADS
        answered = time.monotonic()
        deadline = answered + SETTLE_S
        while time.monotonic() < deadline and rss_mb(process.pid) - baseline > SETTLED_RISE_MB:
            time.sleep(0.1)
        settled = rss_mb(process.pid)
        done.set()
        sampler.join()
    peak = max(mb for _, mb in samples)
    print(f"baseline {baseline:.0f} MB, peak +{peak - baseline:.0f} MB, settled +{settled - baseline:.0f} MB")
    assert peak - baseline <= PEAK_RISE_MB, (baseline, peak)
    assert settled - baseline <= SETTLED_RISE_MB, (baseline, settled)
