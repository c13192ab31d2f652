"""The one training loop for every head and loss.

Two modes share it: ``frozen`` trains the head on cached backbone feature maps (minutes on
a CPU; the seed augmentation enters as cached augmented copies), ``finetune`` trains the
backbone and head end to end on decoded images with online seed augmentation, at a
reduced input size on CPU and at full size on a GPU (``device="auto"`` takes CUDA when
there is one; images are decoded and augmented on the CPU either way). Heads with a
staged schedule (Bilinear-HashNet) expose ``stage_parameters``; tanh heads get HashNet's
continuation (beta raised step by step).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from hashseek.data.augment import SeedAugment
from hashseek.data.augmented import AugmentedDataset
from hashseek.data.datasets import ImageDataset
from hashseek.data.images import load_image
from hashseek.data.loader import Preprocess, iter_batches
from hashseek.losses import create_loss, hashnet_beta_schedule
from hashseek.models.features import BackboneEncoder, extract_features
from hashseek.models.hash_model import HashModel
from hashseek.models.heads import TanhHead

MODES = ("frozen", "finetune")
LOGIT_LOSSES = {"ce", "multitask"}
CLASSIFIER_HEADS = {"latent", "spp_pmt", "bilinear"}


@dataclass
class TrainConfig:
    backbone: str = "efficientnet_lite0"
    head: str = "gap"
    loss: str = "hashnet"
    bits: int = 64
    mode: str = "frozen"
    epochs: int = 60
    batch_size: int = 64
    optimizer: str = "adam"              # adam | sgd (momentum 0.9)
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1       # fine-tuning: the pretrained trunk learns slower
    weight_decay: float = 1e-5
    schedule: str = "cosine"             # cosine | step | constant
    continuation: bool = True            # tanh heads: beta = hashnet_beta_schedule(step)
    augment_copies: int = 0              # frozen: extra seed-augmented copies per training image
    augment: bool = True                 # finetune: online seed augmentation
    augment_kwargs: dict = field(default_factory=dict)   # SeedAugment settings (both modes), e.g. milder crops
    input_size: int | None = None        # finetune: None = the backbone's own size
    warmup_epochs: int = 0               # finetune: first this many epochs of the head alone on frozen maps
    mirror_average: bool = False         # the model encodes each image with its mirror, averaged (HashModel)
    head_kwargs: dict = field(default_factory=dict)
    loss_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"                 # auto (CUDA when available) | cpu | cuda | cuda:N

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda")):
            raise ValueError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if not 8 <= self.bits <= 1024:
            raise ValueError(f"bits must be in 8..1024, got {self.bits}")


@dataclass
class TrainResult:
    model: HashModel
    history: list[dict]
    seconds: float


class Trainer:
    def __init__(self, config: TrainConfig, progress: bool = True):
        self.config = config
        self.progress = progress

    # -- public ------------------------------------------------------------------------
    def fit(self, dataset: ImageDataset, train_ids: Sequence[str], out_dir: str | Path | None = None,
            resume: bool = False, **provenance) -> TrainResult:
        """Train on ``train_ids``; with ``out_dir`` a checkpoint is written after every epoch and
        ``resume=True`` continues from it."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        n_classes = len(dataset.classes)
        needs_classes = cfg.loss in LOGIT_LOSSES or cfg.head in CLASSIFIER_HEADS
        model = HashModel.build(
            cfg.backbone, cfg.head, cfg.bits, n_classes if needs_classes else None,
            head_kwargs=cfg.head_kwargs, loss=cfg.loss, mode=cfg.mode, classes=dataset.classes,
            input_size=cfg.input_size, mirror_average=cfg.mirror_average, train=asdict(cfg), **provenance)
        loss_fn = create_loss(cfg.loss, cfg.bits, n_classes, **cfg.loss_kwargs)
        labels = torch.from_numpy(dataset.labels(train_ids))
        batches = self._frozen_batches(dataset, list(train_ids), model, labels) if cfg.mode == "frozen" \
            else self._finetune_batches(dataset, list(train_ids), model, labels)
        steps_per_epoch = math.ceil(batches.n_items / cfg.batch_size)
        stages = _stages(model, cfg.epochs)
        device = training_device(cfg.device)
        model.to(device)   # after the frozen maps were extracted: that runs on the CPU's ONNX graph
        loss_fn.to(device)

        start_epoch, history, step = 0, [], 0
        state_path = Path(out_dir) / "trainer_state.pt" if out_dir else None
        saved = torch.load(state_path, map_location=device, weights_only=False) \
            if resume and state_path and state_path.is_file() else None
        if saved:
            model.load_state_dict(saved["model"])
            start_epoch, history, step = saved["epoch"], saved["history"], saved["step"]
        elif cfg.mode == "finetune" and cfg.warmup_epochs:
            history = self._warm_up_head(model, dataset, train_ids, provenance)

        t0 = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)
        bar = tqdm(range(start_epoch, cfg.epochs), desc=f"train {cfg.head}+{cfg.loss} {cfg.bits}b",
                   disable=not self.progress, initial=start_epoch, total=cfg.epochs)
        optimizer = scheduler = None
        current_stage = None
        for epoch in bar:
            stage = stages[epoch]
            if stage is not current_stage:
                current_stage = stage
                optimizer, scheduler = self._optimizer(model, stage, steps_per_epoch)
                if saved and saved.get("stage") == stage.name and saved.get("optimizer"):
                    optimizer.load_state_dict(saved["optimizer"])
                    scheduler.load_state_dict(saved["scheduler"])
            stage_loss = create_loss("ce", cfg.bits, n_classes).to(device) if stage.classification_only else loss_fn
            self._train_mode(model)
            losses = []
            steps = tqdm(batches.epoch(epoch), total=steps_per_epoch, leave=False, desc=f"epoch {epoch + 1}",
                         disable=not self.progress or cfg.mode == "frozen")
            for inputs, y in steps:
                inputs, y = inputs.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if isinstance(model.head, TanhHead):
                    model.head.beta = hashnet_beta_schedule(step) if cfg.continuation else 1.0
                out = model.head(inputs) if cfg.mode == "frozen" else model(inputs)
                loss = stage_loss(out, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                step += 1
            record = {"epoch": epoch + 1, "stage": stage.name, "loss": float(np.mean(losses)),
                      "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", stage=stage.name)
            if out_dir:
                self._checkpoint(model, out_dir, history, epoch, step, stage, optimizer, scheduler)
        model.eval()
        model.to("cpu")   # encoding exports the model to ONNX Runtime on the CPU
        model.config.update(history=history, train_seconds=history[-1]["seconds"] if history else 0.0,
                            trained_on=device_name(device),
                            trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if out_dir:
            model.save(out_dir)
        return TrainResult(model, history, model.config["train_seconds"])

    # -- pieces ------------------------------------------------------------------------
    def _warm_up_head(self, model: HashModel, dataset, train_ids, provenance) -> list[dict]:
        """Fine-tuning starts from a head trained on frozen maps ("linear probe, then fine-tune"):
        a random head's first gradients would otherwise wreck the pretrained trunk, and on small
        sets the codes collapse (HashNet's loss stuck at 2 ln 2 in our cars-bmw13 runs)."""
        cfg = self.config
        frozen = replace(cfg, mode="frozen", epochs=cfg.warmup_epochs, warmup_epochs=0, input_size=None)
        warm = Trainer(frozen, progress=self.progress).fit(dataset, train_ids, **provenance)
        model.head.load_state_dict(warm.model.head.state_dict())
        return [{**record, "stage": f"warmup-{record['stage']}"} for record in warm.history]

    def _train_mode(self, model: HashModel) -> None:
        model.head.train()
        # Batch-norm statistics stay those of ImageNet: CPU batches are too small to re-estimate them.
        model.backbone.eval()

    def _optimizer(self, model: HashModel, stage: "_Stage", steps_per_epoch: int):
        cfg = self.config
        groups = [{"params": stage.head_params, "lr": cfg.lr}]
        if cfg.mode == "finetune" and stage.train_backbone:
            groups.append({"params": list(model.backbone.parameters()), "lr": cfg.lr * cfg.backbone_lr_scale})
        for p in model.parameters():
            p.requires_grad_(False)
        for g in groups:
            for p in g["params"]:
                p.requires_grad_(True)
        # fused kernels: one pass per step instead of several (Adam's step on spp_pmt's 55M weights: 0.70 -> 0.045 s)
        if cfg.optimizer == "adam":
            opt = torch.optim.Adam(groups, weight_decay=cfg.weight_decay, fused=True)
        elif cfg.optimizer == "sgd":
            opt = torch.optim.SGD(groups, momentum=0.9, weight_decay=cfg.weight_decay, fused=True)
        else:
            raise ValueError(f"optimizer must be adam or sgd, got {cfg.optimizer!r}")
        total = max(1, stage.epochs * steps_per_epoch)
        if cfg.schedule == "cosine":
            factor = lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total))  # noqa: E731
        elif cfg.schedule == "step":
            factor = lambda t: 0.1 ** (t // max(1, total // 3))  # noqa: E731
        elif cfg.schedule == "constant":
            factor = lambda t: 1.0  # noqa: E731
        else:
            raise ValueError(f"schedule must be cosine, step or constant, got {cfg.schedule!r}")
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def _checkpoint(self, model, out_dir, history, epoch, step, stage, optimizer, scheduler) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state = {"model": model.state_dict(), "epoch": epoch + 1, "step": step, "history": history,
                 "stage": stage.name, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        tmp = out_dir / "trainer_state.pt.part"
        torch.save(state, tmp)
        tmp.replace(out_dir / "trainer_state.pt")
        (out_dir / "loss_log.json").write_text(json.dumps(history, indent=1))

    def _frozen_batches(self, dataset, train_ids, model, labels) -> "_TensorBatches":
        """Cached conv maps of the training images, plus their seed-augmented copies if asked."""
        cfg = self.config
        encoder = BackboneEncoder(model.backbone, kind="map")
        maps = extract_features(dataset, train_ids, encoder=encoder, progress=self.progress)
        if len(maps.ids) != len(train_ids):
            labels = torch.from_numpy(dataset.labels(maps.ids))
        parts, part_labels = [maps.features], [labels]
        if cfg.augment_copies:
            augmented = AugmentedDataset(dataset, maps.ids, cfg.augment_copies, seed=cfg.seed,
                                         augment=SeedAugment(**cfg.augment_kwargs))
            aug = extract_features(augmented, encoder=encoder, progress=self.progress)
            parts.append(aug.features)
            part_labels.append(torch.from_numpy(augmented.labels(aug.ids)))
        # one copy into memory: the cache hands out read-only memmaps
        return _TensorBatches(torch.from_numpy(np.concatenate(parts)), torch.cat(part_labels), cfg.batch_size, cfg.seed)

    def _finetune_batches(self, dataset, train_ids, model, labels) -> "_ImageBatches":
        cfg = self.config
        pre = Preprocess(model.input_size, tuple(model.backbone.mean), tuple(model.backbone.std))
        augment = SeedAugment(**cfg.augment_kwargs) if cfg.augment else None
        # crops of at least min_crop of a side must still cover the input at full resolution
        smallest_crop = augment.min_crop_fraction if augment and augment.crop else 1.0
        working_side = max(320, math.ceil(model.input_size / smallest_crop))
        return _ImageBatches(dataset, train_ids, labels, pre, cfg.batch_size, cfg.seed, augment, working_side)


def device_name(device: torch.device) -> str:
    """What a run trained on, for its checkpoint: ``cpu`` or ``cuda (NVIDIA H100 80GB HBM3)``."""
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "cpu"


def training_device(name: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; a named CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device


@dataclass
class _Stage:
    name: str
    epochs: int
    head_params: list
    train_backbone: bool
    classification_only: bool


def _stages(model: HashModel, epochs: int) -> list[_Stage]:
    """The stage of each epoch: one stage, or Bilinear-HashNet's three (classifier, bilinear module, hash layer)."""
    head = model.head
    if not hasattr(head, "stage_parameters") or head.n_classes is None or epochs < 3:
        stage = _Stage("all", epochs, list(head.parameters()), True, False)
        return [stage] * epochs
    first = second = epochs // 3
    plan = [_Stage("1-classifier", first, head.stage_parameters(1), False, True),
            _Stage("2-bilinear", second, head.stage_parameters(2), True, True),
            _Stage("3-hash", epochs - first - second, head.stage_parameters(3), False, False)]
    return [s for s in plan for _ in range(s.epochs)]


class _TensorBatches:
    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
        self.inputs, self.labels, self.batch_size, self.seed = inputs, labels, batch_size, seed
        self.n_items = len(inputs)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.n_items, generator=g)
        for i in range(0, self.n_items, self.batch_size):
            idx = order[i:i + self.batch_size]
            if len(idx) > 1:
                yield self.inputs[idx].float(), self.labels[idx]


class _ImageBatches:
    """Decoded images held in memory, shorter side at most ``working_side`` (aspect kept);
    each epoch draws fresh seed augmentations."""

    def __init__(self, dataset, ids, labels, preprocess: Preprocess, batch_size: int, seed: int,
                 augment: SeedAugment | None, working_side: int = 320):
        self.images = {}
        for i in tqdm(ids, desc="decode training images", leave=False):
            image = load_image(dataset.read_bytes(i), draft_size=working_side)
            scale = working_side / min(image.size)
            if scale < 1:
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                     Image.Resampling.BILINEAR, reducing_gap=2.0)
            self.images[i] = image
        self.ids, self.labels, self.pre = list(ids), labels, preprocess
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.n_items = len(ids)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_items)
        position = {image_id: n for n, image_id in enumerate(self.ids)}

        def read(image_id: str):
            image = self.images[image_id]
            if self.augment is None:
                return image
            return self.augment(image, np.random.default_rng([self.seed, epoch, position[image_id]]))

        ordered = [self.ids[n] for n in order]
        for batch in iter_batches(ordered, read, self.pre, self.batch_size):
            if len(batch.ids) > 1:
                y = self.labels[[position[i] for i in batch.ids]]
                yield torch.from_numpy(batch.inputs), y
