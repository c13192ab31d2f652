"""Restoring a served collection's previous model without stopping it (a real uvicorn server, the Caltech101
slice): as an apply, the images added since the switch are encoded in the background while searches keep
answering from the current model, changes answer 409 saying why, and the atomic swap brings the previous model
back; a server stopped during it keeps the model restorable and the next restore continues it."""
from __future__ import annotations

import shutil
from functools import partial
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from model_switch import search_pair, wait_for_restore

from hashseek.search.collection import Collection
from hashseek.search.feature_hasher import FeatureHasher
from hashseek.search.staged_reindex import StagedReindex
from hashseek.service import create_app

KEY = "restore-key"
HEADERS = {"X-API-Key": KEY}
C = "/api/collections/caltech"
ADDED = 20      # photos added after the switch: the ones a restore encodes
BATCH = 5       # the served collection's batch size: the restore's progress moves in steps of 5


@pytest.fixture(autouse=True)
def paced_batches(monkeypatch):
    """Each restored batch takes at least a second: on a quiet machine the 20 photos were encoded before the
    first search could be sent (CI), and nothing here would have been seen during a restore."""
    encode = StagedReindex.encode

    def paced(self, progress=True, on_batch=None):
        def after(ids):
            time.sleep(1.0)
            if on_batch is not None:
                on_batch(ids)
        return encode(self, progress, after)

    monkeypatch.setattr(StagedReindex, "encode", paced)


@pytest.fixture(scope="module")
def switched(tmp_path_factory, collection_copy, unseen_photos):
    """The slice collection (64-bit ITQ) switched to 32-bit ITQ codes, then 20 photos added: a restore has the
    64-bit model back, encoding those 20 with it. Also the 64-bit codes of the first 50 images."""
    path = collection_copy()
    with Collection.open(path) as collection:
        codes = {record.id: record.code for record in collection.list(limit=100)}
        collection.reindex(FeatureHasher("efficientnet_lite0", 32), progress=False)
        collection.add_images([data for _, data in unseen_photos[:ADDED]], [i for i, _ in unseen_photos[:ADDED]])
        assert collection.n_bits == 32 and len(collection) == 50 + ADDED
    return path, codes


@pytest.fixture
def served(switched, tmp_path):
    target = tmp_path / "caltech"
    shutil.copytree(switched[0], target)
    return target


def test_searches_answer_from_the_current_model_until_the_restore_swaps(served, switched, serve_app, photo):
    collection = Collection.open(served, batch_size=BATCH)
    with serve_app(create_app({"caltech": collection}, KEY)) as url, httpx.Client(base_url=url, timeout=120) as client:
        searches = partial(search_pair, client, C, photo[1])

        assert client.get(f"{C}/model/restore").json() is None
        current = searches()
        assert client.get(C).json()["n_bits"] == 32 and max(h for _, h, _ in current[0] + current[1]) <= 32
        before = []
        for _ in range(3):
            start = time.perf_counter()
            assert searches() == current
            before.append(time.perf_counter() - start)
        started = client.post(f"{C}/model/restore", headers=HEADERS)
        assert started.status_code == 202, started.text
        assert started.json() == {"state": "restoring", "total": 50 + ADDED, "encoded": 50, "error": None}
        for refused in (client.post(f"{C}/images/relabel", json={"ids": [1], "label": "x"}, headers=HEADERS),
                        client.post(f"{C}/images/remove", json={"ids": [2]}, headers=HEADERS),
                        client.post(f"{C}/refit", headers=HEADERS),
                        client.post(f"{C}/model/restore", headers=HEADERS),
                        client.post(f"{C}/training", json={"recipe": "fast"}, headers=HEADERS)):
            assert refused.status_code == 409 and "switching back to its previous model" in refused.json()["detail"]
        detail = client.post(f"{C}/images/remove", json={"ids": [2]}, headers=HEADERS).json()["detail"]
        assert detail == ("collection 'caltech' is switching back to its previous model: it cannot change until the "
                          "switch (searches and reads keep answering meanwhile)")
        answers, seconds, encoded = [], [], []
        while True:   # every answer given while the state still read "restoring" is the current model's
            start = time.perf_counter()
            answered = searches()
            seconds.append(time.perf_counter() - start)
            bits = client.get(C).json()["n_bits"]
            status = client.get(f"{C}/model/restore").json()   # set on the collection's thread at the swap
            answers.append(answered)
            if status["state"] != "restoring":
                break
            assert answered == current and bits == 32
            encoded.append(status["encoded"])
        assert len(answers) >= 2, "no search was answered while the previous model was being restored"
        assert status == {"state": "restored", "total": 50 + ADDED, "encoded": 50 + ADDED, "error": None}
        print(f"{len(answers) - 1} search pairs answered during the restore (encoded seen: {encoded}); seconds per "
              f"pair: max {max(seconds):.3f}, median {sorted(seconds)[len(seconds) // 2]:.3f} "
              f"(before it: median {sorted(before)[1]:.3f})")

        info = client.get(C).json()
        assert info["n_bits"] == 64 and info["images"] == 50 + ADDED
        assert info["hasher"]["hasher"]["n_bits"] == 64 and info["previous_hasher"]["hasher"]["n_bits"] == 32
        restored = searches()
        assert restored[0] != current[0] and restored[1] != current[1]   # the same neighbours, other Hamming distances
        # each answer is one model's, in order: the current model's, then (from the swap on) the restored one's
        models = [("current" if got == now else "restored" if got == then else f"neither: {got}")
                  for pair in answers + [restored] for got, now, then in zip(pair, current, restored)]
        assert models == ["current"] * models.count("current") + ["restored"] * models.count("restored")
        assert client.post(f"{C}/images/relabel", json={"ids": [1], "label": "x"}, headers=HEADERS).status_code == 200
    collection.close()

    with Collection.open(served) as reopened:   # the 64-bit codes are back, the files hold what the server swapped in
        assert {r.id: r.code for r in reopened.list(limit=100) if r.id in switched[1]} == switched[1]
        assert [(h.id, h.hamming) for h in reopened.search(3, k=5).hits] == [(i, h) for i, h, _ in restored[0]]
        assert reopened.check().ok


def test_a_server_stopped_during_a_restore_keeps_it_restorable_and_restoring_again_continues(served, serve_app):
    with serve_app(create_app(served, KEY)) as url:
        started = httpx.post(f"{url}{C}/model/restore", headers=HEADERS, timeout=120)
        assert started.status_code == 202, started.text
    with Collection.open(served) as collection:   # shut down after the batch under way: nothing swapped
        assert collection.n_bits == 32 and collection.info()["previous_hasher"]["hasher"]["n_bits"] == 64
    with serve_app(create_app(served, KEY)) as url, httpx.Client(base_url=url, timeout=120) as client:
        again = client.post(f"{C}/model/restore", headers=HEADERS).json()
        assert again["encoded"] == again["total"] == 50 + ADDED   # the staged batch is kept: nothing to encode
        assert wait_for_restore(client, C)["state"] == "restored" and client.get(C).json()["n_bits"] == 64


def test_the_page_restores_in_the_background(served, serve_app, page: Page):
    """Restore previous model… shows the progress, then the model brought back."""
    with serve_app(create_app(served, KEY)) as url:
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("collection-info")).to_contain_text("32-bit codes")
        expect(page.get_by_test_id("model-previous")).to_contain_text("ITQ, 64 bits")
        page.get_by_test_id("key-input").fill(KEY)
        page.get_by_test_id("key-button").click()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_test_id("restore-button").click()
        expect(page.get_by_test_id("restore-state")).to_contain_text(f"Switching back… 50 of {50 + ADDED} images",
                                                                     timeout=30_000)
        expect(page.get_by_test_id("restore-button")).to_be_hidden()
        expect(page.get_by_test_id("notice")).to_contain_text("Restored: zero training: pretrained "
                                                              "efficientnet_lite0 + ITQ, 64 bits", timeout=120_000)
        expect(page.get_by_test_id("collection-info")).to_contain_text("64-bit codes")
        expect(page.get_by_test_id("model-previous")).to_contain_text("ITQ, 32 bits")
        expect(page.get_by_test_id("restore-state")).to_have_text("")
        expect(page.get_by_test_id("restore-button")).to_be_visible()
