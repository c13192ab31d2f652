"""Screenshots of the page for the README: the Caltech101 library, a search by click, an upload (``search``);
managing a library with the API key and a training run in the model panel (``manage``).

``search`` serves the Caltech101 collection of ``service_latency.py`` (built under ``--work`` if
missing); ``manage`` a small one of the first 20 images of 8 Caltech101 classes, then the 531 images
of cars-bmw13 for a fast training run (both built there too, and served from fresh copies, so each
run starts from the same library), with an API key. Both run ``hashseek serve`` and drive Debian's
Chromium through Playwright.

    python benchmarks/service_screenshots.py --work ~/.cache/hashseek/bench [--parts search manage]
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageOps
from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from _server import serve_process  # noqa: E402
from _service import caltech_collection  # noqa: E402

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.core.paths import cache_root  # noqa: E402
from hashseek.search.collection import COLLECTION_JSON, Collection  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
MANAGE_CLASSES = ("airplanes", "Faces_easy", "Motorbikes", "watch", "sunflower", "dolphin", "ketch", "chandelier")
PER_CLASS = 20
ADDED_CLASS = "brain"     # added from a folder in the screenshot
KEY = "screenshot-key"


def results_shown(page) -> None:
    """Scrolled up to the results, every result thumbnail loaded (the first ones are made on request)."""
    page.wait_for_function("window.scrollY === 0")
    page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth)",
                           timeout=60_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=cache_root() / "bench")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--parts", nargs="+", choices=["search", "manage"], default=["search", "manage"])
    ap.add_argument("--offset", type=int, default=4512, help="library page to show (dolphins, then dragonflies)")
    ap.add_argument("--click", default="dolphin", help="label of the library picture to search with")
    ap.add_argument("--upload", default="sunflower/image_0003.jpg",
                    help="Caltech101 image uploaded flipped and cropped, as a photo the library does not hold")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if "search" in args.parts:
        search_screenshots(args)
    if "manage" in args.parts:
        manage_screenshots(args)
    print(f"wrote {', '.join(str(p) for p in sorted(args.out.glob('*.png')))}")


def search_screenshots(args) -> None:
    caltech, _ = caltech_collection(args.work)
    photo = Image.open(io.BytesIO(load_dataset("caltech101").read_bytes(args.upload))).convert("RGB")
    width, height = photo.size
    query = ImageOps.mirror(photo).crop((width // 10, height // 10, width, height))
    upload = io.BytesIO()
    query.save(upload, "JPEG", quality=90)

    with serve_process([caltech]) as (_, url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
        page.evaluate(f"loadPage({args.offset})")
        gallery = page.get_by_test_id("gallery-item")
        expect(gallery.first).to_have_attribute("data-id", str(args.offset + 1))
        page.wait_for_load_state("networkidle")
        page.screenshot(path=args.out / "library.png")

        gallery.and_(page.locator(f'[data-label="{args.click}"]')).first.get_by_test_id("picture").click()
        expect(page.get_by_test_id("result-item")).to_have_count(20, timeout=60_000)
        results_shown(page)
        page.screenshot(path=args.out / "search-by-click.png")

        page.get_by_test_id("upload-input").set_input_files(
            files=[{"name": "my-sunflower.jpg", "mimeType": "image/jpeg", "buffer": upload.getvalue()}])
        expect(page.get_by_test_id("query-title")).to_contain_text("my-sunflower.jpg", timeout=60_000)
        results_shown(page)
        page.screenshot(path=args.out / "upload-classified.png")
        browser.close()


def small_collection(work: Path) -> Path:
    """The first PER_CLASS images of each of MANAGE_CLASSES (zero training), built once under ``work``."""
    dataset = load_dataset("caltech101")
    ids = [i for cls in MANAGE_CLASSES for i in [j for j in dataset.ids if j.startswith(cls + "/")][:PER_CLASS]]
    return _built(work / f"caltech-manage-{len(MANAGE_CLASSES)}x{PER_CLASS}", dataset, ids)


def _built(path: Path, dataset, ids) -> Path:
    if not (path / COLLECTION_JSON).is_file():
        shutil.rmtree(path, ignore_errors=True)
        with Collection.create(path) as collection:
            collection.add_dataset(dataset, ids)
    return path


@contextmanager
def _page(collection: Path, tmp: str):
    """The page over a fresh copy of ``collection`` (served as photos), unlocked with the API key."""
    served = Path(tmp) / "photos"
    shutil.rmtree(served, ignore_errors=True)
    shutil.copytree(collection, served)
    with serve_process([served], "--api-key", KEY) as (_, url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
        page.get_by_test_id("key-input").fill(KEY)
        page.get_by_test_id("key-button").click()
        expect(page.get_by_test_id("readonly-note")).to_be_hidden(timeout=60_000)
        yield page
        browser.close()


def manage_screenshots(args) -> None:
    """library-manage.png: a folder added (labels from its sub-folder), a selection about to be relabelled;
    training-panel.png: a finished fast run on the cars-bmw13 collection's labels, ready to be applied."""
    caltech = load_dataset("caltech101")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "new-photos" / ADDED_CLASS
        folder.mkdir(parents=True)
        for image_id in [i for i in caltech.ids if i.startswith(ADDED_CLASS + "/")][:6]:
            (folder / Path(image_id).name).write_bytes(caltech.read_bytes(image_id))
        with _page(small_collection(args.work), tmp) as page:
            page.get_by_test_id("add-folder-input").set_input_files(folder.parent)
            expect(page.get_by_test_id("notice")).to_contain_text("Added 6 images", timeout=120_000)
            cards = page.get_by_test_id("gallery-item")
            for n in (3, 4, 6, 9):
                cards.nth(n).get_by_test_id("pick").check()
            page.get_by_test_id("relabel-input").fill("favourites")
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=args.out / "library-manage.png")

        cars = load_dataset("cars-bmw13")
        with _page(_built(args.work / "cars-bmw13-manage", cars, list(cars.ids)), tmp) as page:
            page.get_by_test_id("recipe-select").select_option("fast")
            page.get_by_test_id("train-button").click()
            expect(page.get_by_test_id("run-state")).to_have_text("finished", timeout=3_600_000)
            page.get_by_test_id("notice").evaluate("box => box.hidden = true")
            page.get_by_test_id("model-panel").scroll_into_view_if_needed()
            page.get_by_test_id("model-panel").screenshot(path=args.out / "training-panel.png")
            run = page.get_by_test_id("run-title").text_content()
            print(f"{run}: {page.get_by_test_id('run-epoch').text_content()}; "
                  f"{page.get_by_test_id('run-figures').text_content()}")


if __name__ == "__main__":
    main()
