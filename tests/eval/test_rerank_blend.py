"""A frozen model's re-rank blend: the feature it makes, and its choice on class-disjoint validation."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from hashseek.core.errors import InvalidInputError
from hashseek.data.protocols import Protocol
from hashseek.eval.rerank_blend import (BLEND_WEIGHTS, TRAINED_TOLERANCE, blend_unavailable, choose_rerank_blend)
from hashseek.eval.source_runs import Prepared, recipe_config, report_training, train_prepared
from hashseek.models.hash_model import load_model


@pytest.fixture(scope="module")
def six_cars(cars_bmw13, tmp_path_factory):
    """6 BMW models x (2 test queries, 2 validation, 8 training images), a fast run of 3 epochs on them."""
    query, validation, train = [], [], []
    for cls in cars_bmw13.classes[:6]:
        ids = [i for i in cars_bmw13.ids if i.startswith(cls + "/")]
        query, validation, train = query + ids[:2], validation + ids[2:4], train + ids[4:12]
    protocol = Protocol("six-cars", "cars-bmw13", 0, "6 BMW models", query, train + validation, train,
                        validation=validation)
    prepared = Prepared("cars-bmw13", "builtin", cars_bmw13, protocol)
    config, _ = recipe_config("fast", prepared, overrides={"epochs": 3})
    out = tmp_path_factory.mktemp("blend") / "run"
    return prepared, config, train_prepared(prepared, config, out, progress=False), out


def test_the_blend_is_the_weighted_sum_of_the_codes_and_embedding_cosines(six_cars):
    _, _, result, _ = six_cars
    model = result.model
    maps = np.random.default_rng(0).random((5, 1280, 4, 4)).astype(np.float32)
    try:
        parts = {}
        for name in ("codes", "embedding"):
            features = model.set_rerank_feature(name).encode_maps(maps)[1]
            features /= np.linalg.norm(features, axis=1, keepdims=True)
            parts[name] = features @ features.T
        blended = model.set_rerank_blend(0.3).encode_maps(maps)[1]
        assert model.feature_dim == blended.shape[1] == 64 + 1280 and model.describe()["rerank_blend"] == 0.3
        np.testing.assert_allclose(blended @ blended.T, 0.7 * parts["codes"] + 0.3 * parts["embedding"], atol=1e-5)
        assert model.set_rerank_blend(0).rerank_feature == "codes" and model.feature_dim == 64
        with pytest.raises(InvalidInputError, match=r"rerank_blend must be in \[0, 1\)"):
            model.set_rerank_blend(1.0)
    finally:
        model.set_rerank_blend(0)


def test_the_choice_reads_no_test_query_and_keeps_the_trained_classes(six_cars, monkeypatch):
    prepared, config, result, _ = six_cars
    dataset, protocol = prepared.dataset, prepared.protocol
    reads: list[str] = []
    original = dataset.read_bytes
    monkeypatch.setattr(dataset, "read_bytes", lambda image_id: reads.append(image_id) or original(image_id))
    choice = choose_rerank_blend(result.model, dataset, protocol, config, best_epoch=3, progress=False)
    assert reads and not set(reads) & set(protocol.query), "a test query was read to choose the blend"
    assert len(choice.held_out) == 2 and set(choice.held_out) < set(dataset.classes[:6])
    w = choice.weight
    assert w in BLEND_WEIGHTS and choice.new_classes[w] >= choice.new_classes[0.0]
    assert choice.trained_classes[w] >= choice.trained_classes[0.0] - TRAINED_TOLERANCE
    assert choice.own_model[w] >= choice.own_model[0.0] - TRAINED_TOLERANCE
    assert result.model.rerank_feature == "codes"                  # choosing leaves the model as it was


def test_the_report_saves_the_choice_with_the_model(six_cars):
    prepared, _, result, out = six_cars
    run = report_training(prepared, result, out, recipe="fast", recipe_lines=[], progress=False)
    loaded = load_model(out)
    saved = loaded.config["rerank_blend_choice"]
    assert loaded.rerank_blend == saved["weight"] and set(saved["new_classes"]) == {f"{w:g}" for w in BLEND_WEIGHTS}
    assert loaded.feature_dim == 64 + (1280 if saved["weight"] else 0)
    said = json.loads((out / "eval.json").read_text())["selection"]["rerank_blend"]
    assert said == run.selection["rerank_blend"] and "chosen on class-disjoint validation (held out: " in said


def test_runs_that_take_no_blend_say_why(six_cars):
    prepared, config, _, _ = six_cars
    dataset, protocol = prepared.dataset, prepared.protocol
    assert blend_unavailable(config, protocol, dataset) is None
    assert "fine-tuned" in blend_unavailable(replace(config, mode="finetune"), protocol, dataset)
    assert "not the pretrained pooled vector" in blend_unavailable(replace(config, head="fc"), protocol, dataset)
    three = replace(protocol, validation=[i for i in protocol.validation if dataset.labels([i])[0] < 3])
    assert "fewer than 4 classes" in blend_unavailable(config, three, dataset)
