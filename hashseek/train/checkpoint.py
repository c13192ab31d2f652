"""A training run's checkpoint: written atomically after every completed epoch, read back by ``resume``.

``trainer_state.pt`` holds the trainable weights, the optimizer, scheduler and selection states, the
RNG and the settings; ``loss_log.json`` the history so far, for people and plots.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from hashseek.core.atomic import atomic_path, atomic_write_json
from hashseek.core.errors import ConflictError, DamagedError
from hashseek.models.hash_model import HashModel
from hashseek.train.config import TrainConfig

STATE_FILE = "trainer_state.pt"
LOG_FILE = "loss_log.json"
RESUMABLE_CHANGES = {"epochs", "device", "validate_every", "patience", "max_minutes"}   # a resume may change these


def trainable_state(model: HashModel) -> dict[str, torch.Tensor]:
    """What a frozen run changes is the head; a fine-tuning run changes everything."""
    frozen = model.config.get("mode") == "frozen"
    return {k: v for k, v in model.state_dict().items() if not (frozen and k.startswith("backbone."))}


def save_checkpoint(out: Path, config: TrainConfig, model: HashModel, history: list[dict], epoch: int, step: int,
                    stage, optimizer, scheduler, selection) -> None:
    """The state after ``epoch`` (0-based) completed, replacing the previous one atomically."""
    out.mkdir(parents=True, exist_ok=True)
    state = {"model": trainable_state(model), "epoch": epoch + 1, "step": step, "history": history,
             "stage": stage.name, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "selection": selection.state_dict(), "rng": torch.get_rng_state(), "config": asdict(config)}
    with atomic_path(out / STATE_FILE) as tmp:
        torch.save(state, tmp)
    atomic_write_json(out / LOG_FILE, history, indent=1)


def load_checkpoint(out: Path, config: TrainConfig) -> dict | None:
    """The checkpoint to resume from (None: there is none); one written with other settings is refused
    (the run length, device, validation interval and patience may change)."""
    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:   # a checkpoint is written atomically, so this is damage, not a half write
        raise DamagedError(f"{path} cannot be read ({err}); delete it to train from the start") from err
    before, now = state.get("config", {}), asdict(config)
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and k in before and before[k] != now[k])
    if changed:
        raise ConflictError(f"{path} was written with other settings ({', '.join(changed)}): resume with the "
                            "same settings, or train into another folder")
    return state
