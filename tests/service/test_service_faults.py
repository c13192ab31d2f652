"""Faults against a real ``hashseek serve`` process on 127.0.0.1 (issue #15 item 7): ``kill -9`` in the
middle of a burst of adds, and a short run of concurrent searching, adding and removing clients."""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from hashseek.search.collection import Collection

C = "/api/collections/caltech"


def _add(client: httpx.Client, name: str, data: bytes, label: str) -> httpx.Response:
    return client.post(f"{C}/images", files=[("files", (name, data, "image/jpeg"))], data={"label": label})


def test_kill_9_mid_burst_keeps_every_acknowledged_add(serve_cli, collection_copy, unseen_photos):
    path = collection_copy()
    acknowledged: dict[int, str] = {}          # id -> name, for every add answered 201
    lock, killed = threading.Lock(), threading.Event()
    photos = unseen_photos[:40]
    with serve_cli(path) as (process, url):
        def adder(share: list[tuple[str, bytes]]) -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for image_id, data in share:
                    try:
                        response = _add(client, image_id.replace("/", "-"), data, image_id.split("/")[0])
                    except httpx.TransportError:
                        assert killed.is_set(), "the connection failed before the kill"
                        return
                    assert response.status_code == 201, response.text
                    with lock:
                        acknowledged.update(zip(response.json()["ids"], [image_id.replace("/", "-")]))
                        if len(acknowledged) >= 8 and not killed.is_set():
                            killed.set()
                            os.kill(process.pid, signal.SIGKILL)   # adds of the other clients are in flight

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(adder, [photos[n::3] for n in range(3)]))
        process.wait(30)
        assert process.returncode == -signal.SIGKILL, "the burst finished before the server was killed"
    assert len(acknowledged) >= 8
    with Collection.open(path) as collection:
        for image_id, name in acknowledged.items():
            record = collection.get(image_id)
            assert record.in_library and record.name == name
            assert collection.search(image_id, k=1, include_self=True).hits[0].id == image_id
        assert len(collection) >= 50 + len(acknowledged)
        report = collection.check()
        assert report.ok, str(report)


def test_concurrent_search_add_and_remove_keep_their_promises(serve_cli, collection_copy, unseen_photos, photo):
    """4 searching clients, 1 adding, 1 removing, for about 10 s: no 5xx, no search returns an image whose
    removal was acknowledged before it was sent, every acknowledged add present, every acknowledged remove
    gone (through the API and in the collection reopened afterwards)."""
    path = collection_copy()
    statuses: list[int] = []
    added: dict[int, str] = {}
    removed: list[int] = []
    stop = threading.Event()
    with serve_cli(path) as (process, url):
        def searcher(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=url, timeout=120) as client:
                while not stop.is_set():
                    kind = rng.choice(["similar", "random", "upload"])
                    gone = set(removed)            # removes acknowledged before this search was sent
                    if kind == "similar":
                        response = client.get(f"{C}/images/{rng.randrange(1, 51)}/similar", params={"k": 10})
                    elif kind == "random":
                        response = client.get(f"{C}/search/random", params={"k": 10, "seed": rng.randrange(10**6)})
                    else:
                        response = client.post(f"{C}/search", files={"file": ("q.jpg", photo[1])}, params={"k": 10})
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        assert not gone & {hit["id"] for hit in response.json()["hits"]}

        def adder() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for image_id, data in unseen_photos:
                    if stop.is_set():
                        return
                    response = _add(client, image_id.replace("/", "-"), data, image_id.split("/")[0])
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        added.update(dict.fromkeys(response.json()["ids"], image_id.replace("/", "-")))

        def remover() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                for image_id in range(2, 51, 2):
                    if stop.is_set():
                        return
                    response = client.delete(f"{C}/images/{image_id}")
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        removed.append(image_id)
                    time.sleep(0.2)

        failures: list[BaseException] = []

        def client(work, *args) -> None:   # an assertion in a thread must fail the test
            try:
                work(*args)
            except BaseException as err:
                failures.append(err)
                stop.set()

        threads = [threading.Thread(target=client, args=(searcher, n)) for n in range(4)]
        threads += [threading.Thread(target=client, args=(adder,)), threading.Thread(target=client, args=(remover,))]
        for thread in threads:
            thread.start()
        time.sleep(10)
        stop.set()
        for thread in threads:
            thread.join(120)
        print(f"{len(statuses)} requests, {len(added)} adds, {len(removed)} removes")
        assert not failures, failures
        assert statuses and not [s for s in statuses if s >= 500], sorted(set(statuses))
        assert added and removed
        with httpx.Client(base_url=url, timeout=60) as client:
            for image_id, name in added.items():
                assert client.get(f"{C}/images/{image_id}").json()["name"] == name
            for image_id in removed:
                assert client.get(f"{C}/images/{image_id}").status_code == 404
            assert client.get("/health").json()["collections"]["caltech"] == 50 + len(added) - len(removed)
    with Collection.open(path) as collection:
        assert len(collection) == 50 + len(added) - len(removed)
        assert all(collection.get(i).in_library for i in added)
        assert not any(collection.get(i).in_library for i in removed)
        assert collection.check().ok
