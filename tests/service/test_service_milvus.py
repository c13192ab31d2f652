"""The web service is unchanged on a Milvus collection: same answers as on the FAISS one, real uvicorn."""
import httpx
import pytest

from hashseek.search.collection import Collection
from hashseek.service.app import create_app

pytestmark = pytest.mark.milvus


def test_web_service_serves_a_milvus_collection(caltech_slice, tmp_path, serve_app):
    dataset, ids = caltech_slice
    with Collection.create(tmp_path / "flat", n_bits=32) as flat:
        flat.add_dataset(dataset, ids, progress=False)
        hasher = flat.image_hasher
    with Collection.create(tmp_path / "milvus", image_hasher=hasher, index="milvus",
                           index_options={"uri": str(tmp_path / "codes.db")}) as milvus:
        milvus.add_dataset(dataset, ids, progress=False)
    answers = {}
    for name in ("flat", "milvus"):
        with serve_app(create_app(tmp_path / name)) as url, httpx.Client(base_url=url, timeout=60) as client:
            collection = client.get("/api/collections").json()[0]["name"]
            similar = client.get(f"/api/collections/{collection}/images/3/similar",
                                 params={"k": 10, "rerank": "chi2"})
            assert similar.status_code == 200, similar.text
            answers[name] = [(hit["id"], hit["hamming"]) for hit in similar.json()["hits"]]
            assert client.get("/health").status_code == 200
    assert answers["milvus"] == answers["flat"] and len(answers["flat"]) == 10


def test_service_answers_503_while_the_milvus_server_is_down(caltech_slice, tmp_path, serve_app, milvus_server):
    """A real Milvus server killed with SIGKILL: searches answer 503 with the reason, then recover by
    themselves once it is back (same process, same collection, nothing reopened)."""
    dataset, ids = caltech_slice
    with Collection.create(tmp_path / "C", n_bits=32, index="milvus",
                           index_options={"uri": milvus_server.uri, "collection_name": "served"}) as collection:
        collection.add_dataset(dataset, ids[:20], progress=False)
    with serve_app(create_app(tmp_path / "C")) as url, httpx.Client(base_url=url, timeout=60) as client:
        name = client.get("/api/collections").json()[0]["name"]
        similar = f"/api/collections/{name}/images/3/similar"
        before = client.get(similar, params={"k": 5})
        assert before.status_code == 200, before.text
        milvus_server.kill()
        down = client.get(similar, params={"k": 5})
        assert down.status_code == 503 and "does not answer" in down.json()["detail"], down.text
        assert client.get("/health").status_code == 200          # the service itself stays up
        milvus_server.start()
        after = client.get(similar, params={"k": 5})
        assert after.status_code == 200, after.text
        assert after.json()["hits"] == before.json()["hits"]
