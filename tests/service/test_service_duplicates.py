"""Duplicate groups over REST and on the page (Debian's Chromium) against a real server with an API key:
the groups with their members, resolving one (refused without the key), and "keep this, remove the
others" on the page (its screenshot goes to test-artifacts/service/; docs/screenshots/duplicates.png is
the committed one)."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageEnhance
from playwright.sync_api import Page, expect

from hashseek.search.collection import Collection
from hashseek.service import create_app

expect.set_options(timeout=20_000)
KEY = "dup-key"
C = "/api/collections/shapes"


def _copies(path: Path) -> dict[str, bytes]:
    image = Image.open(path).convert("RGB")
    out = {}
    for name, edited, quality in (("half", image.resize((image.width // 2, image.height // 2)), 90),
                                  ("q30", image, 30), ("bright", ImageEnhance.Brightness(image).enhance(1.2), 90)):
        data = io.BytesIO()
        edited.save(data, "JPEG", quality=quality)
        out[f"{path.stem}__{name}.jpg"] = data.getvalue()
    return out


@pytest.fixture(scope="module")
def shapes(image_set, tmp_path_factory) -> Path:
    """The 32 shipped images, three copies of two of them and a byte copy of a third."""
    dataset, ids = image_set
    work = tmp_path_factory.mktemp("dups")
    extra = {**_copies(dataset.path(ids[0])), **_copies(dataset.path(ids[9])),
             "same.jpg": dataset.path(ids[20]).read_bytes()}
    for name, data in extra.items():
        (work / name).write_bytes(data)
    path = work / "shapes"
    with Collection.create(path) as collection:
        collection.add_paths([dataset.path(i) for i in ids], progress=False)
        collection.add_paths([work / name for name in extra], progress=False)
    return path


@pytest.fixture
def url(shapes, tmp_path, serve_app):
    path = tmp_path / "shapes"
    shutil.copytree(shapes, path)
    with serve_app(create_app(path, KEY)) as base:
        yield base


def test_groups_and_resolving_over_rest(url):
    with httpx.Client(base_url=url, timeout=120) as client:
        found = client.get(f"{C}/duplicates", params={"max_hamming": 64})
        assert found.status_code == 200, found.text
        body = found.json()
        assert body["images"] == 39 and body["duplicates"] == 7 and body["max_hamming"] == 64
        assert sorted(len(g["members"]) for g in body["groups"]) == [2, 4, 4]
        exact = next(g for g in body["groups"] if g["kind"] == "exact")
        assert [m["same_bytes"] for m in exact["members"]] == [True, True]
        group = body["groups"][0]
        keeper = group["members"][0]
        assert keeper["keeper"] and keeper["id"] == group["keeper"] and keeper["hamming"] == 0
        assert keeper["width"] and keeper["thumbnail_url"] == f"{C}/images/{keeper['id']}/thumbnail"
        assert client.get(keeper["thumbnail_url"]).headers["content-type"] == "image/jpeg"
        others = [m["id"] for m in group["members"][1:]]

        assert client.get(f"{C}/duplicates", params={"max_distance": 3}).status_code == 422
        resolve = {"keep": keeper["id"], "remove": others}
        assert client.post(f"{C}/duplicates/resolve", json=resolve).status_code == 401
        assert client.post(f"{C}/duplicates/resolve", json=resolve, headers={"X-API-Key": "wrong"}).status_code == 401
        both = {"keep": keeper["id"], "remove": [keeper["id"]]}
        assert client.post(f"{C}/duplicates/resolve", json=both, headers={"X-API-Key": KEY}).status_code == 400
        done = client.post(f"{C}/duplicates/resolve", json=resolve, headers={"X-API-Key": KEY})
        assert done.status_code == 200 and done.json() == {"kept": keeper["id"], "removed": 3, "images": 36}
        again = client.post(f"{C}/duplicates/resolve", json=resolve, headers={"X-API-Key": KEY})
        assert again.status_code == 404                                   # they are gone
        after = client.get(f"{C}/duplicates", params={"max_hamming": 64}).json()
        assert len(after["groups"]) == 2 and keeper["id"] not in {m["id"] for g in after["groups"]
                                                                  for m in g["members"]}


def test_keep_this_on_the_page(page: Page, url, artifacts):
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    panel = page.get_by_test_id("duplicates-panel")
    page.get_by_test_id("dup-hamming").fill("64")
    page.get_by_test_id("find-duplicates").click()
    groups = panel.get_by_test_id("duplicate-group")
    expect(groups).to_have_count(3)
    expect(panel.get_by_test_id("keeper-tag")).to_have_count(3)
    expect(panel.get_by_test_id("keep-button").first).to_be_hidden()     # read-only without the key

    page.get_by_test_id("key-input").fill(KEY)
    page.get_by_test_id("key-button").click()
    expect(page.get_by_test_id("readonly-note")).to_be_hidden()
    expect(panel.get_by_test_id("keep-button").first).to_be_visible()
    expect(panel.get_by_test_id("duplicates-summary")).to_contain_text("7 duplicates among 39 images")
    expect(page.get_by_test_id("busy")).to_be_hidden()
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=artifacts / "duplicates.png")

    first = groups.first
    members = first.get_by_test_id("duplicate-member")
    chosen = members.nth(1)                          # not the suggested keeper: the user decides
    chosen_id = chosen.get_attribute("data-id")
    page.once("dialog", lambda dialog: dialog.accept())
    chosen.get_by_test_id("keep-button").click()
    expect(page.get_by_test_id("notice")).to_contain_text("removed 3")
    expect(groups).to_have_count(2)
    expect(page.get_by_test_id("collection-info")).to_contain_text("36 images")
    with httpx.Client(base_url=url) as client:
        assert client.get(f"{C}/images/{chosen_id}").status_code == 200
