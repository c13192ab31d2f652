"""The seeds' networks train: a local weights file or random initialisation, and a clear error without either."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashseek.core.errors import InvalidInputError
from hashseek.models.backbones import create_backbone
from hashseek.models.hash_model import load_model
from hashseek.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def small(cars_split):
    dataset, train, validation, _ = cars_split
    return dataset, train[::2], validation[::3]


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "vgg19", "im_alexnet"])
def test_a_backbone_without_bundled_weights_names_both_options(small, name):
    dataset, train, _ = small
    with pytest.raises(InvalidInputError, match="--backbone-weights FILE.*--random-init"):
        Trainer(TrainConfig(backbone=name, epochs=1), progress=False).fit(dataset, train)


def test_random_init_and_a_weights_file_contradict():
    with pytest.raises(InvalidInputError, match="contradict"):
        TrainConfig(random_init=True, backbone_weights="w.pt")


def test_a_weights_file_trains_and_the_saved_model_reloads_it(small, tmp_path):
    dataset, train, validation = small
    torch.manual_seed(3)
    weights = tmp_path / "im_alexnet.pt"
    torch.save(create_backbone("im_alexnet", pretrained=False).state_dict(), weights)
    config = TrainConfig(backbone="im_alexnet", backbone_weights=str(weights), head="gap", loss="csq", bits=16,
                         epochs=3, batch_size=4)
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation, out_dir=tmp_path / "m")
    saved = (tmp_path / "m" / "model.safetensors").stat().st_size
    assert saved < 1_000_000                      # frozen: the head only; the trunk is reloaded from the file
    loaded = load_model(tmp_path / "m")
    assert loaded.config["backbone_weights"] == "file" and loaded.config["weights_file"] == str(weights)
    images = [dataset.read_bytes(i) for i in validation]
    np.testing.assert_array_equal(loaded.encode(images)[0], result.model.encode(images)[0])


def test_random_init_trains_and_the_checkpoint_holds_the_trunk(small, tmp_path):
    dataset, train, validation = small
    config = TrainConfig(backbone="im_alexnet", random_init=True, head="gap", loss="csq", bits=16, epochs=3,
                         batch_size=4, seed=5)
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation, out_dir=tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config["backbone_weights"] == "in checkpoint"
    images = [dataset.read_bytes(i) for i in validation]
    np.testing.assert_array_equal(loaded.encode(images)[0], result.model.encode(images)[0])
    assert np.isfinite(result.history[-1]["loss"])


def test_a_fine_tuned_efficientnet_from_a_weights_file_keeps_its_weights_in_the_checkpoint(small, tmp_path):
    dataset, train, _ = small
    weights = tmp_path / "lite0.pt"
    torch.save(create_backbone("efficientnet_lite0").net.state_dict(), weights)   # the package's own layout
    config = TrainConfig(backbone_weights=str(weights), head="gap", loss="csq", bits=16, mode="finetune", epochs=1,
                         batch_size=4, input_size=64)
    result = Trainer(config, progress=False).fit(dataset, train, out_dir=tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config["backbone_weights"] == "in checkpoint"
    for key, value in result.model.backbone.state_dict().items():
        assert torch.equal(loaded.backbone.state_dict()[key], value), key
