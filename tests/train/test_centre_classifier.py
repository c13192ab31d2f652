"""A CSQ model classifies by its hash centres: the likelihoods, the trained model's classifier figure, the saved
checkpoint and a collection's ``classifier`` method, on a small real slice of Caltech101."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hashseek.models.hash_model import CENTRES_KEY, HashModel, load_model
from hashseek.models.heads.centres import CentreClassifier, hash_centres
from hashseek.search import Collection
from hashseek.train import TrainConfig, Trainer, evaluate_split


def test_the_likelihoods_pick_the_centre_the_codes_aim_at_whatever_the_code_range():
    centres = hash_centres(5, 16, seed=0)
    for code_range, codes in (("tanh", 0.6 * centres), ("sigmoid", (0.6 * centres + 1) / 2)):
        logits = CentreClassifier(centres, code_range)(codes)
        assert logits.argmax(dim=1).tolist() == list(range(5))
        assert torch.all(logits <= 0)                      # log-likelihoods of probabilities
    uncertain = CentreClassifier(centres, "tanh")(torch.zeros(1, 16))
    assert torch.allclose(uncertain, uncertain[0, :1].expand_as(uncertain))   # no bit leans: every class alike
    # a sure bit outweighs several that barely lean: Hamming distance would say class 0, the likelihood class 1
    codes = centres[0].clone().mul(0.05)
    flipped = (centres[0] != centres[1]).nonzero()[0, 0]
    codes[flipped] = centres[1, flipped] * 0.99
    assert (codes.sign()[None] != centres).sum(dim=1).argmin() == 0
    assert CentreClassifier(centres, "tanh")(codes[None])[0].argmax() == 1


@pytest.fixture(scope="module")
def csq_run(caltech_slice):
    dataset, ids = caltech_slice
    train = [i for n, i in enumerate(ids) if n % 10 < 6]
    query = [i for n, i in enumerate(ids) if n % 10 >= 6]
    config = TrainConfig(head="gap", loss="csq", bits=16, epochs=6, batch_size=16, seed=0)
    return Trainer(config, progress=False).fit(dataset, train), dataset, train, query


def test_a_csq_model_reports_its_centres_classifier_beside_the_vote(csq_run, tmp_path):
    result, dataset, train, query = csq_run
    model = result.model
    assert model.has_classifier and model.describe()["classifier"] is True
    figures = evaluate_split(model, dataset, query, train, progress=False).figures
    assert figures["classifier_accuracy"] >= 0.8            # 5 distinct Caltech101 classes
    # the exported graph (images -> probabilities) agrees with the evaluator, and survives save + load
    images = np.stack([model.preprocess(dataset.read_bytes(i)) for i in query])
    probabilities = model.classify_arrays(images)
    assert probabilities.shape == (len(query), len(dataset.classes))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert np.mean(probabilities.argmax(axis=1) == dataset.labels(query)) == pytest.approx(
        figures["classifier_accuracy"])
    reloaded = load_model(model.save(tmp_path / "model"))
    assert reloaded.has_classifier
    np.testing.assert_array_equal(reloaded.classify_arrays(images).argmax(axis=1), probabilities.argmax(axis=1))
    # a checkpoint saved before the centres were kept with the weights gets them back from its settings
    weights = tmp_path / "model" / "model.safetensors"
    save_file({k: v for k, v in load_file(str(weights)).items() if k != CENTRES_KEY}, str(weights))
    older = load_model(tmp_path / "model")
    np.testing.assert_allclose(older.classify_arrays(images), reloaded.classify_arrays(images), atol=1e-6)
    with Collection.create(tmp_path / "C", image_hasher=reloaded) as c:
        c.add_dataset(dataset, train, progress=False)
        answer = c.classify(dataset.read_bytes(query[0]), method="classifier")
        assert answer.method == "classifier" and answer.label == dataset.classes[int(probabilities[0].argmax())]
        assert set(answer.classifier) == set(dataset.classes)


def test_a_finetuned_csq_checkpoint_saved_without_its_centres_loads_with_them(tmp_path):
    """A fine-tuned checkpoint holds every weight and is loaded strictly: the rebuilt centres must fit in."""
    model = HashModel.build("efficientnet_lite0", "gap", 16, loss="csq", mode="finetune", input_size=64,
                            classes=["a", "b", "c"])
    model.save(tmp_path / "m")
    assert CENTRES_KEY not in load_file(str(tmp_path / "m" / "model.safetensors"))
    loaded = load_model(tmp_path / "m")
    assert loaded.has_classifier
    assert torch.equal(loaded.head.centre_classifier.centres, hash_centres(3, 16, seed=0))
    # a head with a classifier of its own keeps it and gets no centres
    latent = HashModel.build("efficientnet_lite0", "latent", 16, 3, loss="csq", mode="finetune", input_size=64,
                             classes=["a", "b", "c"])
    loaded = load_model(latent.save(tmp_path / "latent"))
    assert loaded.has_classifier and loaded.head.centre_classifier is None
