"""The coarse-to-fine engine: ties by float distance, whole tie groups at every cut, re-ranking that
keeps what a trained model learned (issue #14), insertion-order independence."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hashseek.core.bits import hamming_distances
from hashseek.index import create_index
from hashseek.search.defaults import SEARCH_DEFAULTS
from hashseek.search.distances import pairwise_distance
from hashseek.search.engine import candidate_cut, rank, result_order


def _index(codes: np.ndarray, ids: np.ndarray):
    index = create_index("flat", codes.shape[1] * 8)
    index.add(codes, ids)
    return index


def _lookup(table: np.ndarray, ids_in_table: np.ndarray):
    """features_of for a table whose row n holds id ids_in_table[n]."""
    where = {int(i): n for n, i in enumerate(ids_in_table)}
    return lambda ids: (table, np.array([where[int(i)] for i in ids], dtype=np.int64))


def test_equal_codes_are_ordered_by_float_distance_not_by_insertion():
    codes = np.zeros((6, 8), np.uint8)                    # one code for all: every item ties
    features = np.array([[5.0], [1.0], [4.0], [2.0], [3.0], [0.5]], np.float32)
    ids = np.arange(10, 16)
    index = _index(codes, ids)
    ranking = rank(index, codes[0], 3, feature=np.zeros(1, np.float32), features_of=_lookup(features, ids),
                   tie_distance="euclidean")
    assert ranking.ids.tolist() == [15, 11, 13]           # distances 0.5, 1, 2: not the first three added
    assert ranking.distances.tolist() == [0.5, 1.0, 2.0]
    # without a float feature the documented stable rule (insertion order) decides
    assert rank(index, codes[0], 3).ids.tolist() == [10, 11, 12]


def test_a_tie_group_cut_by_k_is_fetched_whole():
    # 2 items at Hamming 0, then 300 at Hamming 1: the float-nearest of those 300 was added last
    near = np.zeros((2, 8), np.uint8)
    far = np.zeros((300, 8), np.uint8)
    far[:, 0] = 1
    codes = np.concatenate([near, far])
    ids = np.arange(len(codes))
    features = np.full((len(codes), 2), 10.0, np.float32)
    features[-1] = 0.0
    ranking = rank(_index(codes, ids), near[0], 3, feature=np.zeros(2, np.float32),
                   features_of=_lookup(features, ids), tie_distance="euclidean")
    assert ranking.ids.tolist()[:2] in ([0, 1], [1, 0]) and ranking.ids[2] == len(codes) - 1
    assert ranking.n_candidates == len(codes)              # the whole group at the cut was considered


def test_rerank_orders_candidates_by_float_then_continues_in_hamming_order():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (400, 8), dtype=np.uint8)
    features = rng.random((400, 16)).astype(np.float16)
    ids = np.arange(400) * 3 + 7
    index = _index(codes, ids)
    q_code, q_feature = codes[5], rng.random(16).astype(np.float32)
    ranking = rank(index, q_code, 400, rerank="chi2", candidates=50, feature=q_feature,
                   features_of=_lookup(features, ids))
    h = hamming_distances(q_code[None], codes)[0]
    cut = candidate_cut(h, 50)
    inside = ranking.hamming <= cut
    n = int(inside.sum())
    assert n >= 50 and n == ranking.n_candidates and inside[:n].all() and not inside[n:].any()
    assert np.all(np.diff(ranking.distances[:n]) >= 0)                    # candidates by float distance
    assert np.all(np.diff(ranking.hamming[n:]) >= 0)                      # the rest by Hamming
    # the same order as result_order on the whole library (what the benchmark computes)
    f = pairwise_distance(q_feature, features, "chi2")
    assert ranking.ids.tolist() == ids[result_order(h, f, ids, cut)].tolist()
    assert not ranking.linear
    whole = rank(index, q_code, 10, rerank="chi2", candidates=400, feature=q_feature,
                 features_of=_lookup(features, ids))
    assert whole.linear and whole.n_candidates == 400


def test_excluded_ids_never_appear_and_bad_arguments_are_refused():
    codes = np.zeros((5, 8), np.uint8)
    ids = np.arange(5)
    features = np.arange(5, dtype=np.float32)[:, None]
    ranking = rank(_index(codes, ids), codes[0], 5, rerank="euclidean", candidates=2, feature=np.zeros(1, np.float32),
                   features_of=_lookup(features, ids), exclude=[0, 3])
    assert ranking.ids.tolist() == [1, 2, 4]
    with pytest.raises(ValueError, match="float feature"):
        rank(_index(codes, ids), codes[0], 2, rerank="chi2")
    with pytest.raises(ValueError, match="positive"):
        rank(_index(codes, ids), codes[0], 0)


# -- a trained model on a small real slice ---------------------------------------------------------

@pytest.fixture(scope="module")
def trained_cars(cars_bmw13):
    """gap + csq 48 bits trained on frozen maps of 10 images of each cars-bmw13 model; its outputs on
    those (the library) and on 5 held-out images per model (the queries)."""
    import torch

    from hashseek.data.protocols import get_protocol
    from hashseek.models.features import BackboneEncoder, extract_features
    from hashseek.train import TrainConfig, Trainer

    protocol = get_protocol("cars-bmw13", cars_bmw13, seed=0)
    labels = cars_bmw13.labels(protocol.train)
    library = [i for c in range(len(cars_bmw13.classes)) for i in np.array(protocol.train)[labels == c][:10]]
    queries = protocol.validation
    model = Trainer(TrainConfig(head="gap", loss="csq", bits=48, mode="frozen", epochs=30, seed=0),
                    progress=False).fit(cars_bmw13, library).model.eval()
    encoder = BackboneEncoder(model.backbone, kind="map")
    out = {}
    for part, ids in (("library", library), ("queries", queries)):
        maps = extract_features(cars_bmw13, ids, encoder=encoder, progress=False)
        with torch.no_grad():
            head = model.head(torch.from_numpy(np.asarray(maps.features, np.float32)))
        codes, features = model.encode_maps(maps.features)
        out[part] = {"codes": codes, "features": features, "embedding": head.embedding.numpy(),
                     "labels": maps.labels}
    return model, out


def _mean_ap(ranked_labels: np.ndarray, query_labels: np.ndarray) -> float:
    rel = ranked_labels == query_labels[:, None]
    precision = np.cumsum(rel, 1) / np.arange(1, rel.shape[1] + 1)
    return float(((precision * rel).sum(1) / np.maximum(rel.sum(1), 1)).mean())


def _search_all(lib, qry, feature_key, insertion=None, **settings) -> np.ndarray:
    """Labels of every query's full ranking through ``rank`` on a FAISS index built in ``insertion`` order."""
    n = len(lib["codes"])
    insertion = np.arange(n) if insertion is None else insertion
    index = _index(lib["codes"][insertion], insertion.astype(np.int64))   # id = the row in the library
    table = lib[feature_key].astype(np.float16) if feature_key else None
    features_of = (lambda ids: (table, np.asarray(ids, np.int64))) if feature_key else None
    out = []
    for code, feature in zip(qry["codes"], qry[feature_key] if feature_key else [None] * len(qry["codes"])):
        ranking = rank(index, code, n, feature=feature, features_of=features_of, **settings)
        out.append(lib["labels"][ranking.ids])
    return np.array(out)


def _default_settings(n: int) -> dict:
    d = SEARCH_DEFAULTS
    return {"rerank": d.rerank, "candidates": d.candidate_count(n), "tie_distance": d.tie_distance}


def test_default_pipeline_keeps_a_trained_models_hamming_map(trained_cars):
    """Issue #14: re-ranking a trained model's candidates by the backbone's pooled feature took
    cars-bmw13's mAP from 0.55 to 0.19. The model's own feature and the default pipeline must keep
    the Hamming ranking's mAP or better."""
    model, out = trained_cars
    lib, qry = out["library"], out["queries"]
    assert model.rerank_feature == "codes" and lib["features"].shape[1] == model.n_bits
    hamming_only = _mean_ap(_search_all(lib, qry, None), qry["labels"])
    default = _mean_ap(_search_all(lib, qry, "features", **_default_settings(len(lib["codes"]))), qry["labels"])
    assert default >= hamming_only
    # the test has teeth: the old re-rank feature (the frozen backbone's pooled vector) loses clearly
    lib_old, qry_old = {**lib, "features": lib["embedding"]}, {**qry, "features": qry["embedding"]}
    old = _mean_ap(_search_all(lib_old, qry_old, "features", rerank="chi2", candidates=len(lib["codes"])),
                   qry["labels"])
    assert old < hamming_only - 0.05


def test_rankings_do_not_depend_on_insertion_order(trained_cars):
    """CSQ codes collapse onto class centres, so Hamming ties are everywhere: the top-20 class
    composition must be the same for 3 random insertion orders for >= 99% of queries."""
    _, out = trained_cars
    lib, qry = out["library"], out["queries"]
    n = len(lib["codes"])
    settings = {**_default_settings(n)}
    compositions = []
    for seed in range(3):
        top = _search_all(lib, qry, "features", np.random.default_rng(seed).permutation(n), **settings)[:, :20]
        compositions.append([Counter(row.tolist()) for row in top])
    same = np.mean([compositions[0][q] == compositions[1][q] == compositions[2][q] for q in range(len(qry["codes"]))])
    assert same >= 0.99


def test_a_saved_model_stores_the_same_rerank_feature(trained_cars, tmp_path):
    """The relaxed codes depend on the tanh head's continuation beta, which is no weight: the checkpoint
    must keep it, or a collection built from the saved model re-ranks by other features."""
    from hashseek.models.hash_model import load_model

    model, _ = trained_cars
    trained_beta, model.head.beta = model.head.beta, 1.7   # what 1,000 training steps of continuation reach
    try:
        loaded = load_model(model.save(tmp_path / "m"))
        maps = np.random.default_rng(0).random((4, 1280, 7, 7)).astype(np.float32)
        expected = model.encode_maps(maps)[1]
    finally:
        model.head.beta = trained_beta
    assert loaded.head.beta == 1.7 and loaded.describe()["rerank_feature"] == "codes"
    np.testing.assert_allclose(loaded.encode_maps(maps)[1], expected, rtol=1e-6, atol=1e-6)
