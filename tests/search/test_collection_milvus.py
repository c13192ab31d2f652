"""Collections whose codes live in Milvus (real milvus-lite files under tmp_path) behave like FAISS ones.

The same 50 Caltech101 images go into a ``flat`` collection and, with the same fitted hasher
(so the same codes), into a ``milvus`` one: every library query must give the same ids and
Hamming distances. milvus-lite opens a file from one process at a time, so each collection is
closed (which frees its file) before another process opens it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.milvus

from hashseek.cli import main
from hashseek.index import load_index
from hashseek.search.collection import Collection


def _copy(source, target, milvus_name: str):
    """A copy of a collection directory pointed at its own Milvus collection (the copy rebuilds it)."""
    shutil.copytree(source, target)
    config = json.loads((target / "collection.json").read_text())
    config["index_options"]["collection_name"] = milvus_name
    (target / "collection.json").write_text(json.dumps(config))
    return target


def _results(collection: Collection, ids, **options) -> dict:
    return {i: [(hit.id, hit.hamming) for hit in collection.search(i, 10, **options).hits] for i in ids}


@pytest.fixture(scope="module")
def pair(tmp_path_factory, caltech_slice):
    """(flat collection path, milvus collection path, milvus-lite uri), both closed, same images and codes."""
    dataset, ids = caltech_slice
    root = tmp_path_factory.mktemp("milvus_collections")
    with Collection.create(root / "flat", n_bits=32, batch_size=25) as flat:
        flat.add_dataset(dataset, ids, progress=False)
        hasher = flat.image_hasher
    uri = root / "codes.db"
    with Collection.create(root / "7 photos!", image_hasher=hasher, index="milvus", batch_size=25,
                           index_options={"uri": str(uri)}) as milvus:
        milvus.add_dataset(dataset, ids, progress=False)
    return root / "flat", root / "7 photos!", uri


def test_same_results_as_flat(pair, caltech_slice, monkeypatch):
    flat_path, milvus_path, uri = pair
    config = json.loads((milvus_path / "collection.json").read_text())
    options = config["index_options"]
    assert config["index"] == "milvus" and options["uri"] == str(uri.resolve())
    assert options["collection_name"].startswith("c_7_photos__") and "token" not in options
    with Collection.open(flat_path) as flat, Collection.open(milvus_path) as milvus:
        assert type(milvus._searchable_index()).__name__ == "MilvusIndex"
        assert milvus.check().ok and not milvus.check().notes             # loaded from the saved state, no rebuild
        ids = [r.id for r in flat.list(limit=100)]
        assert len(ids) == 50 and [r.code for r in flat.list(limit=100)] == [r.code for r in milvus.list(limit=100)]
        for options in ({}, {"rerank": "chi2", "candidates": 15}, {"radius": 10}):
            expected = _results(flat, ids, **options)
            assert _results(milvus, ids, **options) == expected, options
            assert any(len({d for _, d in hits}) < len(hits) for hits in expected.values())  # ties were tested


def test_remove_then_reopen_in_a_new_process(pair, tmp_path):
    flat_path, milvus_path, uri = pair
    _copy(milvus_path, tmp_path / "C", "reopen_test")
    with Collection.open(tmp_path / "C") as collection:
        assert collection._searchable_index().collection_name == "reopen_test"   # rebuilt there from SQLite
        collection.remove([7])
        before = _results(collection, [1, 12, 33])
    script = textwrap.dedent("""
        import json, sys
        from hashseek.search.collection import Collection
        with Collection.open(sys.argv[1]) as c:
            index = c._searchable_index()
            report = c.check()
            print(json.dumps({"n": len(c), "index": len(index), "kind": type(index).__name__,
                              "ok": report.ok, "notes": report.notes, "problems": report.problems,
                              "results": {i: [(h.id, h.hamming) for h in c.search(i, 10).hits] for i in (1, 12, 33)}}))
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "C")], capture_output=True, text=True,
                         env=os.environ.copy(), timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["kind"] == "MilvusIndex" and seen["n"] == seen["index"] == 49
    assert seen["ok"] and not seen["notes"], seen
    assert {int(k): [tuple(h) for h in v] for k, v in seen["results"].items()} == before
    assert all(7 not in [h[0] for h in hits] for hits in before.values())


def test_rebuilt_from_sqlite_when_milvus_is_behind(pair, tmp_path):
    """A crash after the SQLite commit but before Milvus saw the change: the saved state no longer
    matches, so the Milvus collection is rebuilt from the SQLite codes."""
    flat_path, milvus_path, uri = pair
    _copy(milvus_path, tmp_path / "C", "behind_test")
    with Collection.open(tmp_path / "C") as collection:
        assert len(collection._searchable_index()) == 50
    assert json.loads((tmp_path / "C" / "index.state.json").read_text())["count"] == 50
    index = load_index(tmp_path / "C" / "index.faiss")
    index.remove(index.ids()[:5])                     # Milvus loses 5 codes behind the collection's back
    index.close()
    with pytest.warns(RuntimeWarning, match="now holds 45"), Collection.open(tmp_path / "C") as collection:
        # the state file matched, but the index did not: rebuilt from SQLite
        assert len(collection._searchable_index()) == 50 and collection.check().ok


def test_options_checked_without_a_server(tmp_path):
    with pytest.raises(ValueError, match="uri"):
        Collection.create(tmp_path / "a", n_bits=16, index="milvus")
    with pytest.raises(ValueError, match="never stored"):
        Collection.create(tmp_path / "b", n_bits=16, index="milvus", index_options={"uri": "x.db", "token": "t"})
    with pytest.raises(ValueError, match="collection_name"):
        Collection.create(tmp_path / "c", n_bits=16, index="milvus",
                          index_options={"uri": "http://127.0.0.1:1", "collection_name": "9 bad"})
    assert not any((tmp_path / d).exists() for d in "abc") and not list(tmp_path.rglob("*.db"))


def test_cli_index_and_search_on_milvus(tmp_path, caltech_slice, capsys, monkeypatch):
    dataset, ids = caltech_slice
    folder = tmp_path / "photos"
    for image_id in ids[0:5] + ids[10:15]:
        (folder / image_id.split("/")[0]).mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(dataset.read_bytes(image_id))
    monkeypatch.chdir(tmp_path)
    c = str(tmp_path / "C")
    assert main(["index", str(folder), "--collection", c, "--backend", "milvus"]) != 0
    assert "needs --milvus-uri" in capsys.readouterr().err and not (tmp_path / "C").exists()
    assert main(["index", str(folder), "--collection", c, "--bits", "32", "--backend", "milvus",
                 "--milvus-uri", "m.db", "--milvus-collection", "cli_photos", "-q"]) == 0
    assert "added 10" in capsys.readouterr().out
    assert (tmp_path / "m.db").exists()
    assert main(["info", c, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["index"] == "milvus" and info["index_options"] == {"uri": str(tmp_path / "m.db"),
                                                                  "collection_name": "cli_photos"}
    assert main(["search", c, "--id", "3", "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 4 and 3 not in [h["id"] for h in hits]
    assert main(["check", c]) == 0



def test_server_outage_then_refit_switch(pair, milvus_server, tmp_path):
    """On a real Milvus server: rows committed while it is down are sent (only they) once it is back,
    searches in between fail with UnavailableError; a refit fills a new server collection, switches to
    it (recorded in SQLite) and drops the old one."""
    from hashseek.core.errors import UnavailableError

    flat_path, _, _ = pair
    with Collection.open(flat_path) as flat:
        records = flat.list(limit=100)
        features, hasher = flat.features_of(np.array([r.id for r in records])), flat.image_hasher

    def rows(part):
        return dict(sources=[f"s{i}" for i in part], names=[records[i].name for i in part],
                    labels=[records[i].label for i in part])

    with Collection.create(tmp_path / "C", image_hasher=hasher, index="milvus",
                           index_options={"uri": milvus_server.uri, "collection_name": "server_c"}) as c:
        c.add_features(features[:25], None, **rows(range(25)))
        first = c._searchable_index()
        assert first.collection_name == "server_c" and len(first) == 25
        milvus_server.kill()
        late = c.add_features(features[25:40], None, **rows(range(25, 40)))    # committed in SQLite
        with pytest.raises(UnavailableError, match="does not answer"):
            c.search(late[0], 5)
        milvus_server.start()
        found = {hit.id for hit in c.search(late[0], 39).hits}                   # back by itself
        assert set(late[1:]) <= found and len(c._searchable_index()) == 40 and c.check().ok
        live = c._searchable_index()
        c.refit()                                                                 # fit on 40 rows, not the 50
        after = c._searchable_index()
        assert after.collection_name.startswith("server_c_") and after.collection_name != live.collection_name
        assert not after.client.has_collection(live.collection_name)              # the old one is dropped
        assert len(after) == 40 and c.check().ok
        expected = _results(c, late[:3])
    with Collection.open(tmp_path / "C") as again:                               # the switch is remembered
        assert again._searchable_index().collection_name == after.collection_name
        assert _results(again, late[:3]) == expected
