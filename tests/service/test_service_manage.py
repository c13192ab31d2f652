"""Managing a collection from the page, in Debian's Chromium against a real server with an API key: read-only
without the key, adding several images and a folder, removing, relabelling, and a real training run of the
fast recipe (a `hashseek train` subprocess) applied through reindex and restored; and the REST calls behind
them. The collection: three classes of the shipped test images (the fourth is what gets added)."""
from __future__ import annotations

import io
import json
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageOps
from playwright.sync_api import Page, expect

from hashseek.search.collection import Collection
from hashseek.service import create_app
from hashseek.service.training import RunOutput

expect.set_options(timeout=20_000)
KEY = "page-key"
C = "/api/collections/shapes"
KEPT = ("checks", "circles", "stripes")
HEADERS = {"X-API-Key": KEY}
RUN_MS = 300_000   # a 3-epoch run with its report takes about 20 s of CPU; far longer on shared cores


@pytest.fixture(scope="module")
def shapes(image_set, tmp_path_factory) -> Path:
    dataset, ids = image_set
    path = tmp_path_factory.mktemp("manage") / "shapes"
    with Collection.create(path) as collection:
        collection.add_dataset(dataset, [i for i in ids if i.split("/")[0] in KEPT], progress=False)
    return path


@pytest.fixture
def url(shapes, tmp_path, serve_app):
    """A server with an API key over a private copy of the collection."""
    path = tmp_path / "shapes"
    shutil.copytree(shapes, path)
    with serve_app(create_app(path, KEY)) as base:
        yield base


@pytest.fixture
def client(url):
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def _open(page: Page, url: str, key: str | None = KEY) -> Page:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    if key is not None:
        page.get_by_test_id("key-input").fill(key)
        page.get_by_test_id("key-button").click()
        expect(page.get_by_test_id("readonly-note")).to_be_hidden()
    return page


def _cards(page: Page):
    return page.get_by_test_id("gallery").get_by_test_id("gallery-item")


def _mirrored(jpeg: bytes) -> bytes:
    """Another picture than ``jpeg`` (new bytes), of the same kind."""
    out = io.BytesIO()
    ImageOps.mirror(Image.open(io.BytesIO(jpeg))).save(out, "JPEG", quality=90)
    return out.getvalue()


def _labels(client: httpx.Client) -> dict[int, str | None]:
    return {item["id"]: item["label"] for item in client.get(f"{C}/images", params={"limit": 500}).json()["items"]}


def test_without_the_key_the_page_is_read_only(page: Page, url, shapes, serve_app, tmp_path):
    _open(page, url, key=None)
    note = page.get_by_test_id("readonly-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("type the API key")
    for control in ("add-files-button", "add-folder-button", "selection-bar", "train-form"):
        expect(page.get_by_test_id(control)).to_be_hidden()
    expect(_cards(page)).to_have_count(24)
    expect(page.get_by_test_id("pick")).to_have_count(0)
    expect(page.get_by_test_id("remove-one")).to_have_count(0)

    page.get_by_test_id("key-input").fill("not-the-key")
    page.get_by_test_id("key-button").click()
    expect(page.get_by_test_id("error")).to_contain_text("not the server's")
    expect(note).to_be_visible()

    page.get_by_test_id("key-input").fill(KEY)
    page.get_by_test_id("key-button").click()
    expect(note).to_be_hidden()
    expect(page.get_by_test_id("add-files-button")).to_be_visible()
    expect(page.get_by_test_id("pick")).to_have_count(24)
    page.reload()   # the key is kept for the tab, checked again
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("pick")).to_have_count(24)
    page.get_by_test_id("lock-button").click()
    expect(note).to_be_visible()
    expect(page.get_by_test_id("pick")).to_have_count(0)

    # a server on a network address without a key takes no writes at all: no key field, the note says so
    path = tmp_path / "open"
    shutil.copytree(shapes, path)
    with serve_app(create_app(path, host="0.0.0.0")) as other:
        _open(page, other, key=None)
        expect(note).to_contain_text("takes no changes")
        expect(page.get_by_test_id("key-form")).to_be_hidden()
        expect(page.get_by_test_id("add-files-button")).to_be_hidden()


def test_add_several_images_and_a_folder(page: Page, url, client, image_set, tmp_path, artifacts):
    dataset, ids = image_set
    triangles = [i for i in ids if i.startswith("triangles/")]
    _open(page, url)
    page.get_by_test_id("add-label").fill("pointy")
    page.get_by_test_id("add-files-input").set_input_files(
        files=[{"name": Path(i).name, "mimeType": "image/jpeg", "buffer": dataset.read_bytes(i)} for i in triangles[:4]])
    expect(page.get_by_test_id("notice")).to_have_text("Added 4 images.")
    expect(page.get_by_test_id("collection-info")).to_contain_text("28 images")
    expect(page.get_by_test_id("label-filter").locator("option", has_text="pointy (4)")).to_have_count(1)
    expect(_cards(page).last).to_have_attribute("data-label", "pointy")   # the page moved to the new images

    folder = tmp_path / "drop" / "triangles"
    folder.mkdir(parents=True)
    for i in triangles[4:]:
        (folder / Path(i).name).write_bytes(dataset.read_bytes(i))
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.jpg").write_bytes(dataset.read_bytes(triangles[0]))
    page.get_by_test_id("add-label").fill("")
    page.get_by_test_id("add-folder-input").set_input_files(folder.parent)
    expect(page.get_by_test_id("notice")).to_have_text("Added 4 images.")
    expect(page.get_by_test_id("collection-info")).to_contain_text("32 images · 64-bit codes · 5 classes")
    page.screenshot(path=artifacts / "manage-added.png", full_page=True)
    labels = list(_labels(client).values())
    assert labels[-8:] == ["pointy"] * 4 + ["triangles"] * 4

    # the same files again add nothing
    page.get_by_test_id("add-folder-input").set_input_files(folder.parent)
    expect(page.get_by_test_id("notice")).to_have_text("Added 0 images · 4 already in the library.")

    # several files dropped on the page are added (one would be searched with), with the label typed in
    page.get_by_test_id("add-label").fill("dropped")
    broken = dataset.read_bytes(triangles[1])[::-1]   # not an image: the batch is retried file by file
    page.evaluate("""([good, bad]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(good)], "drop-1.jpg", { type: "image/jpeg" }));
        transfer.items.add(new File([new Uint8Array(bad)], "drop-2.jpg", { type: "image/jpeg" }));
        document.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }""", [list(_mirrored(dataset.read_bytes(triangles[0]))), list(broken)])
    expect(page.get_by_test_id("notice")).to_have_text("Added 1 image.")
    expect(page.get_by_test_id("error")).to_contain_text("1 could not be added: drop-2.jpg")
    assert list(_labels(client).values())[-1] == "dropped"


def test_remove_one_and_a_selection(page: Page, url, client):
    _open(page, url)
    first = _cards(page).first
    first_id = int(first.get_attribute("data-id"))
    page.once("dialog", lambda dialog: dialog.accept())
    first.hover()
    first.get_by_test_id("remove-one").click()
    expect(page.get_by_test_id("notice")).to_have_text("Removed 1 image; 23 left.")
    expect(page.get_by_test_id("collection-info")).to_contain_text("23 images")

    chosen = [int(_cards(page).nth(n).get_attribute("data-id")) for n in (0, 5, 9)]
    for n in (0, 5, 9):
        _cards(page).nth(n).get_by_test_id("pick").check()
    expect(page.get_by_test_id("selection-count")).to_have_text("3 selected")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("remove-button").click()
    expect(page.get_by_test_id("notice")).to_have_text("Removed 3 images; 20 left.")
    expect(page.get_by_test_id("selection-count")).to_have_text("0 selected")
    expect(_cards(page)).to_have_count(20)
    left = set(_labels(client))
    assert len(left) == 20 and not left & {first_id, *chosen}

    page.once("dialog", lambda dialog: dialog.dismiss())   # a remove the user does not confirm removes nothing
    _cards(page).first.get_by_test_id("pick").check()
    page.get_by_test_id("remove-button").click()
    expect(page.get_by_test_id("selection-count")).to_have_text("1 selected")
    assert len(_labels(client)) == 20


def test_relabel_several_and_one(page: Page, url, client, artifacts):
    _open(page, url)
    chosen = [int(_cards(page).nth(n).get_attribute("data-id")) for n in (1, 2, 12)]
    for n in (1, 2, 12):
        _cards(page).nth(n).get_by_test_id("pick").check()
    page.get_by_test_id("relabel-input").fill("favourites")
    page.screenshot(path=artifacts / "manage-selection.png", full_page=True)
    page.get_by_test_id("relabel-button").click()
    expect(page.get_by_test_id("notice")).to_have_text("3 images labelled “favourites”.")
    expect(page.get_by_test_id("label-filter").locator("option", has_text="favourites (3)")).to_have_count(1)
    labels = _labels(client)
    assert [labels[i] for i in chosen] == ["favourites"] * 3
    assert sum(label == "favourites" for label in labels.values()) == 3

    card = _cards(page).nth(20)
    card_id = int(card.get_attribute("data-id"))
    page.once("dialog", lambda dialog: dialog.accept("  solo  "))
    card.get_by_test_id("edit-label").click()
    expect(page.get_by_test_id("notice")).to_have_text("1 image labelled “solo”.")
    expect(_cards(page).nth(20).get_by_test_id("edit-label")).to_have_text("solo")
    assert _labels(client)[card_id] == "solo"


def test_remove_and_relabel_requests(client):
    """All or nothing: an unknown id changes nothing; blank labels are no label; the key is needed."""
    before = _labels(client)
    assert client.post(f"{C}/images/relabel", json={"ids": [1, 2]}, headers={}).status_code == 401
    missing = client.post(f"{C}/images/relabel", json={"ids": [1, 999], "label": "x"}, headers=HEADERS)
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    assert client.post(f"{C}/images/remove", json={"ids": [2, 999]}, headers=HEADERS).status_code == 404
    assert _labels(client) == before
    for body in ({"ids": []}, {"ids": ["1"]}, {"ids": [1], "label": "x" * 201}, {"ids": [1], "extra": 1}):
        assert client.post(f"{C}/images/relabel", json=body, headers=HEADERS).status_code == 422, body
    blank = client.post(f"{C}/images/relabel", json={"ids": [1, 2], "label": "  "}, headers=HEADERS).json()
    assert blank["relabelled"] == 2 and _labels(client)[1] is None
    assert client.post(f"{C}/images/remove", json={"ids": [1, 2, 2]}, headers=HEADERS).json() == \
        {"removed": 2, "images": 22}
    files = [("files", ("a.jpg", b"x")), ("files", ("b.jpg", b"y"))]
    mismatch = client.post(f"{C}/images", files=files, data={"labels": ["one"]}, headers=HEADERS)
    assert mismatch.status_code == 400 and "2 files" in mismatch.json()["detail"]


def _wait(client: httpx.Client, job: str, done, timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"{C}/training/{job}").json()
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def test_training_requests(client):
    """One run per collection; cancel stops it; bounded settings only; reads open, writes behind the key."""
    assert client.post(f"{C}/training", json={"recipe": "fast"}).status_code == 401
    for body in ({"recipe": "slow"}, {"recipe": "fast", "epochs": 0}, {"recipe": "fast", "epochs": "3"},
                 {"recipe": "fast", "batch_size": 4}, {"recipe": "fast", "max_minutes": 0}):
        assert client.post(f"{C}/training", json=body, headers=HEADERS).status_code == 422, body
    started = client.post(f"{C}/training", json={"recipe": "fast", "epochs": 500}, headers=HEADERS)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["state"] == "running" and job["epochs"] == 500 and job["settings"] == {"epochs": 500}
    busy = client.post(f"{C}/training", json={"recipe": "fast"}, headers=HEADERS)
    assert busy.status_code == 409 and job["id"] in busy.json()["detail"]
    assert client.post(f"{C}/training/{job['id']}/apply", headers=HEADERS).status_code == 409   # not finished
    assert client.post(f"{C}/training/{job['id']}/cancel", headers=HEADERS).json()["state"] in ("running", "cancelled")
    stopped = _wait(client, job["id"], lambda s: s["state"] != "running", 30)
    assert stopped["state"] == "cancelled"
    assert [run["id"] for run in client.get(f"{C}/training").json()] == [job["id"]]
    assert client.get(f"{C}/training/20990101-000000-fast-abcd").status_code == 404
    assert client.get(f"{C}/training/..%2F..%2Fetc").status_code in (404, 422)
    assert client.post(f"{C}/model/restore", headers=HEADERS).status_code in (404, 409)   # nothing to restore
    client.post(f"{C}/images/relabel", json={"ids": list(_labels(client)), "label": "one"}, headers=HEADERS)
    one_class = client.post(f"{C}/training", json={"recipe": "fast"}, headers=HEADERS)
    assert one_class.status_code == 409 and "at least 2 classes" in one_class.json()["detail"]
    assert len(client.get(f"{C}/training").json()) == 1   # a refused run leaves nothing behind


def test_runs_outlive_the_server(client, tmp_path):
    """A run folder the server did not start (one a restart cut short) is listed as interrupted."""
    folder = tmp_path / "shapes" / "training" / "20260101-120000-best-0a1b"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"recipe": "best", "settings": {"max_minutes": 5}, "epochs": 120,
                                                 "state": "running", "started_at": "2026-01-01T12:00:00+00:00",
                                                 "finished_at": None, "error": None}))
    (folder / "loss_log.json").write_text(json.dumps([{"epoch": 1, "stage": "all", "loss": 0.5, "seconds": 3.0},
                                                      {"epoch": 2, "stage": "all", "loss": float("nan"),
                                                       "val_map": 0.25, "seconds": 6.0}]))
    (tmp_path / "shapes" / "training" / "not-a-run").mkdir()
    [run] = client.get(f"{C}/training").json()
    assert run["id"] == folder.name and run["state"] == "interrupted" and run["epoch"] == 2
    assert run["loss"] is None and run["val_map"] == 0.25 and run["best_epoch"] == 2   # a NaN loss is no figure
    assert client.post(f"{C}/training/{folder.name}/cancel", headers=HEADERS).status_code == 409
    assert client.post(f"{C}/training/{folder.name}/apply", headers=HEADERS).status_code == 409


def test_progress_bars_in_the_log_keep_their_last_state():
    output = RunOutput()
    for chunk in ("split: 3 classes\nfeat", "ures:  10%\rfeatures:  50%", "\rfeatures: 100%\n",
                  "train:  1/3\rtrain:  2/3", "\r"):
        output.feed(chunk)
    assert output.tail() == ["split: 3 classes", "features: 100%", "train:  2/3"]


def test_training_panel_trains_applies_and_restores(page: Page, url, client, artifacts):
    _open(page, url)
    expect(page.get_by_test_id("model-current")).to_contain_text("zero training")
    expect(page.get_by_test_id("model-previous")).to_be_hidden()
    expect(page.get_by_test_id("model-fit")).to_contain_text("Fitted on 24 images")
    page.get_by_test_id("refit-button").click()
    expect(page.get_by_test_id("notice")).to_contain_text(re.compile(r"^Refitted on 24 images in \d+\.\d s\.$"))
    page.get_by_test_id("recipe-select").select_option("fast")
    page.get_by_test_id("epochs-input").fill("3")
    page.get_by_test_id("train-button").click()
    expect(page.get_by_test_id("run-state")).to_have_text("running")
    expect(page.get_by_test_id("run-epoch")).to_contain_text(re.compile(r"epoch \d of 3 · loss \d\.\d{4} · "
                                                                       r"validation mAP (\d\.\d{3}|—)"), timeout=RUN_MS)
    expect(page.get_by_test_id("run-state")).to_have_text("finished", timeout=RUN_MS)
    expect(page.get_by_test_id("run-epoch")).to_contain_text(re.compile(r"epoch 3 of 3 .* validation mAP \d\.\d{3} "
                                                                       r"\(best \d\.\d{3} at epoch \d\)"))
    expect(page.get_by_test_id("run-figures")).to_contain_text(re.compile(r"test mAP@all \d\.\d{3}"))
    expect(page.get_by_test_id("run-figures")).to_contain_text(re.compile(r"as this collection searches: mAP@all "
                                                                         r"\d\.\d{3}, top-8 vote \d\.\d{3}"))
    expect(page.get_by_test_id("run-log")).to_contain_text("test")
    assert len(page.locator("#run-chart polyline.loss").get_attribute("points").split()) == 3
    page.screenshot(path=artifacts / "training-finished.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("apply-button").click()
    expect(page.get_by_test_id("apply-state")).to_have_text("The collection uses this model.", timeout=RUN_MS)
    expect(page.get_by_test_id("model-current")).to_contain_text("trained gap+csq model, 64 bits")
    expect(page.get_by_test_id("model-previous")).to_contain_text("zero training")
    info = client.get(C).json()
    assert info["hasher"]["type"] == "hash_model" and info["images"] == 24
    hits = client.get(f"{C}/images/1/similar", params={"k": 5}).json()["hits"]
    assert len(hits) == 5

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("restore-button").click()
    expect(page.get_by_test_id("model-current")).to_contain_text("zero training")
    expect(page.get_by_test_id("model-previous")).to_contain_text("trained gap+csq")
    assert client.get(C).json()["hasher"]["type"] == "pretrained+shallow"
    expect(page.get_by_test_id("model-fit")).to_be_visible()
