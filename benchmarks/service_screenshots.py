"""Screenshots of the page for the README: the Caltech101 library, a search by click, an upload.

Serves the Caltech101 collection of ``service_latency.py`` (built under ``--work`` if missing)
with ``hashseek serve`` and drives Debian's Chromium through Playwright.

    python benchmarks/service_screenshots.py --work ~/.cache/hashseek/bench
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from pathlib import Path

from PIL import Image, ImageOps
from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from _service import caltech_collection, server  # noqa: E402

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def results_shown(page) -> None:
    """Scrolled up to the results, every result thumbnail loaded (the first ones are made on request)."""
    page.wait_for_function("window.scrollY === 0")
    page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth)",
                           timeout=60_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=cache_root() / "bench")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--offset", type=int, default=4512, help="library page to show (dolphins, then dragonflies)")
    ap.add_argument("--click", default="dolphin", help="label of the library picture to search with")
    ap.add_argument("--upload", default="sunflower/image_0003.jpg",
                    help="Caltech101 image uploaded flipped and cropped, as a photo the library does not hold")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    caltech, _ = caltech_collection(args.work)
    photo = Image.open(io.BytesIO(load_dataset("caltech101").read_bytes(args.upload))).convert("RGB")
    width, height = photo.size
    query = ImageOps.mirror(photo).crop((width // 10, height // 10, width, height))
    upload = io.BytesIO()
    query.save(upload, "JPEG", quality=90)

    with server([caltech]) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
        page.evaluate(f"loadPage({args.offset})")
        gallery = page.get_by_test_id("gallery-item")
        expect(gallery.first).to_have_attribute("data-id", str(args.offset + 1))
        page.wait_for_load_state("networkidle")
        page.screenshot(path=args.out / "library.png")

        gallery.and_(page.locator(f'[data-label="{args.click}"]')).first.locator("button").click()
        expect(page.get_by_test_id("result-item")).to_have_count(20, timeout=60_000)
        results_shown(page)
        page.screenshot(path=args.out / "search-by-click.png")

        page.get_by_test_id("upload-input").set_input_files(
            files=[{"name": "my-sunflower.jpg", "mimeType": "image/jpeg", "buffer": upload.getvalue()}])
        expect(page.get_by_test_id("query-title")).to_contain_text("my-sunflower.jpg", timeout=60_000)
        results_shown(page)
        page.screenshot(path=args.out / "upload-classified.png")
        browser.close()
    print(f"wrote {', '.join(str(p) for p in sorted(args.out.glob('*.png')))}")


if __name__ == "__main__":
    main()
