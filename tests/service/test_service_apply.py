"""Applying a trained model to a served collection without stopping it (a real uvicorn server, the Caltech101
slice, a gap+csq head trained here): searches keep answering from the old model while the library is re-encoded
beside them, changes answer 409 saying why, the swap brings the new model; and deleting training runs."""
from __future__ import annotations

import json
import shutil
from functools import partial
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from model_switch import search_pair, wait_for_restore

from hashseek.search.collection import Collection
from hashseek.service import create_app
from hashseek.train import TrainConfig, Trainer

KEY = "apply-key"
HEADERS = {"X-API-Key": KEY}
C = "/api/collections/caltech"
RUN = "20260101-120000-fast-0a1b"
FAILED_RUN = "20260101-110000-best-0c2d"
DONE = {"recipe": "fast", "settings": {}, "epochs": 2, "state": "done", "started_at": "2026-01-01T12:00:00+00:00",
        "finished_at": "2026-01-01T12:01:00+00:00", "error": None}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, caltech_slice):
    """A finished run's folder: a 16-bit gap+csq head trained for 2 epochs on frozen maps (seconds)."""
    dataset, ids = caltech_slice
    out = tmp_path_factory.mktemp("run") / RUN
    Trainer(TrainConfig(mode="frozen", epochs=2, head="gap", loss="csq", bits=16, batch_size=16),
            progress=False).fit(dataset, ids, out_dir=out)
    (out / "job.json").write_text(json.dumps(DONE))
    return out


@pytest.fixture
def served(collection_copy, trained_run):
    """The slice collection (64-bit zero-training codes) with the trained run and a failed one in training/."""
    path = collection_copy()
    shutil.copytree(trained_run, path / "training" / RUN)
    failed = path / "training" / FAILED_RUN
    failed.mkdir()
    (failed / "job.json").write_text(json.dumps({**DONE, "recipe": "best", "state": "failed", "error": "diverged"}))
    return path


def _restore(client: httpx.Client) -> dict:
    """Restore the previous model (in the background, as an apply) and wait for the swap; its last state."""
    assert client.post(f"{C}/model/restore", headers=HEADERS).status_code == 202
    return wait_for_restore(client, C)


def test_searches_answer_from_the_old_model_until_the_swap(served, serve_app, photo):
    with serve_app(create_app(served, KEY)) as url, httpx.Client(base_url=url, timeout=120) as client:
        searches = partial(search_pair, client, C, photo[1])

        old = searches()
        assert client.get(C).json()["n_bits"] == 64
        before = []
        for _ in range(3):
            start = time.perf_counter()
            assert searches() == old
            before.append(time.perf_counter() - start)
        started = client.post(f"{C}/training/{RUN}/apply", headers=HEADERS)
        assert started.status_code == 202, started.text
        assert started.json()["apply"] == {"state": "applying", "total": 50, "encoded": 0, "error": None}
        for refused in (client.post(f"{C}/images/relabel", json={"ids": [1], "label": "x"}, headers=HEADERS),
                        client.post(f"{C}/images/remove", json={"ids": [2]}, headers=HEADERS),
                        client.post(f"{C}/refit", headers=HEADERS),
                        client.post(f"{C}/training/{RUN}/apply", headers=HEADERS)):
            assert refused.status_code == 409, refused.text
        assert "re-encoded with a new model" in client.post(f"{C}/images/remove", json={"ids": [2]},
                                                            headers=HEADERS).json()["detail"]
        during, seconds = 0, []
        while True:   # search until the switch is over: every answer before it is the old model's
            start = time.perf_counter()
            answers = searches()
            seconds.append(time.perf_counter() - start)
            bits = client.get(C).json()["n_bits"]
            status = client.get(f"{C}/training/{RUN}").json()["apply"]   # set on the collection's thread at the swap
            if status["state"] != "applying":
                break
            assert answers == old and bits == 64
            during += 1
        assert during >= 1, "no search was answered while the library was being re-encoded"
        assert status == {"state": "applied", "total": 50, "encoded": 50, "error": None}
        print(f"{during} search pairs answered during the apply; seconds per pair: max {max(seconds):.3f}, "
              f"median {sorted(seconds)[len(seconds) // 2]:.3f} (before it: median {sorted(before)[1]:.3f})")

        info = client.get(C).json()
        assert info["hasher"]["type"] == "hash_model" and info["n_bits"] == 16 and info["images"] == 50
        new = searches()
        assert new != old and max(hamming for _, hamming, _ in new[0] + new[1]) <= 16
        assert client.post(f"{C}/images/relabel", json={"ids": [1], "label": "x"}, headers=HEADERS).status_code == 200

        # deleting runs: never the model in use nor the one a restore brings back
        assert client.delete(f"{C}/training/{FAILED_RUN}").status_code == 401
        applied = client.delete(f"{C}/training/{RUN}", headers=HEADERS)
        assert applied.status_code == 409 and "uses the model" in applied.json()["detail"]
        assert client.delete(f"{C}/training/{FAILED_RUN}", headers=HEADERS).status_code == 204
        assert [run["id"] for run in client.get(f"{C}/training").json()] == [RUN]
        assert not (served / "training" / FAILED_RUN).exists()
        assert client.delete(f"{C}/training/{FAILED_RUN}", headers=HEADERS).status_code == 404
        assert _restore(client) == {"state": "restored", "total": 50, "encoded": 50, "error": None}
        restorable = client.delete(f"{C}/training/{RUN}", headers=HEADERS)
        assert restorable.status_code == 409 and "restore" in restorable.json()["detail"]
        assert searches()[0] == old[0]
        assert _restore(client)["state"] == "restored"
        after = searches()

    with Collection.open(served) as collection:   # what the server swapped in is what the files hold
        hits = collection.search(3, k=5).hits
        assert [(h.id, h.hamming) for h in hits] == [(i, hamming) for i, hamming, _ in after[0]] and after == new


def test_the_page_deletes_runs(served, serve_app, page: Page):
    """Behind the key, the run panel's Delete run… removes the run shown and shows the next one."""
    with serve_app(create_app(served, KEY)) as url:
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("run-title")).to_contain_text(RUN)
        expect(page.get_by_test_id("delete-run-button")).to_be_hidden()   # no key, no writes
        page.get_by_test_id("key-input").fill(KEY)
        page.get_by_test_id("key-button").click()
        for run, following in ((RUN, FAILED_RUN), (FAILED_RUN, None)):
            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_test_id("delete-run-button").click()
            expect(page.get_by_test_id("notice")).to_have_text(f"Deleted training run {run}.")
            if following:
                expect(page.get_by_test_id("run-title")).to_contain_text(following)
        expect(page.get_by_test_id("run")).to_be_hidden()
        assert not any((served / "training").iterdir())


def test_a_server_stopped_during_the_apply_keeps_the_old_model_and_applying_again_continues(served, serve_app):
    with serve_app(create_app(served, KEY)) as url:
        started = httpx.post(f"{url}{C}/training/{RUN}/apply", headers=HEADERS, timeout=120)
        assert started.status_code == 202, started.text
    with Collection.open(served) as collection:   # shut down after its first batch of 32: nothing swapped
        assert collection.n_bits == 64 and collection.info()["previous_hasher"] is None
    with serve_app(create_app(served, KEY)) as url, httpx.Client(base_url=url, timeout=120) as client:
        again = client.post(f"{C}/training/{RUN}/apply", headers=HEADERS).json()["apply"]
        assert again["encoded"] == 32 and again["total"] == 50   # the staged batch is kept
        deadline = time.monotonic() + 300
        while client.get(f"{C}/training/{RUN}").json()["apply"]["state"] == "applying" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get(C).json()["n_bits"] == 16
