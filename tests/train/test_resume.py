"""A run killed with SIGKILL resumes from its last completed epoch, warm-up and selection state included."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from hashseek.train import TrainConfig, Trainer

CONFIG = dict(head="gap", loss="csq", bits=16, mode="finetune", epochs=10, batch_size=4, input_size=64,
              warmup_epochs=3, validate_every=1, patience=0, lr=1e-3)


def _train_in_a_subprocess(out, ids) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(1)
        from hashseek.data.named import load_dataset
        from hashseek.train import TrainConfig, Trainer
        ids = {ids!r}
        Trainer(TrainConfig(**{CONFIG!r}), progress=False).fit(
            load_dataset("cars-bmw13"), ids[0], validation_ids=ids[1], out_dir={str(out)!r})
    """)
    return subprocess.Popen([sys.executable, "-c", script], env={**os.environ}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _epochs_logged(path) -> int:
    try:
        return len([h for h in json.loads(path.read_text()) if not h["stage"].startswith("warmup")])
    except (OSError, ValueError):
        return 0


def test_a_run_killed_with_sigkill_resumes_from_its_last_epoch(cars_split, tmp_path):
    dataset, train, validation, _ = cars_split
    train, validation = train[::2], validation[::3]          # 12 + 4 photos: about a second an epoch
    out = tmp_path / "run"
    process = _train_in_a_subprocess(out, (train, validation))
    deadline = time.monotonic() + 600
    while _epochs_logged(out / "loss_log.json") < 2:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the subprocess logged no fine-tuning epoch in 10 minutes"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = torch.load(out / "trainer_state.pt", weights_only=False)
    done = state["epoch"]
    assert 2 <= done < CONFIG["epochs"], "killed too late to test anything"
    assert (out / "warmup" / "trainer_state.pt").is_file()          # the warm-up checkpointed its own epochs
    before = state["history"]
    assert [h["stage"] for h in before[:3]] == ["warmup-all"] * 3

    resumed = Trainer(TrainConfig(**CONFIG), progress=False).fit(dataset, train, validation_ids=validation,
                                                                 out_dir=out, resume=True)
    history = resumed.history
    assert history[:len(before)] == before                            # nothing before the kill was redone
    assert [h["epoch"] for h in history[3:]] == list(range(1, CONFIG["epochs"] + 1))
    assert all("val_map" in h for h in history[3:])
    best = max(h["val_map"] for h in history[3:])
    assert resumed.selection["best_val_map"] >= best or resumed.selection["kept"].startswith("warm-up")
    assert json.loads((out / "loss_log.json").read_text()) == json.loads(json.dumps(history))


def test_an_interrupted_frozen_run_resumes_to_the_uninterrupted_weights(cars_split, tmp_path):
    dataset, train, validation, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=16, epochs=6, batch_size=8, schedule="constant",
                         validate_every=1, patience=0)
    full = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation, out_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    class StopAfter(Trainer):
        """Interrupts the run as Ctrl-C would, after its third checkpoint."""

        def _checkpoint(self, out, model, history, epoch, *rest):
            super()._checkpoint(out, model, history, epoch, *rest)
            if epoch + 1 == 3:
                raise Stop

    try:
        StopAfter(config, progress=False).fit(dataset, train, validation_ids=validation, out_dir=tmp_path / "b")
    except Stop:
        pass
    resumed = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation, out_dir=tmp_path / "b",
                                                  resume=True)
    assert [h["epoch"] for h in resumed.history] == list(range(1, 7))
    assert [h["val_map"] for h in resumed.history] == [h["val_map"] for h in full.history]
    assert resumed.selection["best_epoch"] == full.selection["best_epoch"]
    for key, value in full.model.head.state_dict().items():
        torch.testing.assert_close(resumed.model.head.state_dict()[key], value)


def test_resuming_with_other_settings_is_refused(cars_split, tmp_path):
    from hashseek.core.errors import ConflictError

    dataset, train, _, _ = cars_split
    Trainer(TrainConfig(head="gap", loss="csq", bits=16, epochs=2, batch_size=8), progress=False) \
        .fit(dataset, train, out_dir=tmp_path)
    with pytest.raises(ConflictError, match="other settings .bits"):
        Trainer(TrainConfig(head="gap", loss="csq", bits=32, epochs=4, batch_size=8), progress=False) \
            .fit(dataset, train, out_dir=tmp_path, resume=True)
