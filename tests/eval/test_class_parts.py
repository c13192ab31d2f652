"""A model's own classifier beside its code vote, and the seen- and unseen-class queries apart, on a small
real split of cars-bmw13 (tests/eval/conftest.py: 3 BMW models, the third never trained on)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hashseek.core.bits import hamming_distances
from hashseek.eval.report_tables import class_sections, classifier_table
from hashseek.eval.runner import class_parts
from hashseek.train import TrainConfig, Trainer
from hashseek.train.evaluator import EncodingMemo, encode_ids, evaluate_split

PER_QUERY = ("map_all", "precision_at_20", "vote_accuracy_top8")   # means over queries: the parts add up


@pytest.fixture(scope="module")
def latent_model(cars_bmw13, tiny_protocol):
    """latent+ce (a classifier on the codes) trained 3 epochs on the two seen models' frozen maps."""
    config = TrainConfig(head="latent", loss="ce", bits=16, epochs=3, seed=0)
    return Trainer(config, progress=False).fit(cars_bmw13, tiny_protocol.train).model


def test_classifier_accuracy_is_the_saved_models_top1_on_the_queries(latent_model, cars_bmw13, tiny_protocol):
    record = evaluate_split(latent_model, cars_bmw13, tiny_protocol.query, tiny_protocol.database, progress=False)
    # the evaluator reads the head on cached maps; the exported ONNX graph (images -> logits) must agree
    images = np.stack([latent_model.preprocess(cars_bmw13.read_bytes(i)) for i in tiny_protocol.query])
    expected = latent_model.classify_arrays(images).argmax(axis=1)
    labels = cars_bmw13.labels(tiny_protocol.query)
    np.testing.assert_array_equal(record.query.predicted, expected)
    assert record.figures["classifier_accuracy"] == pytest.approx(np.mean(expected == labels))
    # a memo serves the same predictions for a subset, in the subset's order
    memo = EncodingMemo(lambda ids: encode_ids(latent_model, cars_bmw13, ids, progress=False))
    memo(tiny_protocol.query)
    subset = tiny_protocol.query[::-3]
    np.testing.assert_array_equal(memo(subset)[0].predicted, expected[::-3])


def test_models_without_a_classifier_report_none(small_runs):
    for r in small_runs:
        assert "classifier_accuracy" not in r["figures"]
        assert "classifier_accuracy" not in r["seen"] and "classifier_accuracy" not in r["unseen"]
    assert classifier_table(small_runs) is None


def test_seen_and_unseen_parts_add_up_to_the_whole(small_runs, tiny_protocol):
    seen_classes = ["BMW_1_Series_Convertible_2012", "BMW_3_Series_Wagon_2012"]
    for r in small_runs:
        seen, unseen = r["seen"], r["unseen"]
        assert (seen["classes"], unseen["classes"]) == (seen_classes, tiny_protocol.unseen_classes)
        assert (seen["n_query"], unseen["n_query"], seen["n_database"]) == (8, 4, 24)
        for key in PER_QUERY:
            assert (8 * seen[key] + 4 * unseen[key]) / 12 == pytest.approx(r["figures"][key]), (r["method"], key)
        assert np.array(seen["confusion_matrix"]).sum() == 8


def test_classifier_parts_and_the_page_tables(latent_model, cars_bmw13, tiny_protocol, small_runs):
    result = evaluate_split(latent_model, cars_bmw13, tiny_protocol.query, tiny_protocol.database, progress=False)
    q, d = result.query, result.database
    parts = class_parts(hamming_distances(q.codes, d.codes), q.labels, d.labels, cars_bmw13.classes,
                        tiny_protocol.unseen_classes, 16, q.predicted)
    unseen = np.isin(q.labels, [cars_bmw13.classes.index(c) for c in tiny_protocol.unseen_classes])
    for part, rows in (("seen", ~unseen), ("unseen", unseen)):
        assert parts[part]["classifier_accuracy"] == pytest.approx(np.mean(q.predicted[rows] == q.labels[rows]))
    assert (8 * parts["seen"]["classifier_accuracy"] + 4 * parts["unseen"]["classifier_accuracy"]) / 12 == \
        pytest.approx(result.figures["classifier_accuracy"])

    record = {**small_runs[-1], "method": "latent+ce", "figures": {**small_runs[-1]["figures"], **result.figures},
              **parts}
    f = result.figures
    row = (f"| latent+ce | {record['mode']} | 16 | {f['classifier_accuracy']:.4f} | {f['vote_accuracy_top8']:.4f} | "
           f"{f['vote_accuracy_top8'] - f['classifier_accuracy']:+.4f} | {parts['seen']['classifier_accuracy']:.4f} | "
           f"{parts['seen']['vote_accuracy_top8']:.4f} | {parts['unseen']['classifier_accuracy']:.4f} | "
           f"{parts['unseen']['vote_accuracy_top8']:.4f} |")
    assert row in classifier_table([*small_runs, record]).splitlines()
    text = "\n".join(class_sections([*small_runs, record], [16]))
    lsh = small_runs[0]
    assert f"| lsh | {lsh['mode']} | {lsh['seen']['map_all']:.4f} / {lsh['unseen']['map_all']:.4f} |" in text
    assert "Own classifier vs code vote" in text


def test_a_train_runs_report_keeps_its_seen_and_unseen_queries_apart_for_the_page(latent_model, cars_bmw13,
                                                                                 tiny_protocol, tmp_path, capsys):
    """eval.json holds the two parts' headline figures, `hashseek train` prints them, and the results page's
    trained-run tables show them side by side (mean over the runs of one setting)."""
    from types import SimpleNamespace

    from hashseek.cli.train import print_figures
    from hashseek.eval.run_report import write_run_report
    from hashseek.eval.trained_runs import trained_record, trained_tables

    test = evaluate_split(latent_model, cars_bmw13, tiny_protocol.query, tiny_protocol.database, progress=False)
    write_run_report(tmp_path, latent_model, cars_bmw13, tiny_protocol, test, None, source="cars", recipe=None,
                     recipe_lines=[], selection={}, train_seconds=1.0, history=[],
                     settings={"head": "latent", "loss": "ce", "bits": 16, "backbone": "efficientnet_lite0",
                               "mode": "frozen"})
    report = json.loads((tmp_path / "eval.json").read_text())
    q, d = test.query, test.database
    parts = class_parts(hamming_distances(q.codes, d.codes), q.labels, d.labels, cars_bmw13.classes,
                        tiny_protocol.unseen_classes, 16, q.predicted)
    for part in ("seen", "unseen"):
        kept = report["test"][part]
        assert "confusion_matrix" not in kept and "precision_curve" not in kept
        assert {k: kept[k] for k in ("map_all", "vote_accuracy_top8", "classifier_accuracy", "n_query")} == \
            {k: parts[part][k] for k in ("map_all", "vote_accuracy_top8", "classifier_accuracy", "n_query")}
    print_figures(SimpleNamespace(validation=None, test=test.to_dict()), tmp_path)
    printed = capsys.readouterr().out
    assert f"unseen (4 queries of classes never trained on): mAP@all {parts['unseen']['map_all']:.4f}" in printed
    assert "seen (8 queries of the trained classes)" in printed
    record = trained_record(report)
    lines = "\n".join(trained_tables([record])).splitlines()
    seen, unseen = parts["seen"], parts["unseen"]
    row = [line for line in lines if line.startswith("| latent+ce |") and "| 8 | 4 |" in line]
    assert len(row) == 1
    assert f"| {seen['map_all']:.3f} / {unseen['map_all']:.3f} | {seen['vote_accuracy_top8']:.3f} / " \
           f"{unseen['vote_accuracy_top8']:.3f} | {seen['classifier_accuracy']:.3f} |" in row[0]
    without = trained_record({**report, "test": {k: v for k, v in report["test"].items() if k not in parts}})
    assert not any("8 | 4 |" in line for line in trained_tables([without]))   # no parts: no such table
