"""Helpers of the service tests that switch a collection's model (apply, restore) while searches run."""
from __future__ import annotations

import time

import httpx


def search_hits(response: httpx.Response) -> list[tuple[int, int, float | None]]:
    """(id, Hamming distance, float distance to 4 places) of a search answer's hits; the answer must be 200."""
    assert response.status_code == 200, response.text
    return [(h["id"], h["hamming"], None if h["distance"] is None else round(h["distance"], 4))
            for h in response.json()["hits"]]


def wait_for_restore(client: httpx.Client, collection: str, timeout: float = 300) -> dict:
    """Poll ``{collection}/model/restore`` until it is no longer restoring (or ``timeout`` s); its last state."""
    deadline = time.monotonic() + timeout
    while (status := client.get(f"{collection}/model/restore").json())["state"] == "restoring" \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


def search_pair(client: httpx.Client, collection: str, photo: bytes, k: int = 5) -> tuple[list, list]:
    """The two searches a model switch must keep answering: by a library image (id 3) and by an upload."""
    by_id = client.get(f"{collection}/images/3/similar", params={"k": k})
    by_upload = client.post(f"{collection}/search", params={"k": k}, files={"file": ("query.jpg", photo)})
    return search_hits(by_id), search_hits(by_upload)
