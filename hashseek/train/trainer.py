"""The one training loop for every head and loss.

Two modes share it: ``frozen`` trains the head on cached backbone feature maps (minutes on
a CPU; the seed augmentation enters as cached augmented copies), ``finetune`` trains the
backbone and head end to end on decoded images with online seed augmentation, at a
reduced input size on CPU and at full size on a GPU (``device="auto"`` takes CUDA when
there is one; images are decoded and augmented on the CPU either way). Heads with a
staged schedule (Bilinear-HashNet) expose ``stage_parameters``; tanh heads get HashNet's
continuation (beta raised step by step).

With validation images the run keeps the epoch of best validation mAP@all
(``selection.py``), stops early when it stops improving, and a fine-tuning run that ends
below its own head warm-up keeps the warm-up model; the kept model's classifier is then
calibrated on them (``calibrate.py``). Test images are never passed in.
A deadline (``max_minutes`` from the start of ``fit``, or one the caller passes) is a hard
bound: after each epoch the run is re-planned to the most epochs (up to ``epochs``) that fit
at the measured epoch and validation times (``schedule.replan``: the learning-rate schedule follows
without a jump), an epoch that would end past it is not started, and one running when it passes
stops between batches; the best validated weights are kept. What follows training (``final``, a CPU
fine-tuning run's final evaluation) is re-timed by each validation, which encodes through the same graph,
and the deadline moves with it (``schedule.FinalWork``).
Every completed epoch (warm-up epochs too) is checkpointed atomically (``checkpoint.py``), so a run killed at
any point resumes from its last epoch with ``resume=True``.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hashseek.core.errors import InvalidInputError
from hashseek.data.augment import SeedAugment
from hashseek.data.augmented import AugmentedDataset
from hashseek.data.datasets import ImageDataset
from hashseek.data.loader import Preprocess
from hashseek.losses import LOSSES, create_loss, hashnet_beta_schedule
from hashseek.models.features import extract_features
from hashseek.models.hash_model import HashModel
from hashseek.models.heads import HEADS, TanhHead
from hashseek.train.batches import ImageBatches, TensorBatches
from hashseek.train.calibrate import calibrate
from hashseek.train.checkpoint import load_checkpoint, save_checkpoint, trainable_state
from hashseek.train.config import TrainConfig, TrainResult, device_name, training_device
from hashseek.train.encode_size import choose_encode_size
from hashseek.train.evaluator import MapEncoder, evaluate_split, map_encoder, training_encoder
from hashseek.train.precision import autocast_dtype, trunk_forward
from hashseek.train.schedule import FinalWork, Pace, Rate, Stage, plan_stages, replan, share
from hashseek.train.selection import Selection

log = logging.getLogger(__name__)
WARMUP_SHARE = 0.4    # the most of a deadline-bound fine-tuning run its head warm-up may take
KEPT_WARMUP = "warm-up (fine-tuning ended below it on validation)"   # the selection's "kept" then


class Trainer:
    def __init__(self, config: TrainConfig, progress: bool = True, calibrates: bool = True):
        self.config = config
        self.progress = progress
        self.calibrates = calibrates   # fit the classifier's temperature on validation at the end (not a warm-up's)

    # -- public ------------------------------------------------------------------------
    def fit(self, dataset: ImageDataset, train_ids: Sequence[str], *, validation_ids: Sequence[str] | None = None,
            out_dir: str | Path | None = None, resume: bool = False, deadline: float | None = None,
            warmup_deadline: float | None = None, final: FinalWork | None = None, **provenance) -> TrainResult:
        """Train on ``train_ids``, select on ``validation_ids`` (queries) against ``train_ids`` (database).

        With ``out_dir`` a checkpoint is written after every epoch and the chosen model is saved
        there; ``resume=True`` continues from that checkpoint. ``deadline``: a ``time.perf_counter()``
        value training must end by (default: ``max_minutes`` after this call, less the time a resumed
        run already spent); map extraction and validation count against it. ``warmup_deadline``: the earlier
        one that applies while the head warm-up still leads on validation: kept, that model encodes at the
        backbone's own size, which leaves more to do after training than the fine-tuned one would. ``final``:
        what follows training; after each fine-tuning validation ``deadline`` is re-estimated from its time.
        """
        cfg = self.config
        started = time.perf_counter()
        train_ids, val_ids = list(train_ids), list(validation_ids or [])
        _check_split(dataset, train_ids, val_ids)
        out = Path(out_dir) if out_dir is not None else None
        saved = load_checkpoint(out, cfg) if resume and out is not None else None
        spent = saved["history"][-1]["seconds"] if saved and saved["history"] else 0.0
        if deadline is None and cfg.max_minutes is not None:
            deadline = started + 60 * cfg.max_minutes - spent
        warm = self._warm_up(dataset, train_ids, val_ids, out, resume, provenance, started, deadline) \
            if cfg.mode == "finetune" and cfg.warmup_epochs else None

        torch.manual_seed(cfg.seed)
        train_labels = dataset.labels(train_ids)
        model = self._build(dataset, set(train_labels.tolist()), provenance)
        loss_fn = create_loss(cfg.loss, cfg.bits, len(dataset.classes), **cfg.loss_kwargs)
        centres = loss_fn.class_centres()
        if centres is not None:   # a head without a classifier classifies by them
            model.attach_centres(centres)
        if warm is not None:
            model.head.load_state_dict(warm.model.head.state_dict())
        device = training_device(cfg.device)
        labels = torch.from_numpy(train_labels)
        if cfg.mode == "frozen":
            batches, encoder, dropped = self._frozen_data(dataset, train_ids, val_ids, model, labels, device)
        else:
            batches = self._finetune_batches(dataset, train_ids, model, labels)
            encoder = training_encoder(model, dataset, device)
            dropped = batches.dropped
        steps_per_epoch = math.ceil(batches.n_items / cfg.batch_size)
        stages = plan_stages(model, cfg.epochs)
        one_stage = len(set(map(id, stages))) == 1   # a staged schedule is not re-planned
        model.to(device)   # after the frozen maps were extracted: that runs on the CPU's ONNX graph
        loss_fn.to(device)
        selection = Selection(cfg.validate_every or 1, cfg.effective_patience,
                              adaptive=None if cfg.validate_every else cfg.mode)

        start_epoch, step, history = 0, 0, list(warm.history) if warm else []
        last = cfg.epochs        # the run's planned length: a deadline re-plans it
        if saved:
            model.load_state_dict(saved["model"], strict=False)
            start_epoch, step, history = saved["epoch"], saved["step"], saved["history"]
            selection.load_state_dict(saved["selection"])
            selection.stopped_for_time = False     # the limit may have been raised: checked again after the next epoch
            torch.set_rng_state(saved["rng"])
        t0 = started - spent     # the clock includes map extraction, decoding and (fine-tuning) the warm-up
        bar = tqdm(total=last, desc=f"train {cfg.head}+{cfg.loss} {cfg.bits}b {cfg.mode}",
                   disable=not self.progress, initial=start_epoch, unit="epoch")
        epoch, optimizer, scheduler, current_stage = start_epoch, None, None, None
        epoch_pace, val_pace = Pace(), Pace()
        reserve = {} if final is None or deadline is None else {"planned": round(final.seconds_after(deadline))}
        # a deadline may cut an epoch short once there is a validated model to fall back on
        can_cut = lambda: warm is not None or selection.best_state is not None or not val_ids  # noqa: E731
        warmup_leads = lambda: warm is not None and bool(val_ids) and selection.best_map < _warm_map(warm)  # noqa: E731
        limit = lambda: warmup_deadline if warmup_deadline is not None and warmup_leads() else deadline  # noqa: E731
        past = lambda ahead=0.0: limit() is not None and time.perf_counter() + ahead > limit()  # noqa: E731

        def fit_to_deadline(since: int, val_seconds: float) -> None:
            """Re-plan the run's last epoch after ``epoch`` from the deadline (``since`` epochs unvalidated)."""
            nonlocal last
            bar.total = last = replan(epoch + 1, last, cfg.epochs, epoch_pace(), val_seconds, selection.every, since,
                                      deadline - time.perf_counter(), scheduler, steps_per_epoch)
            selection.stopped_for_time = last == epoch + 1 < cfg.epochs

        # a head on cached maps runs tiny ops: one thread, since a second one spin-waits (an epoch on cars-bmw13
        # took 11 s with two threads and 0.7 s with one beside other jobs on the 2-core machine)
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if cfg.mode == "frozen" else threads)
        try:
            while epoch < last and not (selection.stopped_early or selection.stopped_for_time):
                if can_cut() and past():   # nor started past it
                    selection.stopped_for_time = True
                    break
                stage = stages[epoch]
                if stage is not current_stage:
                    current_stage = stage
                    optimizer, scheduler = self._optimizer(model, stage, steps_per_epoch)
                    if saved and saved.get("stage") == stage.name and epoch == start_epoch:
                        optimizer.load_state_dict(saved["optimizer"])
                        scheduler.load_state_dict(saved["scheduler"])
                        for rate in scheduler.lr_lambdas:   # to this run's length: a deadline may have shortened it
                            rate.replan(scheduler.last_epoch, stage.epochs * steps_per_epoch)
                stage_loss = create_loss("ce", cfg.bits, len(dataset.classes)).to(device) \
                    if stage.classification_only else loss_fn
                epoch_start = time.perf_counter()
                loss, step, cut = self._epoch(model, batches, epoch, stage_loss, optimizer, scheduler, device, step,
                                              steps_per_epoch, limit() if can_cut() else None)
                record = {"epoch": epoch + 1, "stage": stage.name, "loss": loss,
                          "lr": optimizer.param_groups[0]["lr"]}
                epoch_seconds = time.perf_counter() - epoch_start
                if deadline is not None and not cut and one_stage:   # before its validation
                    epoch_pace(epoch_seconds)   # this epoch's time joins the pace
                    fit_to_deadline(epoch + 1 - selection.last_epoch,
                                    max(val_pace(), selection.last_val_seconds))   # a resumed run has no pace yet
                due = bool(val_ids) and stage is stages[-1] and selection.due(epoch + 1, last)
                cut = cut or (due and can_cut() and past(selection.last_val_seconds))   # nor a validation past it
                if cut:    # stopped at the deadline: these weights are not validated, the best validated stay
                    record["cut_at_deadline"] = True
                    selection.stopped_for_time = True
                elif due:
                    result = evaluate_split(model, dataset, val_ids, train_ids, progress=False, encoder=encoder)
                    record.update(val_map=result.figures["map_all"], val_seconds=result.seconds)
                    val_pace(result.seconds)
                    improved = selection.update(epoch + 1, record["val_map"], trainable_state(model), epoch_seconds,
                                                result.seconds)
                    for rate in scheduler.lr_lambdas if cfg.schedule == "plateau" else ():
                        rate.observe(improved, cfg.plateau_patience, cfg.plateau_factor)
                    selection.should_stop(epoch + 1)
                    if final is not None and deadline is not None:   # what follows, timed by this validation
                        deadline = _remeasured(final, deadline, val_pace() / (len(train_ids) + len(val_ids)),
                                               reserve)
                        if one_stage:   # planned again from the new deadline, this epoch validated
                            fit_to_deadline(0, val_pace())
                record["seconds"] = time.perf_counter() - t0
                history.append(record)
                epoch += 1
                bar.update(1)
                bar.set_postfix(_postfix(record, selection))
                if out is not None:
                    save_checkpoint(out, cfg, model, history, epoch - 1, step, stage, optimizer, scheduler, selection)
        except KeyboardInterrupt:
            log.warning("interrupted during epoch %d; %s", epoch + 1,
                        f"resume with resume=True (--resume) from {out}" if out else "no checkpoint (no out_dir)")
            raise
        finally:
            torch.set_num_threads(threads)
            bar.close()
        return self._finish(model, warm, selection, history, val_ids, train_ids, dataset, device, out, dropped,
                            planned=last, deadline=deadline, final=final, reserve=reserve)

    # -- pieces ------------------------------------------------------------------------
    def _build(self, dataset: ImageDataset, trained: set[int], provenance: dict) -> HashModel:
        """The model and its record: every class of the source (the classifier's outputs) and those it trains on
        (an unseen-classes split holds some back; a collection says which of its labels the model never saw)."""
        cfg = self.config
        needs_classes = LOSSES.metadata(cfg.loss)["needs_logits"] or HEADS.metadata(cfg.head)["has_classifier"]
        model = HashModel.build(
            cfg.backbone, cfg.head, cfg.bits, len(dataset.classes) if needs_classes else None,
            pretrained=not cfg.random_init, weights=cfg.backbone_weights, head_kwargs=cfg.head_kwargs,
            loss=cfg.loss, mode=cfg.mode, classes=dataset.classes,
            trained_classes=[c for n, c in enumerate(dataset.classes) if n in trained], input_size=cfg.input_size,
            mirror_average=cfg.mirror_average, train=asdict(cfg), **provenance)
        model.backbone.tuned_parameters(cfg.frozen_stages)   # a trunk without that many stages fails before training
        return model

    def _warm_up(self, dataset, train_ids, val_ids, out: Path | None, resume: bool, provenance, started: float,
                 deadline: float | None) -> TrainResult:
        """Fine-tuning starts from a head trained on frozen maps ("linear probe, then fine-tune"):
        a random head's first gradients would otherwise wreck the pretrained trunk, and on small
        sets the codes collapse (HashNet's loss stuck at 2 ln 2 in our cars-bmw13 runs). The
        warm-up is a frozen run of its own, checkpointed in ``out/warmup``, done by WARMUP_SHARE of the deadline."""
        cfg = self.config
        frozen = replace(cfg, mode="frozen", epochs=cfg.warmup_epochs, warmup_epochs=0, input_size=None,
                         mirror_average=False, validate_every=0)
        warm = Trainer(frozen, progress=self.progress, calibrates=False).fit(
            dataset, train_ids, validation_ids=val_ids, out_dir=out / "warmup" if out else None, resume=resume,
            deadline=share(started, deadline, WARMUP_SHARE), **provenance)
        warm.history = [{**record, "stage": f"warmup-{record['stage']}"} for record in warm.history]
        # compare like with like: the warm-up model as it would encode (past the deadline no fine-tuning follows)
        if val_ids and cfg.mirror_average and (deadline is None or time.perf_counter() < deadline):
            warm.model.set_mirror_average(True)
            result = evaluate_split(warm.model, dataset, val_ids, train_ids, progress=False,
                                    encoder=training_encoder(warm.model, dataset, torch.device("cpu"),
                                                             progress=self.progress))
            warm.selection["best_val_map_as_encoded"] = result.figures["map_all"]
        return warm

    def _epoch(self, model, batches, epoch, loss_fn, optimizer, scheduler, device, step, steps_per_epoch,
               deadline: float | None = None):
        """One pass over the batches: (mean loss, step, whether the deadline cut it short)."""
        cfg = self.config
        model.head.train()
        # Batch-norm statistics stay those of ImageNet: CPU batches are too small to re-estimate them.
        model.backbone.eval()
        losses, dtype = [], autocast_dtype(cfg.precision, device)
        steps = tqdm(batches.indexed(epoch), total=steps_per_epoch, leave=False, desc=f"epoch {epoch + 1}",
                     disable=not self.progress or cfg.mode == "frozen")
        for inputs, y, index in steps:
            inputs, y = inputs.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if isinstance(model.head, TanhHead):
                model.head.beta = hashnet_beta_schedule(step) if cfg.continuation else 1.0
            out = model.head(inputs if cfg.mode == "frozen" else trunk_forward(model.backbone, inputs, dtype))
            # memory-bank losses (DPSH, DSH, HashNet) score the batch against every training item seen
            loss = loss_fn(out, y, index=index.to(device)) if loss_fn.needs_index else loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if deadline is not None and time.perf_counter() > deadline:
                steps.close()
                return float(np.mean(losses)), step, True
        return float(np.mean(losses)) if losses else float("nan"), step, False

    def _optimizer(self, model: HashModel, stage: Stage, steps_per_epoch: int):
        cfg = self.config
        lr, decay = cfg.stage_lr.get(stage.name, cfg.lr), cfg.stage_weight_decay.get(stage.name, cfg.weight_decay)
        groups = [{"params": stage.head_params, "lr": lr, "weight_decay": decay}]
        if cfg.mode == "finetune" and stage.train_backbone:
            groups.append({"params": model.backbone.tuned_parameters(cfg.frozen_stages),
                           "lr": lr * cfg.backbone_lr_scale, "weight_decay": decay})
        for p in model.parameters():
            p.requires_grad_(False)
        for g in groups:
            for p in g["params"]:
                p.requires_grad_(True)
        # fused kernels: one pass per step instead of several (Adam's step on spp_pmt's 55M weights: 0.70 -> 0.045 s)
        if cfg.optimizer == "adam":
            opt = torch.optim.Adam(groups, weight_decay=cfg.weight_decay, fused=True)
        elif cfg.optimizer == "rmsprop":
            opt = torch.optim.RMSprop(groups, weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.SGD(groups, momentum=0.9, weight_decay=cfg.weight_decay, fused=True)
        total = max(1, stage.epochs * steps_per_epoch)
        # The trunk's rate rises from 0: a warmed head's large first gradients would otherwise throw the
        # pretrained trunk off (the loss jumped from 0.03 to 0.65 in issue #13's collapsed run).
        ramp = max(1.0, cfg.backbone_lr_ramp_epochs * steps_per_epoch)
        rates = [Rate(cfg.schedule, total), Rate(cfg.schedule, total, ramp)]
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, rates[:len(groups)])

    def _frozen_data(self, dataset, train_ids, val_ids, model, labels, device):
        """Cached conv maps of the training images (plus their seed-augmented copies if asked), and an
        encoder that scores validation against training maps with the head alone."""
        cfg = self.config
        encoder = map_encoder(model)
        maps = extract_features(dataset, train_ids, encoder=encoder, progress=self.progress)
        readable = set(maps.ids)
        dropped = [(i, "could not be read") for i in train_ids if i not in readable]
        if dropped:
            labels = torch.from_numpy(dataset.labels(maps.ids))
        parts, part_labels = [maps.features], [labels]
        if cfg.augment_copies:
            augmented = AugmentedDataset(dataset, maps.ids, cfg.augment_copies, seed=cfg.seed,
                                         augment=SeedAugment(**cfg.augment_kwargs))
            aug = extract_features(augmented, encoder=encoder, progress=self.progress)
            parts.append(aug.features)
            part_labels.append(torch.from_numpy(augmented.labels(aug.ids)))
        # one copy into memory: the cache hands out read-only memmaps
        inputs = torch.from_numpy(np.concatenate(parts))
        if HEADS.metadata(cfg.head)["map_init"]:   # e.g. NetVLAD's k-means centres, before the first epoch
            model.head.init_from_maps(inputs, seed=cfg.seed)
        reduce = getattr(model.head, "reduce_map", None)   # a head whose pooling has no weights: pooled once here
        if reduce is not None:
            with torch.no_grad():
                inputs = torch.cat([reduce(inputs[i:i + 256].float()) for i in range(0, len(inputs), 256)])
        batches = TensorBatches(inputs, torch.cat(part_labels), cfg.batch_size, cfg.seed)
        if not val_ids:
            return batches, None, dropped
        if cfg.mirror_average:   # the mirrored images' maps are not cached: encode the images
            return batches, training_encoder(model, dataset, device), dropped
        val = extract_features(dataset, val_ids, encoder=encoder, progress=self.progress)
        sources = [(maps.ids, batches.inputs[:len(maps.ids)]), (val.ids, torch.from_numpy(np.array(val.features)))]
        return batches, MapEncoder(model, dataset, sources, device), dropped

    def _finetune_batches(self, dataset, train_ids, model, labels) -> ImageBatches:
        cfg = self.config
        pre = Preprocess(model.input_size, tuple(model.backbone.mean), tuple(model.backbone.std))
        augment = SeedAugment(**cfg.augment_kwargs) if cfg.augment else None
        # crops of at least min_crop of a side must still cover the input at full resolution
        smallest_crop = augment.min_crop_fraction if augment and augment.crop else 1.0
        working_side = max(320, math.ceil(model.input_size / smallest_crop))
        return ImageBatches(dataset, train_ids, labels, pre, cfg.batch_size, cfg.seed, augment, working_side,
                            progress=self.progress)

    def _finish(self, model, warm, selection, history, val_ids, train_ids, dataset, device, out, dropped,
                planned: int, deadline: float | None, final: FinalWork | None, reserve: dict):
        """Load the chosen weights (a fine-tuned model's encode size too, ``encode_size.py``), put the model
        back on the CPU (encoding runs there), save it."""
        cfg = self.config
        info = {"metric": "map_all", "evaluator": "hashseek.train.evaluator.evaluate_split",
                "queries": f"{len(val_ids)} validation images", "database": f"{len(train_ids)} training images",
                "epochs_run": sum(not h["stage"].startswith("warmup") for h in history), "epochs_planned": planned,
                "validate_every": selection.every, "patience": selection.patience,
                "stopped_early": selection.stopped_early, "stopped_for_time": selection.stopped_for_time}
        if reserve:
            info["seconds_kept_after_training"] = reserve
        if selection.stopped_for_time:
            cut = bool(history and history[-1].get("cut_at_deadline"))
            log.warning("stopped on time %s epoch %d of %d%s: another would have passed the deadline",
                        "during" if cut else "after", info["epochs_run"], cfg.epochs,
                        " (its unvalidated weights dropped)" if cut else "")
        if val_ids and selection.best_state is not None:
            model.load_state_dict(selection.best_state, strict=False)
            info.update(kept="best validation epoch", best_epoch=selection.best_epoch, best_val_map=selection.best_map)
        else:
            info.update(kept="last epoch (no validation images)")
        if warm is not None and val_ids:
            warm_map = _warm_map(warm)
            info["warmup_val_map"] = warm_map
            if selection.best_map < warm_map:
                log.warning("fine-tuning's best validation mAP %.4f is below its warm-up's %.4f: "
                            "keeping the warm-up model (head on frozen maps)", selection.best_map, warm_map)
                info.update(kept=KEPT_WARMUP,
                            finetune_best_val_map=selection.best_map, best_val_map=warm_map,
                            best_epoch=warm.selection.get("best_epoch"))
                model = warm.model.set_mirror_average(cfg.mirror_average)
        if cfg.mode == "finetune" and val_ids and info["kept"] == "best validation epoch":
            encoding = final.seconds_after(deadline) - final.fixed_seconds if final and deadline else 0.0
            info.update(choose_encode_size(model, dataset, val_ids, train_ids, device, selection.best_map,
                                           selection.last_val_seconds, deadline, self.progress, encoding))
        model.eval().to("cpu")   # encoding exports the model to ONNX Runtime on the CPU
        if self.calibrates and val_ids and model.has_classifier:
            calibrate(model, dataset, val_ids, self.progress)
        model.config.update(history=history, train_seconds=history[-1]["seconds"] if history else 0.0,
                            trained_on=device_name(device), selection=info, train=asdict(cfg),
                            trained_precision="bfloat16" if cfg.mode == "finetune" and autocast_dtype(
                                cfg.precision, device) else "float32",
                            dropped_training_images=[list(d) for d in dropped or []],
                            trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if out is not None:
            model.save(out)
        return TrainResult(model, history, model.config["train_seconds"], info)


def _remeasured(final: FinalWork, deadline: float, seconds_per_image: float, reserve: dict) -> float:
    """The training deadline that leaves ``final`` its time at the measured cost; ``reserve`` records it."""
    moved = final.deadline(seconds_per_image)
    reserve["measured"] = round(final.seconds_after(moved))
    if abs(moved - deadline) > 30:
        log.info("re-estimated what follows training from this run's validations: %d s (was %d s)",
                 reserve["measured"], final.seconds_after(deadline))
    return moved


def _warm_map(warm: TrainResult) -> float:
    """The warm-up model's validation figure as it would encode (mirror-averaged where the run encodes so)."""
    return warm.selection.get("best_val_map_as_encoded", warm.selection.get("best_val_map", -1.0))


def _postfix(record: dict, selection: Selection) -> dict:
    shown = {"loss": f"{record['loss']:.4f}"}
    if "val_map" in record:
        shown["val_mAP"] = f"{record['val_map']:.4f}"
    if selection.best_epoch:
        shown["best"] = f"{selection.best_map:.4f}@{selection.best_epoch}"
    return shown


def _check_split(dataset: ImageDataset, train_ids: list[str], val_ids: list[str]) -> None:
    if len(train_ids) < 2:
        raise InvalidInputError(f"training needs at least 2 images, got {len(train_ids)}")
    overlap = set(train_ids) & set(val_ids)
    if overlap:
        raise InvalidInputError(f"{len(overlap)} validation images are also training images, e.g. {sorted(overlap)[:3]}")
    labels = dataset.labels(train_ids + val_ids)
    if (labels < 0).any():
        raise InvalidInputError(f"{int((labels < 0).sum())} training or validation images have no label")
