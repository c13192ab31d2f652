"""POST /api/collections/{name}/refit on a real server with an API key: refused without the key, a refit
with it (the info then says so), a 409 where there is nothing to fit (a trained model's refusal is tested
in tests/search/test_refit.py). The collection: shipped test images, codes from a fit on half of them."""
from __future__ import annotations

import httpx
import pytest

from hashseek.search.collection import Collection
from hashseek.search.refit_policy import RefitPolicy
from hashseek.service import create_app

KEY = "refit-key"


@pytest.fixture(scope="module")
def stale(image_set, tmp_path_factory):
    dataset, ids = image_set
    path = tmp_path_factory.mktemp("refit") / "shapes"
    with Collection.create(path, refit_policy=RefitPolicy(min_images=2, growth=1000.0)) as collection:
        collection.add_dataset(dataset, ids[:12], progress=False)
        collection.add_dataset(dataset, ids[12:24], progress=False)
    return path


def test_refit_endpoint(stale, image_set, tmp_path, serve_app):
    dataset, ids = image_set
    with Collection.create(tmp_path / "one") as one:
        one.add_dataset(dataset, ids[:1], progress=False)
    served = {"shapes": stale, "one": tmp_path / "one"}
    with serve_app(create_app(served, KEY)) as url, httpx.Client(base_url=url, timeout=120) as client:
        info = client.get("/api/collections/shapes").json()
        assert info["fit"]["images"] == 12 and info["fit"]["next_refit_at"] == 12000
        refused = client.post("/api/collections/shapes/refit")
        assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
        assert client.post("/api/collections/shapes/refit", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/api/collections/shapes").json()["fit"]["images"] == 12   # nothing happened

        done = client.post("/api/collections/shapes/refit", headers={"X-API-Key": KEY})
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["images"], body["sampled"], body["next_refit_at"]) == (24, 24, 24000)
        assert body["fit_digest"] == client.get("/api/collections/shapes").json()["hasher"]["fit_digest"]
        assert client.get("/api/collections/shapes").json()["fit"]["images"] == 24
        assert client.post("/api/collections/nope/refit", headers={"X-API-Key": KEY}).status_code == 404
        too_few = client.post("/api/collections/one/refit", headers={"X-API-Key": KEY})
        assert too_few.status_code == 409 and "at least 2 images" in too_few.json()["detail"]
