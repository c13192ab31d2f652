"""Head and loss options from the command line: parsed, passed to TrainConfig, and checked against the
constructor before any training starts."""
from __future__ import annotations

import pytest

from hashseek.cli import build_parser, main
from hashseek.cli.train import train_overrides
from hashseek.core.errors import InvalidInputError
from hashseek.train import TrainConfig


def test_options_reach_the_training_settings_with_json_values():
    args = build_parser().parse_args(["train", "src", "--head", "netvlad", "--head-option", "clusters=64",
                                      "--loss", "dpsh", "--loss-option", "bank=true", "--loss-option", "eta=0.5"])
    given = train_overrides(args)
    assert given["head_kwargs"] == {"clusters": 64} and given["loss_kwargs"] == {"bank": True, "eta": 0.5}
    config = TrainConfig(**given)
    assert config.head_kwargs["clusters"] == 64 and config.loss_kwargs["bank"] is True


def test_an_option_the_constructor_does_not_take_is_refused_with_the_ones_it_does():
    with pytest.raises(InvalidInputError, match=r"no option clusterz; its options: clusters"):
        TrainConfig(head="netvlad", head_kwargs={"clusterz": 64})
    with pytest.raises(InvalidInputError, match=r"loss 'dpsh' takes no option n_bits"):
        TrainConfig(loss="dpsh", loss_kwargs={"n_bits": 12})   # the factory's own argument, not an option


def test_a_malformed_option_is_a_user_error(capsys):
    assert main(["train", "src", "--head-option", "clusters"]) == 2
    assert "--head-option takes KEY=VALUE, got 'clusters'" in capsys.readouterr().err
