"""Head and loss options, per-stage rates and the plateau schedule from the command line: parsed, passed to
TrainConfig, and checked (against the constructor, the stage names, the values) before any training starts."""
from __future__ import annotations

import re

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


def test_stage_rates_and_the_plateau_schedule_reach_the_training_settings():
    args = build_parser().parse_args(["train", "src", "--schedule", "plateau", "--plateau-factor", "0.5",
                                      "--plateau-patience", "3", "--stage-lr", "1-classifier=1e-2", "--stage-lr",
                                      " 3-hash = 1e-4", "--stage-weight-decay", "1-classifier=0.01"])
    config = TrainConfig(**train_overrides(args))
    assert (config.schedule, config.plateau_factor, config.plateau_patience) == ("plateau", 0.5, 3)
    assert config.stage_lr == {"1-classifier": 0.01, "3-hash": 1e-4}
    assert config.stage_weight_decay == {"1-classifier": 0.01}
    untouched = train_overrides(build_parser().parse_args(["train", "src"]))
    assert not set(untouched) & {"schedule", "plateau_factor", "plateau_patience", "stage_lr", "stage_weight_decay"}


def test_a_malformed_stage_value_is_a_user_error(capsys):
    for value in ("1-classifier", "1-classifier=fast", "=0.1"):
        assert main(["train", "src", "--stage-lr", value]) == 2
        err = capsys.readouterr().err
        assert f"--stage-lr takes STAGE=NUMBER (stages: all, 1-classifier, 2-bilinear, 3-hash), got {value!r}" in err


@pytest.mark.parametrize("flags, message", [
    (["--stage-lr", "9-head=0.1"], "name stages among"),
    (["--stage-lr", "all=-1"], "stage_lr values must be positive"),
    (["--stage-weight-decay", "all=nan"], "stage_weight_decay values >= 0"),
    (["--plateau-factor", "1.5"], "plateau_factor must be in (0, 1)"),
])
def test_bad_stage_and_plateau_settings_are_refused_by_the_config(flags, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        TrainConfig(**train_overrides(build_parser().parse_args(["train", "src", *flags])))
