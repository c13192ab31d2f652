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
