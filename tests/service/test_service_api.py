"""The REST API against a real uvicorn server on 127.0.0.1, with real Caltech101 photos and a bad-input corpus."""
from __future__ import annotations

import http.client
import io
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from hashseek.cli import main
from hashseek.core.errors import InvalidInputError
from hashseek.search.collection import Collection
from hashseek.service import create_app
from hashseek.service.media import THUMBNAIL_SIZE

C = "/api/collections/caltech"


def _healthy(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "collections": {"caltech": 50}}


def test_collections_info_and_paged_library(client, caltech_slice):
    _healthy(client)
    [summary] = client.get("/api/collections").json()
    assert summary == {"name": "caltech", "images": 50, "n_bits": 64, "writable": True, "needs_api_key": False}
    info = client.get(C).json()
    assert info["classes"] == {c: 10 for c in ("Faces_easy", "Motorbikes", "airplanes", "sunflower", "watch")}
    assert "path" not in info and info["hasher"]["fitted"]

    first = client.get(f"{C}/images", params={"offset": 0, "limit": 20}).json()
    last = client.get(f"{C}/images", params={"offset": 40, "limit": 20}).json()
    assert [len(first["items"]), first["has_more"], len(last["items"]), last["has_more"]] == [20, True, 10, False]
    assert [item["name"] for item in first["items"]] == caltech_slice[1][:20]   # insertion order
    watches = client.get(f"{C}/images", params={"label": "watch", "limit": 500}).json()["items"]
    assert len(watches) == 10 and {item["label"] for item in watches} == {"watch"}
    assert client.get(f"{C}/images", params={"limit": 501}).status_code == 422   # pages are bounded

    item = first["items"][3]
    assert client.get(f"{C}/images/{item['id']}").json() == item
    original = client.get(item["image_url"])
    assert original.content == caltech_slice[0].read_bytes(item["name"])
    assert original.headers["content-type"] == "image/jpeg"


def test_thumbnails_are_bounded_jpegs_cached_in_the_collection(served_path, client):
    url = f"{C}/images/7/thumbnail"
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(response.content))
    assert thumb.format == "JPEG" and max(thumb.size) == THUMBNAIL_SIZE
    assert client.get(url).content == response.content              # the second one comes from the cache
    assert (served_path / "thumbnails" / "7.jpg").read_bytes() == response.content


def test_search_by_library_id(client):
    plain = client.get(f"{C}/images/12/similar", params={"k": 9, "rerank": "none"}).json()
    assert plain["query"]["id"] == 12 and plain["mode"] == "knn" and plain["took_ms"] > 0
    hits = plain["hits"]
    assert len(hits) == 9 and 12 not in [h["id"] for h in hits]            # the query leaves itself out
    assert [h["hamming"] for h in hits] == sorted(h["hamming"] for h in hits)
    assert hits[0]["thumbnail_url"] == f"{C}/images/{hits[0]['id']}/thumbnail"
    assert sum(h["label"] == "Faces_easy" for h in hits) >= 7               # id 12 is a face

    reranked = client.get(f"{C}/images/12/similar", params={"k": 9, "rerank": "chi2", "candidates": 30}).json()
    distances = [h["distance"] for h in reranked["hits"]]
    assert reranked["mode"] == "rerank:chi2" and reranked["n_candidates"] >= 30 and distances == sorted(distances)
    assert set(reranked["timings_ms"]) >= {"coarse", "rerank", "total"}

    ball = client.get(f"{C}/images/12/similar", params={"k": 50, "radius": 20, "rerank": "none"}).json()
    assert ball["mode"] == "radius" and all(h["hamming"] <= 20 for h in ball["hits"])


def test_parameters_not_given_take_the_search_defaults(client):
    defaults = client.get("/api/search-defaults").json()
    assert {"k", "vote_k", "rerank", "candidates"} <= set(defaults)
    found = client.get(f"{C}/images/12/similar").json()
    assert len(found["hits"]) == min(defaults["k"], 49)
    assert found["mode"] == (f"rerank:{defaults['rerank']}" if defaults["rerank"] else "knn")
    if defaults["candidates"] is not None:
        assert found["n_candidates"] >= min(defaults["candidates"], 49)


def test_random_search_is_reproducible(client):
    drawn = client.get(f"{C}/search/random", params={"k": 5}).json()
    seed = drawn["query"]["random"]
    again = client.get(f"{C}/search/random", params={"k": 5, "seed": seed}).json()
    assert again["query"] == drawn["query"] and [h["id"] for h in again["hits"]] == [h["id"] for h in drawn["hits"]]
    assert drawn["query"]["id"] not in [h["id"] for h in drawn["hits"]]


def test_search_and_classify_an_upload(client, photo):
    name, data = photo
    files = {"file": ("bike.jpg", data, "image/jpeg")}
    found = client.post(f"{C}/search", files=files, params={"k": 10, "rerank": "chi2"}).json()
    assert found["query"] == {"upload": "bike.jpg", "self_match": []} and found["hits"][0]["label"] == "Motorbikes"
    assert found["timings_ms"]["decode"] > 0 and found["took_ms"] >= found["timings_ms"]["encode"]
    voted = client.post(f"{C}/classify", files=files, params={"k": 8}).json()
    assert voted["label"] == "Motorbikes" and len(voted["neighbours"]["hits"]) == 8
    assert list(voted["distribution"])[0] == "Motorbikes" and sum(voted["distribution"].values()) == pytest.approx(1)
    assert voted["method"] == "vote" and voted["vote"] == voted["distribution"] and voted["classifier"] is None
    no_classifier = client.post(f"{C}/classify", files=files, params={"method": "classifier"})
    assert no_classifier.status_code == 400 and "no classifier" in no_classifier.json()["detail"]
    assert client.post(f"{C}/classify", files=files, params={"method": "oracle"}).status_code == 422


def test_an_upload_of_a_library_image_is_its_self_match(client, caltech_slice):
    dataset, ids = caltech_slice
    first = client.get(f"{C}/images", params={"limit": 1}).json()["items"][0]
    files = {"file": ("copy.jpg", dataset.read_bytes(ids[0]))}
    left_out = client.post(f"{C}/search", files=files, params={"k": 5}).json()
    assert left_out["query"]["self_match"] == [first["id"]] and first["id"] not in [h["id"] for h in left_out["hits"]]
    kept = client.post(f"{C}/search", files=files, params={"k": 5, "include_self": "true"}).json()
    assert kept["hits"][0]["id"] == first["id"] and kept["hits"][0]["hamming"] == 0


def test_odd_images_are_searched(client, odd_images):
    for name, data in odd_images.items():
        response = client.post(f"{C}/search", files={"file": (name, data)}, params={"k": 3})
        assert response.status_code == 200, (name, response.text)
        assert response.json()["hits"][0]["label"] == "Motorbikes", name


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, before ours refuses
def test_bad_uploads_get_a_clear_4xx_and_the_server_stays_up(client, broken_images):
    for name, data in broken_images.items():
        for route in ("search", "classify"):
            response = client.post(f"{C}/{route}", files={"file": (name, data)})
            assert response.status_code == 422, (name, response.status_code, response.text)
            detail = response.json()["detail"]
            assert name in detail and "cannot load image" in detail, detail
            _healthy(client)
    assert "max_pixels" in client.post(f"{C}/search", files={"file": ("b.png", broken_images["bomb.png"])}).text

    assert client.post(f"{C}/search").status_code == 422                   # no file at all
    _healthy(client)


def test_bad_parameters_and_unknown_things(client):
    for url, params, status in [
        (f"{C}/images/1/similar", {"k": 0}, 422),
        (f"{C}/images/1/similar", {"rerank": "hamming"}, 422),
        (f"{C}/images/1/similar", {"radius": -1}, 422),
        (f"{C}/images/99999/similar", {}, 404),
        (f"{C}/images/99999/thumbnail", {}, 404),
        (f"{C}/images/{2**63}", {}, 422),                                 # beyond SQLite's integers
        (f"{C}/images/-1/file", {}, 422),
        ("/api/collections/nope/images", {}, 404),
    ]:
        response = client.get(url, params=params)
        assert response.status_code == status, (url, params, response.text)
        assert "detail" in response.json()
    _healthy(client)


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/app.py",
    "/static/..%2f..%2fapp.py",
    "/static//etc/passwd",
    f"{C}/images/../../../../etc/passwd/file",
    f"{C}/images/%2Fetc%2Fpasswd/file",
    f"{C}/images/..%2F..%2Fmeta.sqlite/file",
    f"{C}/images/1%2F..%2F..%2Fmeta.sqlite/thumbnail",
    "/api/collections/..%2F..%2Fetc/images/1/file",
    "/api/collections/%2Fetc/images/1/file",
])
def test_no_request_path_reaches_a_file(server, path):
    """Sent byte for byte (http.client does not normalise ``..``)."""
    connection = http.client.HTTPConnection(urlsplit(server).netloc, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status in (404, 422), (path, response.status)
    assert b"root:" not in body and b"SQLite format" not in body and b"import" not in body


def test_writes_on_loopback_add_search_and_remove(serve_app, collection_copy, photo, broken_images):
    """Served from a Collection the caller opened (and keeps open after the server stops)."""
    name, data = photo
    collection = Collection.open(collection_copy())
    with serve_app(create_app({"caltech": collection})) as url, httpx.Client(base_url=url, timeout=60) as client:
        added = client.post(f"{C}/images", files=[("files", ("new-bike.jpg", data, "image/jpeg"))],
                            data={"label": "Motorbikes"})
        assert added.status_code == 201, added.text
        body = added.json()
        assert body["images"] == 51 and len(body["ids"]) == 1 and body["failed"] == []
        new_id = body["ids"][0]
        assert client.get(f"{C}/images/{new_id}").json()["label"] == "Motorbikes"
        assert client.get(f"{C}/images/{new_id}/file").content == data              # the stored copy
        found = client.post(f"{C}/search", files={"file": ("q.jpg", data)}, params={"k": 1, "include_self": 1}).json()
        assert found["query"]["self_match"] == [new_id]
        assert found["hits"][0]["id"] == new_id and found["hits"][0]["hamming"] == 0
        assert client.get(f"{C}/images/{new_id}/thumbnail").status_code == 200

        again = client.post(f"{C}/images", files=[("files", ("same.jpg", data))]).json()
        assert again["skipped"] == 1 and again["ids"] == []
        mixed = client.post(f"{C}/images", files=[("files", ("ok.jpg", data)),
                                                  ("files", ("bad.jpg", broken_images["truncated.jpg"]))])
        assert mixed.status_code == 422 and "bad.jpg" in mixed.json()["detail"]

        # a page of another site may not write, nor reach the server under another name (DNS rebinding)
        assert client.delete(f"{C}/images/{new_id}", headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.get(f"{C}/images/{new_id}", headers={"Host": "evil.example"}).status_code == 400
        assert client.get(f"{C}/images/{new_id}", headers={"Origin": url}).status_code == 200

        removed = client.delete(f"{C}/images/{new_id}", headers={"Origin": url})
        assert removed.json() == {"removed": 1, "images": 50}
        for path in (f"{C}/images/{new_id}", f"{C}/images/{new_id}/thumbnail", f"{C}/images/{new_id}/file"):
            assert client.get(path).status_code == 404, path
        assert client.delete(f"{C}/images/{new_id}").status_code == 404
        assert new_id not in [h["id"] for h in client.get(f"{C}/images/1/similar", params={"k": 50}).json()["hits"]]
    assert len(collection) == 50 and collection.check().ok
    collection.close()


@pytest.mark.parametrize("api_key, host, key_sent, status", [
    ("s3cret", "127.0.0.1", None, 401),
    ("s3cret", "127.0.0.1", "wrong", 401),
    ("s3cret", "127.0.0.1", "s3cret", 200),
    (None, "0.0.0.0", None, 403),
    (None, "192.168.1.20", "anything", 403),
    ("s3cret", "0.0.0.0", "s3cret", 200),
])
def test_writes_need_the_key_off_loopback_or_when_set(serve_app, collection_copy, api_key, host, key_sent, status):
    """``host`` is the address the CLI says it binds; the test server itself listens on loopback."""
    headers = {} if key_sent is None else {"X-API-Key": key_sent}
    with serve_app(create_app(collection_copy(), api_key, host=host)) as url, httpx.Client(base_url=url) as client:
        response = client.delete(f"{C}/images/5", headers=headers)
        assert response.status_code == status, response.text
        assert client.get("/health").json()["collections"]["caltech"] == (49 if status == 200 else 50)
        assert client.get(f"{C}/images/5/similar").status_code == (404 if status == 200 else 200)  # reads are open


@pytest.mark.parametrize("api_key", ["", "   ", "\t"])
def test_an_empty_api_key_refuses_to_start(collection_copy, api_key):
    """An unset variable expanded to "" must not open writes to anyone sending an empty X-API-Key."""
    with pytest.raises(InvalidInputError, match="API key is empty"):
        create_app(collection_copy(), api_key, host="0.0.0.0")


def test_cli_api_key_sources_and_refusals(collection_copy, tmp_path, monkeypatch, capsys):
    path = collection_copy()
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    monkeypatch.setenv("HASHSEEK_API_KEY", "")
    for argv in (["--api-key-file", str(empty)], [], ["--api-key", " "]):
        assert main(["serve", str(path), "--host", "0.0.0.0", *argv]) == 2
        assert "API key is empty" in capsys.readouterr().err
    assert main(["serve", str(path), "--api-key", "a", "--api-key-file", str(empty)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["serve", str(path), "--api-key-file", str(tmp_path / "missing.key")]) == 2
    assert "cannot read the API key file" in capsys.readouterr().err


def test_cli_reads_the_key_from_a_file(serve_cli, collection_copy, tmp_path):
    key_file = tmp_path / "api.key"
    key_file.write_text("s3cret-from-a-file\n")      # the final newline is not part of the key
    with serve_cli(collection_copy(), "--api-key-file", str(key_file)) as (_, url), \
            httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/api/collections").json()[0]["needs_api_key"]
        assert client.delete(f"{C}/images/5", headers={"X-API-Key": "s3cret-from-a-fil"}).status_code == 401
        assert client.delete(f"{C}/images/5").status_code == 401
        assert client.delete(f"{C}/images/5", headers={"X-API-Key": "s3cret-from-a-file"}).json()["removed"] == 1


def test_openapi_docs_are_served_offline(client):
    page = client.get("/docs").text
    assert "swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/collections/{name}/images/{image_id}/similar", "/api/collections/{name}/classify",
            "/api/collections/{name}/search", "/api/collections/{name}/search/random"} <= set(paths)


def test_cli_serves_collections(serve_cli, collection_copy, tmp_path):
    """``hashseek serve`` in its own process, as a user starts it: it says where it serves what."""
    with serve_cli(collection_copy(), log=tmp_path / "serve.log") as (_, url):
        assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok", "collections": {"caltech": 50}}
    assert f"serving caltech at {url}/" in (tmp_path / "serve.log").read_text()


def test_cli_refuses_two_collections_of_one_name(collection_copy, tmp_path, capsys):
    other = tmp_path / "elsewhere" / "caltech"
    other.mkdir(parents=True)
    assert main(["serve", str(collection_copy()), str(other)]) == 2
    assert "repeat" in capsys.readouterr().err


def test_a_read_only_collection_is_served_read_only(serve_app, collection_copy):
    """A collection the server may not write (opened read-only, as on a read-only mount) answers searches,
    says it is not writable, and refuses writes with a JSON 403 instead of failing mid-write."""
    collection = Collection.open(collection_copy(), read_only=True)
    with serve_app(create_app({"caltech": collection})) as url, httpx.Client(base_url=url) as client:
        assert client.get("/api/collections").json()[0]["writable"] is False
        assert client.get(f"{C}/images/5/similar").status_code == 200
        response = client.delete(f"{C}/images/5")
        assert response.status_code == 403 and "read-only" in response.json()["detail"]
    collection.close()
