"""Fine-tuning with the trunk's first stages kept: those weights never move, the later ones do, and the
stages of every backbone cover its parameters."""
from __future__ import annotations

import pytest
import torch

from hashseek.core.errors import InvalidInputError
from hashseek.models.backbones import create_backbone, list_backbones
from hashseek.train import TrainConfig, Trainer


@pytest.mark.parametrize("name", list_backbones())
def test_the_stages_partition_the_trunk_in_forward_order(name):
    trunk = create_backbone(name, pretrained=name.startswith(("efficientnet", "mobilenet")))
    stages = trunk.stages()
    ids = [id(p) for stage in stages for p in stage.parameters()]
    assert len(stages) >= 3 and len(ids) == len(set(ids)) == len(list(trunk.parameters()))
    assert len(trunk.tuned_parameters(2)) < len(trunk.tuned_parameters(1)) < len(trunk.tuned_parameters(0))
    with pytest.raises(InvalidInputError, match=f"has {len(stages)} stages"):
        trunk.tuned_parameters(len(stages))


def test_efficientnet_stages_end_where_the_width_changes():
    stages = create_backbone("efficientnet_lite1").stages()
    widths = [[m.out_channels for m in s.modules() if isinstance(m, torch.nn.Conv2d)][-1] for s in stages]
    assert widths == [16, 24, 40, 80, 112, 192, 1280]


def test_frozen_stages_keep_their_pretrained_weights_and_the_rest_moves(cars_split):
    dataset, train, _, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=16, mode="finetune", epochs=2, batch_size=8, input_size=64,
                         frozen_stages=3, backbone_lr_scale=1.0)
    model = Trainer(config, progress=False).fit(dataset, train[::2]).model
    pretrained = create_backbone("efficientnet_lite0").state_dict()
    stages = model.backbone.stages()
    names = {id(p): n for n, p in model.backbone.named_parameters()}
    kept = [names[id(p)] for stage in stages[:3] for p in stage.parameters()]
    moved = [names[id(p)] for stage in stages[3:] for p in stage.parameters()]
    state = model.backbone.state_dict()
    assert all(torch.equal(state[n], pretrained[n]) for n in kept)
    assert sum(not torch.equal(state[n], pretrained[n]) for n in moved) > len(moved) // 2


def test_more_frozen_stages_than_the_trunk_has_fail_before_training(cars_split):
    dataset, train, _, _ = cars_split
    with pytest.raises(InvalidInputError, match="frozen_stages must be in 0..6"):
        Trainer(TrainConfig(mode="finetune", epochs=1, frozen_stages=7), progress=False).fit(dataset, train)
    with pytest.raises(InvalidInputError, match="frozen_stages must be >= 0"):
        TrainConfig(frozen_stages=-1)
