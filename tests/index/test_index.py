"""Index backends against a brute-force model of the tie rule: (distance, insertion order)."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from hashseek.index import (INDEXES, MISSING_DISTANCE, create_index, hamming_distances, load_index,
                            omp_threads, pack_bits, storage_bytes)

EMBEDDED_KINDS = [k for k in INDEXES.names() if k != "milvus"]   # milvus needs a server uri: its own tests


class Model:
    """What any exact index must return: items kept in insertion order, stable sort by distance."""

    def __init__(self, n_bits: int):
        self.n_bits = n_bits
        self.codes = np.empty((0, -(-n_bits // 8)), np.uint8)
        self.ids = np.empty(0, np.int64)

    def add(self, codes, ids):
        self.codes = np.concatenate([self.codes, codes])
        self.ids = np.concatenate([self.ids, ids])

    def remove(self, ids):
        keep = ~np.isin(self.ids, ids)
        self.codes, self.ids = self.codes[keep], self.ids[keep]

    def search(self, queries, k):
        dist = hamming_distances(queries, self.codes)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        d = np.full((len(queries), k), MISSING_DISTANCE, np.int32)
        i = np.full((len(queries), k), -1, np.int64)
        m = order.shape[1]
        d[:, :m] = np.take_along_axis(dist, order, 1)
        i[:, :m] = self.ids[order]
        return d, i

    def range_search(self, queries, radius):
        dist = hamming_distances(queries, self.codes)
        out = []
        for row in dist:
            hits = np.flatnonzero(row <= radius)
            hits = hits[np.argsort(row[hits], kind="stable")]
            out.append((row[hits], self.ids[hits]))
        return out


def random_codes(rng, n, n_bits, informative_bits=None):
    """Packed random codes; ``informative_bits`` < n_bits leaves the rest 0 so ties abound."""
    bits = rng.integers(0, 2, (n, n_bits), dtype=np.uint8)
    if informative_bits is not None:
        bits[:, informative_bits:] = 0
    return pack_bits(bits)


def clustered_codes(rng, n, n_bits, centres, flip_p):
    """Deep-hash-like codes: a few random bit flips around a few centres."""
    c = rng.integers(0, 2, (centres, n_bits), dtype=np.uint8)
    bits = c[rng.integers(0, centres, n)] ^ (rng.random((n, n_bits)) < flip_p)
    return pack_bits(bits)


def assert_same(got, want):
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def make(kind, n_bits, **kw):
    if kind == "ivf":
        kw.setdefault("nlist", 16)
    return create_index(kind, n_bits, **kw)


@pytest.mark.parametrize("kind", ["flat", "numpy"])
@pytest.mark.parametrize("n_bits,informative", [(8, None), (16, 10), (48, 12), (64, 14), (12, None), (200, 14)])
def test_exact_backends_follow_tie_rule_through_removals(kind, n_bits, informative):
    rng = np.random.default_rng(n_bits)
    index, model = create_index(kind, n_bits), Model(n_bits)
    codes = random_codes(rng, 3000, n_bits, informative)
    ids = rng.permutation(10**6)[:3000].astype(np.int64)  # id value order != insertion order
    for part in np.array_split(np.arange(3000), 3):
        index.add(codes[part], ids[part])
        model.add(codes[part], ids[part])
    queries = random_codes(rng, 25, n_bits, informative)

    def check():
        assert len(index) == len(model.ids)
        np.testing.assert_array_equal(index.ids(), model.ids)
        for k in (1, 10, 100, 700):  # 700: flat's counting-sort top-k
            assert_same(index.search(queries, k), model.search(queries, k))

    check()
    gone = rng.choice(ids, 900, replace=False)
    assert index.remove(np.concatenate([gone, [10**7]])) == 900
    model.remove(gone)
    check()
    back = gone[:300]
    new_codes = random_codes(rng, 300, n_bits, informative)
    index.add(new_codes, back)
    model.add(new_codes, back)
    check()


@pytest.mark.parametrize("kind", EMBEDDED_KINDS)
def test_fewer_items_than_k_leaves_missing_slots(kind):
    rng = np.random.default_rng(1)
    kw = {"ivf": {"nlist": 2, "nprobe": 2}, "hash": {"nflip": 16}, "multihash": {"nflip": 16}}.get(kind, {})
    index = make(kind, 32, **kw)
    codes = random_codes(rng, 40, 32)
    index.add(codes, np.arange(40))
    d, i = index.search(codes[:3], 50)
    assert d.shape == i.shape == (3, 50) and d.dtype == np.int32 and i.dtype == np.int64
    assert (i[:, 40:] == -1).all() and (d[:, 40:] == MISSING_DISTANCE).all()
    assert (i[:, 0] == [0, 1, 2]).all() and (d[:, 0] == 0).all()


def test_empty_index_search():
    d, i = create_index("flat", 64).search(np.zeros((2, 8), np.uint8), 3)
    assert (i == -1).all() and (d == MISSING_DISTANCE).all()


def test_padding_is_transparent_and_spare_bits_are_ignored():
    assert [storage_bytes(b) for b in (1, 4, 5, 6, 9, 17, 21, 33, 65, 100)] == [4, 4, 8, 8, 16, 20, 32, 64, 72, 104]
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 500, 48)
    index = create_index("flat", 48)
    assert index.storage_bytes == 8 and index.n_bytes == 6
    index.add(codes, np.arange(500))
    assert_same(index.search(codes[:10], 20), _model(48, codes).search(codes[:10], 20))
    # 12-bit codes: the low 4 bits of the second byte are not part of the code.
    codes12 = random_codes(rng, 200, 12)
    dirty = codes12.copy()
    dirty[:, 1] |= 0x0F
    for kind in ("flat", "numpy"):
        index = create_index(kind, 12)
        index.add(dirty, np.arange(200))
        assert_same(index.search(codes12[:5], 30), _model(12, codes12).search(codes12[:5], 30))


def _model(n_bits, codes):
    model = Model(n_bits)
    model.add(codes, np.arange(len(codes)))
    return model


@pytest.mark.parametrize("kind,kw", [("flat", {}), ("numpy", {}), ("hash", {"b": 8, "nflip": 8}),
                                     ("multihash", {"nhash": 2, "b": 8, "nflip": 8}),
                                     ("ivf", {"nlist": 16, "nprobe": 16})])
def test_approximate_backends_are_exact_when_probing_everything(kind, kw):
    rng = np.random.default_rng(3)
    codes = clustered_codes(rng, 2000, 24, centres=20, flip_p=0.1)
    ids = rng.permutation(5000)[:2000]
    index, model = create_index(kind, 24, **kw), Model(24)
    index.add(codes, ids)
    model.add(codes, ids)
    queries = clustered_codes(rng, 15, 24, centres=20, flip_p=0.1)
    for k in (1, 10, 100):
        assert_same(index.search(queries, k), model.search(queries, k))
    gone = ids[::3]
    index.remove(gone)
    model.remove(gone)
    assert_same(index.search(queries, 50), model.search(queries, 50))


@pytest.mark.parametrize("kind,kw,radii", [("flat", {}, (0, 3, 9)), ("numpy", {}, (0, 3, 9)),
                                           ("hash", {"b": 16, "nflip": 3}, (0, 2, 3)),
                                           ("multihash", {"nflip": 1}, (0, 4, 7)),
                                           ("ivf", {"nlist": 16, "nprobe": 16}, (0, 3, 9))])
def test_range_search_matches_brute_force(kind, kw, radii):
    rng = np.random.default_rng(4)
    codes = clustered_codes(rng, 3000, 64, centres=30, flip_p=0.04)
    ids = rng.permutation(9000)[:3000]
    index, model = create_index(kind, 64, **kw), Model(64)
    index.add(codes, ids)
    model.add(codes, ids)
    queries = np.concatenate([codes[:5], clustered_codes(rng, 10, 64, centres=30, flip_p=0.04)])
    for radius in radii:
        got, want = index.range_search(queries, radius), model.range_search(queries, radius)
        assert len(got) == len(queries)
        for (gd, gi), (wd, wi) in zip(got, want):
            assert gd.dtype == np.int32 and gi.dtype == np.int64
            np.testing.assert_array_equal(gd, wd)
            np.testing.assert_array_equal(gi, wi)
    assert sum(len(i) for _, i in index.range_search(queries, 9)) > 100  # the test is not vacuous


def test_ivf_recall_on_clustered_codes_with_few_probes():
    rng = np.random.default_rng(5)
    codes = clustered_codes(rng, 20000, 64, centres=64, flip_p=0.05)
    index = create_index("ivf", 64, nlist=64, nprobe=4)
    index.add(codes, np.arange(20000))
    queries = clustered_codes(rng, 50, 64, centres=64, flip_p=0.05)
    d_exact, _ = _model(64, codes).search(queries, 100)
    d_ivf, _ = index.search(queries, 100)
    # Tie-aware recall: found items as close as the exact k-th neighbour.
    recall = (d_ivf <= d_exact[:, -1:]).mean()
    assert recall >= 0.95


def test_ivf_trains_on_first_batch_or_explicitly():
    rng = np.random.default_rng(6)
    codes = random_codes(rng, 400, 32)
    auto = create_index("ivf", 32)
    auto.add(codes, np.arange(400))
    assert auto.is_trained and auto.nlist == 400 // 39
    explicit = create_index("ivf", 32, nlist=4)
    explicit.train(codes)
    assert len(explicit) == 0
    explicit.add(codes[:10], np.arange(10))
    with pytest.raises(ValueError, match="already trained"):
        explicit.train(codes)
    with pytest.raises(ValueError, match="at least 50"):
        create_index("ivf", 32, nlist=50).add(codes[:20], np.arange(20))


@pytest.mark.parametrize("kind", EMBEDDED_KINDS)
def test_save_load_round_trip(kind, tmp_path):
    rng = np.random.default_rng(7)
    codes = random_codes(rng, 1500, 48, informative_bits=20)
    ids = rng.permutation(10**5)[:1500]
    index = make(kind, 48)
    index.add(codes, ids)
    index.remove(ids[:100])
    queries = codes[:20]
    before = index.search(queries, 30), index.range_search(queries, 2)
    path = tmp_path / f"{kind}.index"
    index.save(path)
    loaded = load_index(path)
    assert type(loaded) is type(index) and loaded.n_bits == 48 and len(loaded) == 1400
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    assert loaded.params() == index.params()
    assert_same(loaded.search(queries, 30), before[0])
    for (a, b), (c, d) in zip(loaded.range_search(queries, 2), before[1]):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    # still a working index, where a new item ranks after an old one at equal distance
    loaded.add(codes[100:101], np.array([10**6]))
    top = list(loaded.search(codes[100:101], 1500)[1][0])
    assert top.index(ids[100]) < top.index(10**6)
    with pytest.raises(ValueError, match="not"):
        INDEXES.get("numpy" if kind != "numpy" else "flat").load(path)


def test_flat_file_is_a_plain_faiss_index(tmp_path):
    index = create_index("flat", 64)
    codes = random_codes(np.random.default_rng(8), 100, 64)
    index.add(codes, np.arange(100) + 5)
    index.save(tmp_path / "a.faiss")
    raw = faiss.read_index_binary(str(tmp_path / "a.faiss"))
    assert raw.ntotal == 100 and (tmp_path / "a.faiss.json").is_file()


def test_bad_input_is_refused():
    index = create_index("flat", 64)
    good = np.zeros((3, 8), np.uint8)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        index.add(np.zeros((3, 6), np.uint8), np.arange(3))
    with pytest.raises(ValueError, match="uint8"):
        index.add(good.astype(np.int64), np.arange(3))
    with pytest.raises(ValueError, match="uint8"):
        index.search(good.tolist(), 1)
    with pytest.raises(ValueError, match="duplicate"):
        index.add(good, np.array([1, 2, 1]))
    with pytest.raises(ValueError, match="3 codes but 2 ids"):
        index.add(good, np.array([1, 2]))
    with pytest.raises(ValueError, match="non-negative"):
        index.add(good, np.array([1, 2, -3]))
    with pytest.raises(ValueError, match="integers"):
        index.add(good, np.array([1.0, 2.0, 3.0]))
    index.add(good, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(good[:2], np.array([7, 3]))
    assert len(index) == 3  # a refused batch changes nothing
    with pytest.raises(ValueError, match="k must be"):
        index.search(good, 0)
    with pytest.raises(ValueError, match="radius"):
        index.range_search(good, -1)
    for n_bits in (4, 1025, 8.0):
        with pytest.raises(ValueError, match="n_bits"):
            create_index("flat", n_bits)
    with pytest.raises(KeyError, match="unknown index"):
        create_index("annoy", 64)
    with pytest.raises(ValueError, match="threads"):
        create_index("flat", 64, threads=0)


def test_remove_counts_and_ignores_unknown():
    for kind in EMBEDDED_KINDS:
        index = make(kind, 64, nlist=1) if kind == "ivf" else make(kind, 64)
        index.add(random_codes(np.random.default_rng(9), 50, 64), np.arange(50))
        assert index.remove([3, 3, 4, 999]) == 2
        assert index.remove([3]) == 0 and len(index) == 48
        assert 3 not in set(index.search(np.zeros((1, 8), np.uint8), 50)[1][0])


def test_threads_option_restores_the_global_setting():
    before = faiss.omp_get_max_threads()
    index = create_index("flat", 64, threads=1)
    index.add(np.zeros((5, 8), np.uint8), np.arange(5))
    index.search(np.zeros((2, 8), np.uint8), 2)
    assert faiss.omp_get_max_threads() == before
    with omp_threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before


@pytest.mark.parametrize("kind,kw", [("hash", {"b": 8, "nflip": 8}), ("multihash", {"nhash": 2, "b": 8, "nflip": 8}),
                                     ("ivf", {"nlist": 8, "nprobe": 8})])
def test_tie_groups_far_larger_than_k_still_keep_the_earliest(kind, kw):
    # 8 distinct codes among 2000 items: every boundary tie group holds ~250 items, far
    # more than the 2k FAISS is first asked for, so the widening path must run.
    rng = np.random.default_rng(10)
    codes = random_codes(rng, 2000, 16, informative_bits=3)
    ids = rng.permutation(2000)
    index, model = create_index(kind, 16, **kw), Model(16)
    index.add(codes, ids)
    model.add(codes, ids)
    queries = random_codes(rng, 10, 16, informative_bits=3)
    for k in (1, 10, 300):
        assert_same(index.search(queries, k), model.search(queries, k))


def test_backends_describe_and_check_their_own_options(tmp_path):
    from hashseek.core.errors import InvalidInputError
    from hashseek.index import INDEXES

    assert INDEXES.get("ivf").needs_training and not INDEXES.get("flat").needs_training
    assert INDEXES.get("flat").threaded and not INDEXES.get("numpy").threaded
    assert not any(INDEXES.get(kind).is_remote for kind in ("flat", "hash", "multihash", "ivf", "numpy"))
    assert INDEXES.get("hash").check_options(64, tmp_path, {"nflip": 3}) == {"nflip": 3}
    with pytest.raises(InvalidInputError, match="nprobe"):
        INDEXES.get("flat").check_options(64, tmp_path, {"nprobe": 4})      # an IVF option on a flat index
    with pytest.raises(InvalidInputError, match="b must be"):
        INDEXES.get("hash").check_options(64, tmp_path, {"b": 40})
    ivf = create_index("ivf", 16, nlist=1)
    assert not ivf.is_trained
    ivf.add(np.zeros((2, 2), np.uint8), np.arange(2))
    assert ivf.is_trained and create_index("flat", 16).is_trained
