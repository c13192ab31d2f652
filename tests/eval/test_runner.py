"""The protocol runner on a small real split of cars-bmw13: every figure, the unseen-class subset, the cache."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hashseek.core.metrics import mean_average_precision
from hashseek.eval.retrieval import cosine_distances
from hashseek.data.protocols import get_protocol
from hashseek.eval.runner import ALL_METHODS, MethodSpec, retrieval_figures, run_method, split_digest
from hashseek.models.aggregation.fitting import fit_pooling, pool_maps
from hashseek.models.features import BackboneEncoder, extract_features

FIGURES = {"map_all", "map_at_r", "precision_at_20", "vote_accuracy_top8", "precision_curve", "recall_at_k",
           "f1_at_k", "confusion_matrix", "n_query", "n_database"}


def test_method_names_parse_to_their_kind():
    assert (MethodSpec.parse("gap+hashnet").head, MethodSpec.parse("gap+hashnet").loss) == ("gap", "hashnet")
    assert MethodSpec.parse("sdh", epochs=3).kind == "shallow"
    assert MethodSpec.parse("cosine").name == "float"
    with pytest.raises(ValueError, match="unknown method"):
        MethodSpec.parse("resnet")


def test_pooled_names_parse_to_an_aggregation_of_the_maps():
    gem = MethodSpec.parse("float:gem")
    assert (gem.name, gem.kind, gem.pooling) == ("float:gem", "float", "gem")
    itq = MethodSpec.parse("itq:rmac", epochs=3)
    assert (itq.kind, itq.hasher, itq.pooling) == ("shallow", "itq", "rmac")
    assert MethodSpec.parse("cosine:mac").name == "float:mac" and MethodSpec.parse("float").pooling is None
    with pytest.raises(ValueError, match="unknown pooling 'gemm'.*gem"):
        MethodSpec.parse("float:gemm")
    with pytest.raises(ValueError, match="unknown method"):
        MethodSpec.parse("resnet:gem")
    assert {"ksh", "gap+cnnh", "float:rmac", "float:netvlad"} <= set(ALL_METHODS)
    # the pooling is part of the cached run's identity
    assert len({MethodSpec.parse(m).key(None, "frozen") for m in ("float", "float:gem", "float:mac")}) == 3
    assert MethodSpec.parse("itq:gem").key(16, "frozen").startswith("itq_gem-16b-")


def test_cache_key_follows_what_changes_the_result():
    deep = MethodSpec.parse("gap+hashnet", epochs=2)
    assert deep.key(16, "frozen") != MethodSpec.parse("gap+hashnet", epochs=3).key(16, "frozen")
    assert deep.key(16, "frozen") != deep.key(16, "finetune") != deep.key(32, "frozen")
    # epochs do not touch a shallow hasher; the float baseline has no code length
    assert MethodSpec.parse("itq", epochs=2).key(16, "frozen") == MethodSpec.parse("itq").key(16, "frozen")
    assert "b-" not in MethodSpec.parse("float").key(None, "frozen")


def test_schedule_and_validation_interval_enter_the_key_only_when_set():
    default = MethodSpec.parse("gap+csq", epochs=20)
    # the key this run had before MethodSpec carried a schedule or a validation interval: cached runs stay found
    assert default.key(48, "frozen") == "gap_csq-48b-frozen-28f24642c2"
    plateau, every2 = MethodSpec.parse("gap+csq", epochs=20, schedule="plateau"), replace(default, validate_every=2)
    assert len({default.key(48, "frozen"), plateau.key(48, "frozen"), every2.key(48, "frozen")}) == 3
    assert (default.mode_label("frozen"), plateau.mode_label("frozen")) == ("frozen, 20 ep", "frozen, 20 ep, plateau")


def test_every_figure_and_the_protocol_record(small_runs, tiny_protocol):
    for r in small_runs:
        f = r["figures"]
        assert FIGURES <= set(f)
        assert (f["n_query"], f["n_database"]) == (12, 24)
        counts = np.array(f["confusion_matrix"])
        assert counts.sum() == 12 and np.trace(counts) / 12 == pytest.approx(f["vote_accuracy_top8"])
        assert f["precision_curve"]["k"] == [1, 5, 10, 20]
        p = r["protocol"]
        assert (p["name"], p["dataset"], p["seed"]) == ("tiny-cars", "cars-bmw13", 0)
        assert p["sizes"] == {"query": 12, "database": 24, "train": 16, "validation": 0}
        assert "database order" in p["tie_rule"] and "mAP@all" in p["map_definition"]
        assert p["backbone"] == "efficientnet_lite0" and p["machine"]["cores"] >= 1
        assert {"train_seconds", "encode_seconds", "linear_ms_per_query"} <= set(r["times"])
        assert "forward_ms_batch1" not in r["times"]  # timing=False
        assert r["cached"] is False


def test_hashed_runs_have_a_hamming_pr_curve_that_ends_at_the_whole_database(small_runs):
    for r in small_runs:
        if r["bits"] is None:
            assert "pr_curve_hamming" not in r["figures"] and "time_drop_ratio" not in r["times"]
            continue
        curve = r["figures"]["pr_curve_hamming"]
        assert curve["radius"] == list(range(r["bits"] + 1))
        # radius = all bits retrieves the whole database: 8 of 24 items share each query's class
        assert curve["precision"][-1] == pytest.approx(8 / 24) and curve["recall"][-1] == pytest.approx(1.0)
        assert np.all(np.diff(curve["recall"]) >= 0)


def test_search_timings_reach_the_record(tiny_protocol, scripted_clock, tmp_path):
    # 12 timed queries: linear 5.000 -> 5.060 s (5 ms each), coarse-to-fine 7.000 -> 7.012 s (1 ms each)
    clock = scripted_clock(5.000, 5.060, 7.000, 7.012)
    times = run_method("lsh", tiny_protocol, 16, cache_dir=tmp_path, progress=False, timing=False)["times"]
    assert clock.instants == []
    assert times["linear_ms_per_query"] == pytest.approx(5.0)
    assert times["coarse_to_fine_ms_per_query"] == pytest.approx(1.0)
    assert times["time_drop_ratio"] == pytest.approx(0.8)
    assert times["timed_queries"] == 12 and times["candidates"] == 24     # 100 candidates, capped at the database


def test_unseen_class_queries_are_reported_apart(small_runs, tiny_protocol):
    for r in small_runs:
        assert r["unseen"]["classes"] == tiny_protocol.unseen_classes
        assert r["unseen"]["n_query"] == 4 and r["unseen"]["n_database"] == 24


def test_deep_run_records_training_and_model_costs(small_runs):
    deep = small_runs[-1]
    assert (deep["method"], deep["kind"], deep["mode"]) == ("gap+hashnet", "deep", "frozen, 2 ep")
    assert deep["spec"]["epochs"] == 2
    assert deep["times"]["train_seconds"] > 0 and np.isfinite(deep["final_loss"])
    c = deep["costs"]
    assert c["parameters"] > c["head_parameters"] > 0 and c["checkpoint_bytes"] > 0


def test_float_baseline_is_cosine_on_pooled_features(small_runs, tiny_protocol, cars_bmw13):
    needed = sorted(set(tiny_protocol.query) | set(tiny_protocol.database) | set(tiny_protocol.train))
    pooled = extract_features(cars_bmw13, needed, encoder=BackboneEncoder("efficientnet_lite0"), progress=False)
    q, d = pooled.select(tiny_protocol.query), pooled.select(tiny_protocol.database)
    expected = mean_average_precision(cosine_distances(q.features, d.features), q.labels, d.labels)
    assert small_runs[2]["figures"]["map_all"] == pytest.approx(expected)


def test_second_call_is_served_from_the_cache(small_runs, tiny_protocol, run_cache, monkeypatch):
    from hashseek.eval import runner

    def recompute(*args, **kwargs):
        raise AssertionError("the cached run was computed again")

    monkeypatch.setattr(runner, "_run_on_pooled", recompute)
    monkeypatch.setattr(runner, "_run_deep", recompute)
    again = run_method("lsh", tiny_protocol, 16, cache_dir=run_cache)
    assert again["cached"] is True and again["figures"] == small_runs[0]["figures"]
    assert run_method(MethodSpec.parse("gap+hashnet", epochs=2), tiny_protocol, 16, cache_dir=run_cache)["cached"]
    with pytest.raises(AssertionError, match="computed again"):  # other hyper-parameters: a new run
        run_method(MethodSpec.parse("gap+hashnet", epochs=3), tiny_protocol, 16, cache_dir=run_cache)


def test_a_stored_page_record_is_served_from_the_cache(small_runs, tmp_path, monkeypatch):
    from hashseek.eval import runner

    # a record as a results page's JSON holds it, for the shipped cars-bmw13 split
    cars = get_protocol("cars-bmw13")
    record = {**small_runs[3], "protocol": {**small_runs[3]["protocol"], "name": "cars-bmw13", "seed": 0,
                                            "split_digest": split_digest(cars)}}
    # the same run measured on an older split of cars-bmw13 (no validation part) never enters the cache
    older = {**record, "protocol": {k: v for k, v in record["protocol"].items() if k != "split_digest"}}
    older["protocol"]["sizes"] = {"query": 206, "database": 325, "train": 325}
    assert not runner.same_split(older, cars) and runner.same_split(record, cars)
    assert runner.store_record(older, tmp_path) is False
    assert runner.cached_record(MethodSpec.parse("gap+hashnet", epochs=2), cars, 16, cache_dir=tmp_path) is None
    assert runner.store_record(record, tmp_path) is True
    assert runner.store_record(record, tmp_path) is False          # already there: left alone
    monkeypatch.setattr(runner, "_run_deep", lambda *a, **k: pytest.fail("the stored run was computed again"))
    again = run_method(MethodSpec.parse("gap+hashnet", epochs=2), "cars-bmw13", 16, cache_dir=tmp_path)
    assert again["cached"] and again["figures"] == record["figures"]


def test_pr_radius_with_no_retrieval_is_null_not_nan():
    db_labels = np.repeat([0, 1], 10)
    hamming = np.array([np.where(db_labels == 0, 1, 2), np.where(db_labels == 1, 1, 2)])  # nothing within radius 0
    f = retrieval_figures(hamming, np.array([0, 1]), db_labels, n_classes=2, n_bits=2)
    assert f["pr_curve_hamming"]["precision"] == [None, 1.0, 0.5]
    assert f["pr_curve_hamming"]["recall"] == [0.0, 1.0, 1.0]
    assert f["confusion_matrix"] == [[1, 0], [0, 1]]
    assert f["precision_curve"] == {"k": [1, 5, 10, 20], "precision": [1.0, 1.0, 1.0, 0.5]}


def test_aggregated_float_run_is_cosine_on_the_pooled_maps(small_runs, tiny_protocol, cars_bmw13, run_cache):
    """``float:rmac``: R-MAC of each part's maps, its whitening fitted on the training maps only."""
    record = run_method("float:rmac", tiny_protocol, None, cache_dir=run_cache, progress=False, timing=False)
    assert (record["kind"], record["spec"]["pooling"], record["costs"]["vector_dim"]) == ("float", "rmac", 1280)
    assert record["times"]["encode_source"] == "cached backbone maps, rmac pooling, fitted on 16 training maps"
    encoder = BackboneEncoder("efficientnet_lite0", kind="map")
    q, d, train = (extract_features(cars_bmw13, ids, encoder=encoder, progress=False)
                   for ids in (tiny_protocol.query, tiny_protocol.database, tiny_protocol.train))
    pooling = fit_pooling("rmac", train.features)
    expected = mean_average_precision(cosine_distances(pool_maps(pooling, q.features), pool_maps(pooling, d.features)),
                                      q.labels, d.labels)
    assert record["figures"]["map_all"] == pytest.approx(expected)
    assert record["figures"]["map_all"] != pytest.approx(small_runs[2]["figures"]["map_all"])   # not the pooled vector
