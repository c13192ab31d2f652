"""The Milvus backend against a real embedded Milvus (milvus-lite 2.5.1 files under tmp_path).

Exactness is checked against the FAISS ``flat`` index: same ids, same distances, ties included.
milvus-lite opens a file from one process at a time, so the reopen test uses its own file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytestmark = pytest.mark.milvus

from hashseek.index import create_index, load_index, pack_bits


@pytest.fixture(scope="module", autouse=True)
def milvus_index():
    """Imported (so registered) when these tests start, not when pytest collects them: the
    ``INDEXES.names()`` loops of test_index.py build every kind without a uri."""
    import hashseek.index.milvus_index as module
    return module


def codes_of(rng, n, n_bits, informative=None):
    """Packed random codes; only ``informative`` bits vary, so short ones tie a lot."""
    bits = rng.integers(0, 2, (n, n_bits), dtype=np.uint8)
    if informative is not None:
        bits[:, informative:] = 0
    return pack_bits(bits)


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One milvus-lite file (one embedded server start) for the module; each test its own collection."""
    return str(tmp_path_factory.mktemp("milvus") / "shared.db")


def mirror(kind_kw, n_bits, steps):
    """Apply the same adds/removes to a Milvus index and a FAISS flat index."""
    milvus, flat = create_index("milvus", n_bits, **kind_kw), create_index("flat", n_bits)
    for op, *args in steps:
        getattr(milvus, op)(*args)
        getattr(flat, op)(*args)
    return milvus, flat


def assert_same_search(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def assert_same_ranges(a, b):
    assert len(a) == len(b)
    for (da, ia), (db, ib) in zip(a, b):
        np.testing.assert_array_equal(da, db)
        np.testing.assert_array_equal(ia, ib)


@pytest.mark.parametrize("n_bits,informative", [(64, None), (48, None), (16, 10), (12, None)])
def test_same_ids_and_distances_as_flat_through_removals(uri, n_bits, informative):
    rng = np.random.default_rng(n_bits)
    codes = codes_of(rng, 2400, n_bits, informative)
    ids = rng.permutation(10**6)[:2400].astype(np.int64)  # id order != insertion order
    steps = [("add", codes[:1500], ids[:1500]), ("add", codes[1500:], ids[1500:]),
             ("remove", ids[200:500]), ("add", codes[200:300], ids[200:300])]  # back in, as the newest items
    milvus, flat = mirror({"uri": uri, "collection_name": f"exact_{n_bits}"}, n_bits, steps)
    assert len(milvus) == len(flat) == 2200 and milvus.storage_bytes == -(-n_bits // 8)
    np.testing.assert_array_equal(milvus.ids(), flat.ids())
    queries = np.concatenate([codes[:20], codes_of(rng, 20, n_bits, informative)])
    for k in (1, 10, 100, 700):
        assert_same_search(milvus.search(queries, k), flat.search(queries, k))
    for radius in (0, 3, 9):
        assert_same_ranges(milvus.range_search(queries, radius), flat.range_search(queries, radius))
    milvus.close()


def test_tie_groups_past_the_milvus_cap(uri, milvus_index):
    """20,000 equal codes: past Milvus's 16,384 hits per query the earliest inserted must still win."""
    rng = np.random.default_rng(3)
    n = milvus_index.MAX_HITS + 3616
    codes = np.zeros((n, 2), np.uint8)
    codes[::7] = codes_of(rng, len(codes[::7]), 16)  # a few others around the big tie group
    ids = rng.permutation(10**7)[:n].astype(np.int64)
    milvus, flat = mirror({"uri": uri, "collection_name": "cap"}, 16, [("add", codes, ids)])
    zero = np.zeros((1, 2), np.uint8)
    for k in (5, milvus_index.MAX_HITS + 100):
        assert_same_search(milvus.search(zero, k), flat.search(zero, k))
    assert_same_ranges(milvus.range_search(zero, 1), flat.range_search(zero, 1))
    milvus.close()


def test_label_filter_and_stored_names(uri):
    rng = np.random.default_rng(5)
    codes = codes_of(rng, 600, 32, informative=12)
    ids = np.arange(600, dtype=np.int64) * 3
    odd = ['cat "tabby"', "back\\slash", "café 猫", "it's"]
    labels = [odd[i % 4] if i % 5 else None for i in range(600)]
    index = create_index("milvus", 32, uri=uri, collection_name="labels")
    index.add(codes, ids, labels=labels, names=[f"img{i}.jpg" for i in range(600)])
    for label in odd:
        keep = np.array([lab == label for lab in labels])
        subset = create_index("flat", 32)
        subset.add(codes[keep], ids[keep])
        assert_same_search(index.search(codes[:15], 25, label=label), subset.search(codes[:15], 25))
    d, i = index.search(codes[:2], 5, label="nobody")
    assert (i == -1).all()
    rows = index.client.query("labels", filter="id in [0, 3]", output_fields=["label", "name"])
    assert sorted((r["id"], r["label"], r["name"]) for r in rows) == [(0, "", "img0.jpg"), (3, odd[1], "img1.jpg")]
    index.close()
    with pytest.raises(ValueError, match="closed"):
        index.search(codes[:1], 1)


def test_reopen_in_a_new_process_keeps_items_and_deletions(tmp_path, monkeypatch, milvus_index):
    monkeypatch.setenv(milvus_index.TOKEN_ENV, "not-in-any-file")
    rng = np.random.default_rng(11)
    codes = codes_of(rng, 1000, 64)
    ids = rng.permutation(10**6)[:1000].astype(np.int64)
    index = create_index("milvus", 64, uri=str(tmp_path / "own.db"), collection_name="kept")
    index.add(codes, ids, labels=["x" if i % 2 else "y" for i in range(1000)])
    assert index.remove(ids[:100]) == 100
    queries = codes[:30]
    expected = index.search(queries, 50)
    index.save(tmp_path / "index")
    index.close()
    side = (tmp_path / "index.json").read_text()
    assert "not-in-any-file" not in side
    assert json.loads(side)["params"]["uri"] == str((tmp_path / "own.db").resolve())
    np.savez(tmp_path / "case.npz", queries=queries, ids=ids, d=expected[0], i=expected[1])
    script = textwrap.dedent(f"""
        import sys, numpy as np
        import hashseek.index.milvus_index
        assert "pymilvus" not in sys.modules, "pymilvus must be imported lazily"
        from hashseek.index import load_index
        case = np.load({str(tmp_path / 'case.npz')!r})
        index = load_index({str(tmp_path / 'index')!r})
        assert len(index) == 900 and index.collection_name == "kept"
        np.testing.assert_array_equal(index.ids(), case["ids"][100:])
        d, i = index.search(case["queries"], 50)
        np.testing.assert_array_equal(d, case["d"])
        np.testing.assert_array_equal(i, case["i"])
        index.remove(case["ids"][100:110])
        index.close()
        print("ok")
    """)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.strip().endswith("ok"), done.stderr[-3000:]
    with pytest.warns(RuntimeWarning, match="saved with 900 items.*now holds 890"):
        again = load_index(tmp_path / "index")
    assert isinstance(again, milvus_index.MilvusIndex) and len(again) == 890
    assert not set(ids[:110]) & set(again.ids())
    again.add(codes[200:201], np.array([10**7]))  # a newcomer ranks after the old item it ties
    assert list(again.search(codes[200:201], 2)[1][0]) == [ids[200], 10**7]
    again.close()


def test_one_process_per_lite_file(tmp_path):
    index = create_index("milvus", 64, uri=str(tmp_path / "busy.db"))
    script = (f"import hashseek.index.milvus_index\nfrom hashseek.index import create_index\n"
              f"create_index('milvus', 64, uri={str(tmp_path / 'busy.db')!r}, if_exists='attach')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode != 0 and "one process at a time" in done.stderr
    index.close()


def test_lite_server_slow_to_start_is_waited_for(tmp_path, monkeypatch):
    """On a busy machine milvus-lite's server came up seconds after the first connect to a file, and pymilvus
    fails at once while its socket is missing (two CI failures): the connect waits for it. Here the real
    server starts 4 s late."""
    from milvus_lite.server import Server

    launch = Server.args.fget
    monkeypatch.setattr(Server, "args", property(
        lambda self: ["sh", "-c", 'sleep 4; exec "$0" "$@"', *map(str, launch(self))]))
    started = time.monotonic()
    index = create_index("milvus", 64, uri=str(tmp_path / "slow.db"))
    assert time.monotonic() - started > 4
    index.add(codes_of(np.random.default_rng(1), 10, 64), np.arange(10, dtype=np.int64))
    assert len(index) == 10
    index.close()


def test_ivf_falls_back_to_flat_on_lite_with_a_warning(uri):
    with pytest.warns(RuntimeWarning, match="milvus-lite cannot build BIN_IVF_FLAT"):
        index = create_index("milvus", 64, uri=uri, collection_name="ivf", index_type="BIN_IVF_FLAT", nlist=8)
    assert index.index_type == "BIN_FLAT" and index.exact and index.params()["index_type"] == "BIN_FLAT"
    index.close()


def test_clear_errors(uri):
    index = create_index("milvus", 16, uri=uri, collection_name="errors")
    good = np.zeros((3, 2), np.uint8)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        index.add(np.zeros((3, 8), np.uint8), np.arange(3))
    with pytest.raises(ValueError, match="3 codes but 2 labels"):
        index.add(good, np.arange(3), labels=["a", "b"])
    with pytest.raises(ValueError, match="control character"):
        index.add(good, np.arange(3), labels=["a", "b\nc", None])
    with pytest.raises(ValueError, match="names must be strings"):
        index.add(good, np.arange(3), names=["a", 2, None])
    assert len(index) == 0  # refused batches leave nothing behind
    index.add(good, np.arange(3))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(good[:1], np.array([2]))
    with pytest.raises(ValueError, match="k must be"):
        index.search(good, 0)
    with pytest.raises(ValueError, match="non-empty"):
        index.search(good, 1, label="")
    with pytest.raises(ValueError, match="radius"):
        index.range_search(good, -1)
    with pytest.raises(ValueError, match="already exists"):
        create_index("milvus", 16, uri=uri, collection_name="errors")
    with pytest.raises(ValueError, match="not a hashseek index of 64-bit"):
        create_index("milvus", 64, uri=uri, collection_name="errors", if_exists="attach")
    with pytest.raises(ValueError, match="no Milvus collection"):
        create_index("milvus", 16, uri=uri, collection_name="absent", if_exists="attach")
    for bad in ({"collection_name": "1abc"}, {"collection_name": "a-b"}, {"index_type": "HNSW"},
                {"nlist": 0}, {"if_exists": "keep"}):
        with pytest.raises(ValueError):
            create_index("milvus", 16, **{"uri": uri, **bad})
    with pytest.raises(ValueError, match="uri must be"):
        create_index("milvus", 16, uri="somewhere")
    replaced = create_index("milvus", 16, uri=uri, collection_name="errors", if_exists="drop")
    assert len(replaced) == 0
    replaced.close()
    index.close()


def test_missing_pymilvus_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # import pymilvus now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'hashseek\[milvus\]'"):
        create_index("milvus", 64, uri=str(tmp_path / "x.db"))


# ------------------------------------------------------------------ a real Milvus server process
# The session's ``milvus_server`` fixture (tests/milvus_server.py): Milvus 2.3.5 standalone on loopback.

def clustered(rng, n, centres, flip_p=0.08):
    """Codes like a deep hash's: a random centre with each bit flipped with probability ``flip_p``."""
    bits = centres[rng.integers(0, len(centres), n)] ^ (rng.random((n, centres.shape[1])) < flip_p)
    return pack_bits(bits.astype(np.uint8))


def test_server_that_went_down_is_restarted_before_the_next_test(milvus_server):
    """The fixture's liveness check: a server that died between tests comes back, with a warning."""
    milvus_server.kill()
    assert not milvus_server.healthy()
    with pytest.warns(UserWarning, match="was not running between tests; restarting it"):
        milvus_server.ensure_running()
    assert milvus_server.healthy()
    # back to serving collections, not only answering /healthz: a new one loads and answers at once
    milvus, flat = mirror({"uri": milvus_server.uri, "collection_name": "after_restart", "if_exists": "drop"}, 16,
                          [("add", codes_of(np.random.default_rng(0), 50, 16, 10), np.arange(50, dtype=np.int64))])
    assert len(milvus) == len(flat) == 50


def test_server_bin_flat_same_as_faiss(milvus_server):
    """16-bit codes over 10 informative bits: big tie groups, so the tie rule is tested too."""
    rng = np.random.default_rng(16)
    codes = codes_of(rng, 2000, 16, 10)
    ids = rng.permutation(10**6)[:2000].astype(np.int64)
    steps = [("add", codes[:1500], ids[:1500]), ("add", codes[1500:], ids[1500:]),
             ("remove", ids[100:400]), ("add", codes[100:200], ids[100:200])]
    milvus, flat = mirror({"uri": milvus_server.uri, "collection_name": "server_exact", "if_exists": "drop"}, 16,
                          steps)
    assert milvus.index_type == "BIN_FLAT" and milvus.exact and len(milvus) == len(flat) == 1800
    queries = np.concatenate([codes[:10], codes_of(rng, 10, 16, 10)])
    for k in (1, 100):
        assert_same_search(milvus.search(queries, k), flat.search(queries, k))
    assert_same_ranges(milvus.range_search(queries[:5], 1), flat.range_search(queries[:5], 1))
    milvus.close()


def test_server_ivf_recall_at_100(milvus_server, tmp_path):
    """BIN_IVF_FLAT on the server (milvus-lite cannot build it): recall@100 against the exact answer."""
    rng = np.random.default_rng(7)
    centres = rng.integers(0, 2, (64, 64), dtype=np.uint8)
    codes, queries = clustered(rng, 6000, centres), clustered(rng, 40, centres)
    ids = np.arange(6000, dtype=np.int64)
    ivf = create_index("milvus", 64, uri=milvus_server.uri, collection_name="server_ivf", if_exists="drop",
                       index_type="BIN_IVF_FLAT", nlist=16, nprobe=4)
    flat = create_index("flat", 64)
    ivf.add(codes, ids)
    flat.add(codes, ids)
    ivf.wait_indexed(timeout=120)   # else the rows not indexed yet are scanned exactly
    assert ivf.index_type == "BIN_IVF_FLAT" and not ivf.exact
    ivf.client.release_collection("server_ivf")   # not loaded: the next call loads it by itself
    got_d, got = ivf.search(queries, 100)
    want_d, want = flat.search(queries, 100)
    recall = np.mean([len(set(g) & set(w)) / 100 for g, w in zip(got, want)])
    tie_aware = np.mean(got_d <= want_d[:, -1:])    # a hit tied with the exact 100th counts
    assert 0.95 <= tie_aware < 1 and recall >= 0.8, (recall, tie_aware)   # < 1: the index was used
    assert (got_d[:, 0] == 0).mean() == (want_d[:, 0] == 0).mean()
    ivf.save(tmp_path / "ivf")
    ivf.close()
    again = load_index(tmp_path / "ivf")
    assert (again.index_type, again.nlist, again.nprobe) == ("BIN_IVF_FLAT", 16, 4)
    assert_same_search(again.search(queries, 100), (got_d, got))
    again.close()


def test_server_reconcile_sends_only_the_difference(milvus_server):
    rng = np.random.default_rng(9)
    codes = codes_of(rng, 4000, 32, informative=14)          # ties, so the order of re-sent rows matters
    ids = np.arange(4000, dtype=np.int64) * 2 + 1
    index = create_index("milvus", 32, uri=milvus_server.uri, collection_name="server_reconcile",
                         if_exists="drop", tie_order="id")
    index.add(codes, ids)
    name, raw = "server_reconcile", index.client
    raw.delete(name, ids=ids[1000:1040].tolist())             # lost: 40 rows, in the middle
    raw.insert(name, [{"id": 10**6 + i, "code": codes[i].tobytes(), "seq": 10**6 + i, "label": "", "name": ""}
                      for i in range(7)])                       # extra: 7 rows SQLite does not know
    raw.insert(name, [{"id": int(ids[5]), "code": codes[5].tobytes(), "seq": int(ids[5]), "label": "",
                       "name": ""}])                            # one id twice
    changed = codes.copy()
    changed[2000:2003] ^= 0xFF                                  # three codes changed
    assert index.reconcile(ids, changed, max_changed_share=0.0005, verify_codes=True)["refused"]
    report = index.reconcile(ids, changed, verify_codes=True)
    # Milvus 2.3.5 answers one row per primary key (the latest), so the duplicate is listed (and found) once
    assert (report["listed"], report["changed"]) == (4000 - 40 + 7, 3), report
    assert (report["deleted"], report["added"]) == (7 + 3, 40 + 3), report
    flat = create_index("flat", 32)
    flat.add(changed, ids)
    queries = np.concatenate([changed[995:1045:5], codes_of(rng, 10, 32, informative=14)])
    assert_same_search(index.search(queries, 300), flat.search(queries, 300))
    assert list(index.search(changed[5:6], 3)[1][0]).count(ids[5]) == 1
    assert index.reconcile(ids, changed)["added"] == 0
    index.close()


_BULK_WRITER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import hashseek.index.milvus_index
    from hashseek.core.errors import UnavailableError
    from hashseek.index import create_index
    uri, data = sys.argv[1], np.load(sys.argv[2])
    codes, ids = data["codes"], data["ids"]
    index = create_index("milvus", 64, uri=uri, collection_name="server_bulk", if_exists="attach", tie_order="id")
    for start in range(0, len(ids), 1000):
        while True:
            try:
                index.add(codes[start:start + 1000], ids[start:start + 1000])   # a cut batch: the same call again
                break
            except UnavailableError as err:
                print("down", str(err)[:200], flush=True)
                time.sleep(0.5)
        print("acked", start + 1000, flush=True)
        time.sleep(0.05)   # images arrive over time (decoding, encoding): the kill lands mid-stream
    print("done", len(index), flush=True)
""")


def test_server_killed_mid_bulk_add(milvus_server, tmp_path):
    """kill -9 of the server during a bulk add, then a restart: the add resumes, every acknowledged code
    is found, none twice; searches in the outage fail with UnavailableError and recover by themselves."""
    from hashseek.core.errors import UnavailableError

    rng = np.random.default_rng(13)
    codes, ids = codes_of(rng, 20000, 64), rng.permutation(10**7)[:20000].astype(np.int64)
    np.savez(tmp_path / "bulk.npz", codes=codes, ids=ids)
    reader = create_index("milvus", 64, uri=milvus_server.uri, collection_name="server_bulk", if_exists="drop",
                          tie_order="id")
    writer = subprocess.Popen([sys.executable, "-c", _BULK_WRITER, milvus_server.uri, str(tmp_path / "bulk.npz")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = []
    try:
        while not any(line.startswith("acked 5000") for line in lines):
            line = writer.stdout.readline()
            assert line, writer.stderr.read()[-3000:]
            lines.append(line)
        milvus_server.kill()
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="does not answer"):
            reader.search(codes[:1], 10)
        assert time.monotonic() - started < 10
        milvus_server.start()
        lines += writer.communicate(timeout=240)[0].splitlines()
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0 and lines[-1].strip() == "done 20000", lines[-5:]
    assert any(line.startswith("down") for line in lines)       # the writer saw the outage and resumed
    d, found = reader.search(codes[::50], 1)                    # the same client, back by itself
    assert (d[:, 0] == 0).all() and np.array_equal(found[:, 0], ids[::50])
    held = reader._listing(codes=False)[0]                      # every row the server holds, duplicates too
    assert len(held) == 20000 and np.array_equal(np.sort(held), np.sort(ids))
    reader.close()
