"""A trained classifier's probabilities are calibrated on validation: at the end of training, and for a model saved
before by ``hashseek calibrate``; on a small real slice of Caltech101."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hashseek.cli import main
from hashseek.core.calibration import softmax
from hashseek.data.protocols import Protocol
from hashseek.models.hash_model import load_model
from hashseek.search.collection import Collection
from hashseek.train import TrainConfig, Trainer, evaluate_split


@pytest.fixture(scope="module")
def calibrated_run(caltech101, tmp_path_factory):
    """Five look-alike classes (crab, crayfish, lobster, scorpion, ant), 10 images each: a classifier that errs
    on validation, as the easy slice's does not."""
    dataset = caltech101
    ids = [i for cls in ("crab", "crayfish", "lobster", "scorpion", "ant")
           for i in [i for i in dataset.ids if i.startswith(cls + "/")][:10]]
    train = [i for n, i in enumerate(ids) if n % 10 < 5]
    val = [i for n, i in enumerate(ids) if n % 10 in (5, 6, 7)]
    query = [i for n, i in enumerate(ids) if n % 10 >= 8]
    out = tmp_path_factory.mktemp("calibrated") / "run"
    config = TrainConfig(head="gap", loss="csq", bits=16, epochs=6, batch_size=16, seed=0)
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=val, out_dir=out)
    Protocol("slice", dataset.name, 0, "5 look-alike Caltech101 classes", query, train + val, train,
             validation=val).save(out / "split.json.gz")
    return result, dataset, out, query


def test_training_ends_with_a_temperature_fitted_on_validation(calibrated_run):
    result, dataset, out, query = calibrated_run
    record = result.model.config["calibration"]
    assert record["fitted_on"] == "15 validation images"
    assert record["temperature"] > 1.0   # CSQ's centre likelihoods are overconfident
    assert record["validation_after"]["nll"] < record["validation_before"]["nll"]
    assert record["validation_after"]["accuracy"] == record["validation_before"]["accuracy"]
    model = load_model(out)
    assert model.classifier_temperature == pytest.approx(record["temperature"])
    images = np.stack([model.preprocess(dataset.read_bytes(i)) for i in query])
    _, _, logits = model.infer_logits(images)
    np.testing.assert_allclose(model.classify_arrays(images), softmax(logits), atol=1e-5)
    raw = model.infer_logits(images)[2] * model.classifier_temperature
    assert (logits.argmax(axis=1) == raw.argmax(axis=1)).all()
    figures = evaluate_split(model, dataset, query, Protocol.load(out / "split.json.gz").train, progress=False).figures
    calibration = figures["classifier_calibration"]
    assert 0.0 <= calibration["ece"] <= 1.0 and calibration["confidence"] < 0.999


def test_calibrate_fits_a_model_saved_before_in_place(calibrated_run, tmp_path, capsys):
    """... and a collection built with the uncalibrated model takes the calibrated one at once (same codes)."""
    result, dataset, out, query = calibrated_run
    config = json.loads((out / "config.json").read_text())
    fitted = config.pop("classifier_temperature")
    config.pop("calibration")
    (out / "config.json").write_text(json.dumps(config))   # as saved before models were calibrated
    assert load_model(out).classifier_temperature == 1.0
    with Collection.create(tmp_path / "C", load_model(out)) as collection:
        collection.add_dataset(dataset, query, progress=False)
    assert main(["calibrate", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "classifier temperature" in printed and "expected calibration error" in printed
    assert load_model(out).classifier_temperature == pytest.approx(fitted, rel=1e-3)
    assert json.loads((out / "config.json").read_text())["calibration"]["fitted_on"] == "15 validation images"
    assert "`hashseek reindex COLLECTION --model" in printed
    assert main(["reindex", str(tmp_path / "C"), "--model", str(out), "-q"]) == 0
    assert "kept 10 codes as they were" in capsys.readouterr().out
    assert main(["calibrate", str(out), "-q"]) == 0   # fitted again on the same images: the same temperature
    assert "did not change: collections built with this model need nothing" in capsys.readouterr().out
    with Collection.open(tmp_path / "C") as collection:
        assert collection.info()["hasher"]["classifier_temperature"] == pytest.approx(fitted, rel=1e-3)


def test_calibrate_refuses_a_split_without_validation_images(calibrated_run, tmp_path, capsys):
    result, dataset, out, query = calibrated_run
    split = Protocol("no-val", dataset.name, 0, "no validation", query, query, [])
    split.save(tmp_path / "split.json.gz")
    assert main(["calibrate", str(out), "--split", str(tmp_path / "split.json.gz")]) != 0
    assert "no validation images" in capsys.readouterr().err


def test_eval_reports_how_far_the_classifier_can_be_trusted(calibrated_run, capsys):
    result, dataset, out, query = calibrated_run
    assert main(["eval", "--model", str(out), "-q"]) == 0
    assert "own classifier's probabilities: mean confidence" in capsys.readouterr().out
    report = json.loads((out / "eval" / "eval.json").read_text())
    calibration = report["test"]["classifier_calibration"]
    assert 0 < calibration["confidence"] <= 1 and 0 <= calibration["ece"] <= 1 and calibration["bins"] == 15
    summary = (out / "eval" / "summary.md").read_text()
    assert "| own classifier's expected calibration error |" in summary
    temperature = load_model(out).classifier_temperature
    assert f"divided by a temperature of {temperature:.3g} fitted on the validation images" in summary
