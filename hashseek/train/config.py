"""Every training setting and its default, defined once: the CLI, the recipes and the runner read them here."""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import torch

from hashseek.core.errors import InvalidInputError
from hashseek.losses import LOSSES
from hashseek.models.hash_model import HashModel
from hashseek.models.heads import HEADS
from hashseek.train.precision import PRECISIONS

MODES = ("frozen", "finetune")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("cosine", "step", "constant", "plateau")
STAGE_NAMES = ("all", "1-classifier", "2-bilinear", "3-hash")   # train/schedule.py plan_stages' stages


@dataclass
class TrainConfig:
    backbone: str = "efficientnet_lite0"
    head: str = "gap"
    loss: str = "hashnet"
    bits: int = 64
    mode: str = "frozen"
    epochs: int = 60
    batch_size: int = 64
    optimizer: str = "adam"              # adam | sgd (momentum 0.9) | rmsprop (DeepHash-pytorch's)
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1       # fine-tuning: the pretrained trunk learns slower
    backbone_lr_ramp_epochs: float = 1.0  # fine-tuning: the trunk's rate rises linearly from 0 over these epochs
    frozen_stages: int = 0               # fine-tuning: the trunk's first N stages keep their pretrained weights
                                         # and need no backward pass (Backbone.stages)
    precision: str = "float32"           # fine-tuning: the trunk's training steps in bfloat16 autocast (head, loss
                                         # and weights stay float32); auto = bfloat16 where the hardware has it
    weight_decay: float = 1e-5
    schedule: str = "cosine"             # cosine | step | constant | plateau (reduce-on-plateau of validation mAP)
    plateau_factor: float = 0.1          # plateau: the rate x this after more than plateau_patience validations
    plateau_patience: int = 2            # without a better validation mAP (no validation images: never reduced)
    stage_lr: dict = field(default_factory=dict)            # a stage's own rate (Bilinear-HashNet's recipe), e.g.
    stage_weight_decay: dict = field(default_factory=dict)  # {"1-classifier": 1e-2}; stages not named: lr, weight_decay
    continuation: bool = True            # tanh heads: beta = hashnet_beta_schedule(step)
    augment_copies: int = 0              # frozen: extra seed-augmented copies per training image
    augment: bool = True                 # finetune: online seed augmentation
    augment_kwargs: dict = field(default_factory=dict)   # SeedAugment settings (both modes), e.g. milder crops
    input_size: int | None = None        # None = the backbone's own size (frozen: the maps' input size)
    warmup_epochs: int = 0               # finetune: first this many epochs of the head alone on frozen maps
    mirror_average: bool = False         # the model encodes each image with its mirror, averaged (HashModel)
    backbone_weights: str | None = None  # a local state-dict file in the layout the backbone documents
    random_init: bool = False            # train the backbone from random weights (no bundled or given ones)
    validate_every: int = 0              # epochs between validations; 0 = the interval that keeps validation near
                                         # 10% of a frozen run's time, 25% of a fine-tuning run's (train/selection.py)
    patience: int | None = None          # stop after this many epochs without a better validation mAP;
                                         # None = a third of the epochs (at least 5), 0 = never stop early
    max_minutes: float | None = None     # a hard bound on Trainer.fit (map extraction, warm-up and validation
                                         # included): epochs re-planned to fit, stopped between batches at the
                                         # deadline; the best validated epoch is kept
    head_kwargs: dict = field(default_factory=dict)
    loss_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"                 # auto (CUDA when available) | cpu | cuda | cuda:N

    def __post_init__(self):
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.device == "auto" or self.device.startswith(("cpu", "cuda")),
             f"device must be auto, cpu or cuda[:N], got {self.device!r}"),
            (8 <= self.bits <= 1024, f"bits must be in 8..1024, got {self.bits}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.epochs >= 1 and self.batch_size >= 2, "epochs must be >= 1 and batch_size >= 2"),
            (self.frozen_stages >= 0, f"frozen_stages must be >= 0, got {self.frozen_stages}"),
            (self.validate_every >= 0 and (self.patience is None or self.patience >= 0),
             "validate_every and patience must be >= 0"),
            (self.max_minutes is None or self.max_minutes > 0, "max_minutes must be positive"),
            (0 < self.plateau_factor < 1 and self.plateau_patience >= 0,
             "plateau_factor must be in (0, 1) and plateau_patience >= 0"),
            (set(self.stage_lr) | set(self.stage_weight_decay) <= set(STAGE_NAMES),
             f"stage_lr and stage_weight_decay name stages among {STAGE_NAMES}, got "
             f"{sorted(set(self.stage_lr) | set(self.stage_weight_decay))}"),
            (all(_number(v) and v > 0 for v in self.stage_lr.values())
             and all(_number(v) and v >= 0 for v in self.stage_weight_decay.values()),
             f"stage_lr values must be positive and stage_weight_decay values >= 0, got {self.stage_lr} and "
             f"{self.stage_weight_decay}"),
            (not (self.random_init and self.backbone_weights),
             "random_init and backbone_weights contradict each other: give one (--random-init or --backbone-weights)"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInputError(message)
        _check_options("head", HEADS, self.head, self.head_kwargs)
        _check_options("loss", LOSSES, self.loss, self.loss_kwargs)

    @property
    def effective_patience(self) -> int:
        """Epochs without improvement before stopping; 0 = never."""
        return max(5, self.epochs // 3) if self.patience is None else self.patience


@dataclass
class TrainResult:
    model: HashModel
    history: list[dict]
    seconds: float
    selection: dict = field(default_factory=dict)   # how the returned weights were chosen (validation mAP, epoch)


def device_name(device: torch.device) -> str:
    """What a run trained on, for its checkpoint: ``cpu`` or ``cuda (NVIDIA H100 80GB HBM3)``."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def training_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; a named CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device


_FACTORY_ARGUMENTS = {"self", "in_channels", "n_bits", "n_classes"}   # what create_head / create_loss pass


def _number(value) -> bool:
    """A finite real number (not a bool, not NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_options(kind: str, registry, name: str, options: dict) -> None:
    """Refuse a head or loss option its constructor does not take, naming the ones it does."""
    if not options or name not in registry.names():
        return
    parameters = inspect.signature(registry.get(name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [k for k, p in parameters.items() if k not in _FACTORY_ARGUMENTS and p.kind is not p.VAR_POSITIONAL]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidInputError(f"{kind} {name!r} takes no option {', '.join(unknown)}; its options: "
                                f"{', '.join(accepted)}")
