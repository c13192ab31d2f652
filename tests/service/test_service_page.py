"""The page in Debian's Chromium (Playwright) against the real server: gallery, click-to-search, random,
upload and classification; screenshots go to test-artifacts/service/."""
from __future__ import annotations

import re
import shutil
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)   # 2 shared cores: the first thumbnails and encodes can be slow


@pytest.fixture
def library_requests(page: Page) -> list[str]:
    """URLs of every library listing the page asks for (it must only ever ask for one page)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url) if "/images?" in request.url else None)
    return urls


@pytest.fixture
def ready(page: Page, server, library_requests) -> Page:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(server)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def _results(page: Page):
    return page.get_by_test_id("results").get_by_test_id("result-item")


def test_gallery_pages_through_the_library_lazily(ready: Page, library_requests, artifacts):
    gallery = ready.get_by_test_id("gallery").get_by_test_id("gallery-item")
    expect(gallery).to_have_count(48)
    expect(ready.get_by_test_id("collection-info")).to_contain_text("50 images")
    expect(ready.get_by_test_id("page-info")).to_have_text("page 1 of 2 · 50 images")
    assert set(gallery.locator("img").evaluate_all("imgs => imgs.map(i => i.loading)")) == {"lazy"}
    expect(ready.get_by_test_id("page-prev")).to_be_disabled()
    ready.get_by_test_id("page-next").click()
    expect(gallery).to_have_count(2)
    expect(ready.get_by_test_id("page-next")).to_be_disabled()
    ready.get_by_test_id("label-filter").select_option("watch")
    expect(gallery).to_have_count(10)
    expect(ready.get_by_test_id("page-info")).to_have_text("page 1 of 1 · 10 images")
    assert set(gallery.evaluate_all("cards => cards.map(c => c.dataset.label)")) == {"watch"}
    ready.screenshot(path=artifacts / "gallery-filtered.png", full_page=True)
    limits = [int(parse_qs(urlsplit(url).query)["limit"][0]) for url in library_requests]
    assert len(limits) == 3 and max(limits) == 48      # server-side pages only


def test_settings_start_from_the_server_defaults(ready: Page, client):
    defaults = client.get("/api/search-defaults").json()
    expect(ready.get_by_test_id("k-input")).to_have_value(str(defaults["k"]))
    expect(ready.get_by_test_id("vote-k-input")).to_have_value(str(defaults["vote_k"]))
    expect(ready.get_by_test_id("rerank-select")).to_have_value(defaults["rerank"] or "")
    expect(ready.get_by_test_id("candidates-input")).to_have_value(str(defaults["candidates"] or ""))


def test_click_any_picture_to_search(ready: Page, artifacts):
    ready.get_by_test_id("rerank-select").select_option("chi2")
    face = ready.locator('[data-testid="gallery-item"][data-label="Faces_easy"]').first
    face_id = face.get_attribute("data-id")
    face.get_by_test_id("picture").click()
    results = _results(ready)
    expect(results).to_have_count(20)
    expect(ready.get_by_test_id("query-title")).to_contain_text("Faces_easy")
    expect(ready.get_by_test_id("search-meta")).to_contain_text(re.compile(r"rerank:chi2 .* took \d+\.\d ms"))
    ids = results.evaluate_all("cards => cards.map(c => c.dataset.id)")
    labels = results.evaluate_all("cards => cards.map(c => c.dataset.label)")
    assert face_id not in ids and labels[:5] == ["Faces_easy"] * 5
    expect(results.first.get_by_test_id("distances")).to_have_text(re.compile(r"^Hamming \d+ · chi2 [\d.]+$"))
    ready.screenshot(path=artifacts / "search-by-click.png", full_page=True)

    # a result is itself a picture to click: the query moves to it
    second = results.nth(1)
    second_name = second.locator("img").get_attribute("alt")
    second.get_by_test_id("picture").click()
    expect(ready.get_by_test_id("query-title")).to_contain_text(second_name)


def test_settings_change_the_search(ready: Page):
    ready.get_by_test_id("k-input").fill("5")
    ready.get_by_test_id("rerank-select").select_option("")
    ready.get_by_test_id("gallery-item").nth(30).get_by_test_id("picture").click()
    expect(_results(ready)).to_have_count(5)
    expect(ready.get_by_test_id("search-meta")).to_contain_text("knn")
    expect(_results(ready).first.get_by_test_id("distances")).to_have_text(re.compile(r"^Hamming \d+$"))


def test_random_button(ready: Page):
    ready.get_by_test_id("random-button").click()
    expect(_results(ready)).to_have_count(20)
    expect(ready.get_by_test_id("query-title")).to_contain_text("Random pick")
    expect(ready.get_by_test_id("prediction")).to_be_hidden()


def test_upload_searches_and_classifies(ready: Page, photo, artifacts):
    name, data = photo
    ready.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "my-bike.jpg", "mimeType": "image/jpeg", "buffer": data}])
    expect(ready.get_by_test_id("predicted-label")).to_have_text("Motorbikes")
    rows = ready.get_by_test_id("distribution").get_by_test_id("distribution-row")
    expect(rows.first).to_contain_text("Motorbikes")
    expect(ready.get_by_test_id("query-title")).to_contain_text("my-bike.jpg")
    expect(_results(ready).first).to_have_attribute("data-label", "Motorbikes")
    votes = int(ready.get_by_test_id("vote-k-input").input_value())
    expect(_results(ready)).to_have_count(votes)              # the results are the neighbours that voted
    expect(ready.get_by_test_id("classifier-line")).to_be_hidden()   # this collection's model has no classifier
    ready.screenshot(path=artifacts / "upload-classified.png", full_page=True)


def test_a_model_with_a_classifier_shows_it_beside_the_vote(page: Page, serve_app, classifier_collection, photo,
                                                              artifacts):
    from hashseek.service import create_app

    with serve_app(create_app(classifier_collection)) as url:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.get_by_test_id("upload-input").set_input_files(
            files=[{"name": "my-bike.jpg", "mimeType": "image/jpeg", "buffer": photo[1]}])
        expect(page.get_by_test_id("predicted-label")).to_have_text("Motorbikes")
        expect(page.get_by_test_id("classifier-line")).to_have_text(
            re.compile(r"^The model's own classifier: Motorbikes, \d+% sure \(it knows only the classes"))
        page.screenshot(path=artifacts / "upload-classified-by-both.png", full_page=True)
        page.get_by_test_id("random-button").click()
        expect(page.get_by_test_id("prediction")).to_be_hidden()


def test_labels_the_model_never_trained_on_are_marked(page: Page, serve_app, classifier_collection, tmp_path):
    """Three photos relabelled to a class the collection's model has no training images of: the REST info and
    the page name it, so a user knows its search rests on other classes' codes."""
    from hashseek.search.collection import Collection
    from hashseek.service import create_app

    path = tmp_path / "caltech"
    shutil.copytree(classifier_collection, path)
    with Collection.open(path) as collection:
        for record in collection.list(limit=3):
            collection.relabel(record.id, "Newcomer")
    with serve_app(create_app(path)) as url:
        assert httpx.get(f"{url}/api/collections/caltech").json()["untrained_classes"] == {"Newcomer": 3}
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("collection-info")).to_contain_text(
            "6 classes · 1 never trained on by the model (marked *)")
        expect(page.get_by_test_id("label-filter").locator("option", has_text="Newcomer")).to_have_text(
            "Newcomer * (3)")


def test_drag_and_drop_an_image(ready: Page, photo):
    transfer = ready.evaluate_handle(
        """bytes => { const t = new DataTransfer();
                      t.items.add(new File([new Uint8Array(bytes)], "dropped.jpg", {type: "image/jpeg"}));
                      return t; }""", list(photo[1]))
    ready.dispatch_event("body", "drop", {"dataTransfer": transfer})
    expect(ready.get_by_test_id("query-title")).to_contain_text("dropped.jpg")
    expect(ready.get_by_test_id("predicted-label")).to_have_text("Motorbikes")


def test_a_bad_upload_shows_the_error_and_the_page_goes_on(ready: Page):
    ready.get_by_test_id("upload-input").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    expect(ready.get_by_test_id("error")).to_contain_text("422: cannot load image from notes.txt")
    ready.get_by_test_id("random-button").click()
    expect(_results(ready)).to_have_count(20)


def test_help_dialog(ready: Page):
    dialog = ready.get_by_test_id("help-dialog")
    expect(dialog).to_be_hidden()
    ready.get_by_test_id("help-button").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Click any picture")
    ready.get_by_test_id("close-help").click()
    expect(dialog).to_be_hidden()
