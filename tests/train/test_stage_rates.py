"""Bilinear-HashNet's recipe as settings: per-stage learning rates and weight decays, reduce-on-plateau."""
import pytest
import torch

from hashseek.core.errors import InvalidInputError
from hashseek.train import TrainConfig, Trainer
from hashseek.train.schedule import Rate, plan_stages


@pytest.fixture(scope="module")
def shapes(image_set):
    """The shipped generated images: 5 training and 3 validation images of each of the 4 classes."""
    dataset, ids = image_set
    return dataset, [i for n, i in enumerate(ids) if n % 8 < 5], [i for n, i in enumerate(ids) if n % 8 >= 5]


def test_plateau_rate_drops_after_patience_validations_without_a_better_map():
    rate = Rate("plateau", total=100)
    for improved in (True, False, False):      # patience 2: two bad validations are tolerated
        rate.observe(improved, patience=2, factor=0.5)
    assert rate(10) == 1.0
    rate.observe(False, patience=2, factor=0.5)
    assert rate(10) == 0.5 and rate.bad == 0
    rate.observe(True, patience=2, factor=0.5)
    rate.observe(False, patience=2, factor=0.5)
    assert rate(50) == 0.5                      # an improvement reset the count


def test_each_bilinear_stage_gets_its_own_rate_and_weight_decay(shapes):
    dataset, train, _ = shapes
    config = TrainConfig(head="bilinear", loss="hashnet", bits=16, epochs=3, batch_size=8, schedule="constant",
                         stage_lr={"1-classifier": 0.02, "3-hash": 0.005}, stage_weight_decay={"2-bilinear": 0.1})
    result = Trainer(config, progress=False).fit(dataset, train)
    assert [(h["stage"], h["lr"]) for h in result.history] == [("1-classifier", 0.02), ("2-bilinear", 1e-3),
                                                               ("3-hash", 0.005)]
    trainer = Trainer(config, progress=False)
    stages = plan_stages(result.model, 3)
    decays = [trainer._optimizer(result.model, s, 1)[0].param_groups[0]["weight_decay"] for s in stages]
    assert decays == [1e-5, 0.1, 1e-5]


def test_plateau_schedule_reduces_the_rate_when_validation_stalls(shapes, tmp_path):
    dataset, train, validation = shapes
    # lr 0: the weights never change, so every validation after the first is no better
    config = TrainConfig(head="gap", loss="hashnet", bits=16, epochs=4, batch_size=8, lr=0.0, schedule="plateau",
                         plateau_factor=0.5, plateau_patience=1, validate_every=1, patience=0)
    Trainer(config, progress=False).fit(dataset, train, validation_ids=validation, out_dir=tmp_path)
    state = torch.load(tmp_path / "trainer_state.pt", weights_only=False)
    assert state["scheduler"]["lr_lambdas"][0]["scale"] == 0.5   # epochs 2 and 3 stalled: one reduction; 4: one more bad


def test_stage_settings_name_known_stages():
    with pytest.raises(InvalidInputError, match="stage_lr"):
        TrainConfig(stage_lr={"classifier": 0.01})
    with pytest.raises(InvalidInputError, match="plateau_factor"):
        TrainConfig(schedule="plateau", plateau_factor=1.5)
