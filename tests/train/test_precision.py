"""bfloat16 fine-tuning: chosen only where the hardware runs it, the trunk alone under autocast, and a run
that trains with it saves float32 weights and says what it ran in."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashseek.core.errors import InvalidInputError
from hashseek.models.hash_model import HashModel, load_model
from hashseek.train import TrainConfig, Trainer
from hashseek.train.precision import autocast_dtype, trunk_forward

CPU = torch.device("cpu")


@pytest.mark.parametrize("flags, expected", [("fpu sse avx512f avx512_bf16", torch.bfloat16),
                                             ("fpu sse amx_bf16 amx_tile", torch.bfloat16),
                                             ("fpu sse avx2 avx512f", None)])
def test_auto_takes_bfloat16_only_on_a_cpu_with_bfloat16_instructions(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n")
    assert autocast_dtype("auto", CPU, str(cpuinfo)) is expected
    assert autocast_dtype("float32", CPU, str(cpuinfo)) is None
    assert autocast_dtype("bfloat16", CPU, str(cpuinfo)) is torch.bfloat16   # asked for: emulated if need be


def test_auto_keeps_float32_where_the_cpu_cannot_be_read(tmp_path):
    assert autocast_dtype("auto", CPU, str(tmp_path / "missing")) is None


def test_an_unknown_precision_is_refused():
    with pytest.raises(InvalidInputError, match="precision must be one of"):
        TrainConfig(precision="float16")


def test_the_trunk_runs_in_bfloat16_and_hands_float32_maps_to_the_head():
    torch.manual_seed(0)
    model = HashModel.build("efficientnet_lite0", "gap", 32, None, loss="csq").eval()
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        exact, reduced = trunk_forward(model.backbone, images, None), trunk_forward(model.backbone, images, torch.bfloat16)
    assert exact.dtype == reduced.dtype == torch.float32
    assert not torch.equal(exact, reduced)                         # the trunk did run in bfloat16
    assert torch.allclose(exact, reduced, atol=0.1 * float(exact.abs().max()))
    codes = model.head(exact).codes, model.head(reduced).codes
    assert float(((codes[0] >= 0) == (codes[1] >= 0)).float().mean()) > 0.9


def test_a_bfloat16_run_trains_saves_float32_weights_and_records_its_precision(cars_split, tmp_path):
    dataset, train, _, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=16, mode="finetune", epochs=2, batch_size=8, input_size=64,
                         frozen_stages=3, precision="bfloat16", seed=0)
    result = Trainer(config, progress=False).fit(dataset, train[::2], out_dir=tmp_path)
    assert all(np.isfinite(h["loss"]) for h in result.history)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    saved = load_model(tmp_path)
    assert saved.config["trained_precision"] == "bfloat16" and saved.config["train"]["precision"] == "bfloat16"
