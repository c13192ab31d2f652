"""Train on your own labelled images: source -> honest split -> recipe -> model -> report, in one call.

``hashseek train SOURCE`` runs exactly this; in Python::

    from hashseek.eval.source_runs import train_on_source
    run = train_on_source("~/photos", recipe="fast", out="runs/photos")
    print(run.test["map_all"], run.validation["map_all"], run.out)

A source is a folder with one sub-folder per class, a tar archive of such folders, a collection
directory (its library images and their labels) or a built-in dataset name (its shipped protocol).
A user's source gets a seeded, stratified split (``hashseek.data.splits``) saved beside the model as
``split.json.gz``; training sees the training images, selects on the validation images, and the
test queries are read once, after training, for the report. A run that ends below the
zero-training baseline on validation keeps the baseline (``zero_training.py``). ``max_minutes``
bounds the whole call: opening the source, training (a hard deadline), the baseline and the report.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hashseek.core.errors import ConflictError, InvalidInputError, NotFoundError
from hashseek.data.datasets import ImageDataset, is_archive
from hashseek.data.loader import decode_ms
from hashseek.data.named import NAMED_DATASETS, load_dataset
from hashseek.data.protocols import PROTOCOLS, Protocol, get_protocol, protocol_dataset
from hashseek.data.sources import SourceCheck, check_source, is_builtin, is_collection, open_source
from hashseek.data.splits import SplitSettings, split_lines, split_source
from hashseek.eval.run_report import EVAL_FILE, evaluate_protocol, write_run_report
from hashseek.eval.zero_training import (Baseline, baseline_validation, describe_baseline, hasher_encoder,
                                         keep_baseline, run_hasher)
from hashseek.models.hash_model import HashModel, load_model
from hashseek.search.collection import Collection
from hashseek.search.feature_hasher import FeatureHasher
from hashseek.train import TrainConfig, Trainer, TrainResult
from hashseek.train.checkpoint import STATE_FILE
from hashseek.train.evaluator import EncodingMemo, encode_ids
from hashseek.train.recipes import Plan, plan_run
from hashseek.train.schedule import FinalWork

log = logging.getLogger(__name__)

SPLIT_FILE = "split.json.gz"
MODEL_FILE = "config.json"     # present once a run has saved its model


@dataclass
class Prepared:
    """A source opened and split, ready to train on."""

    source: str                 # what reopens it: a built-in name or an absolute path
    kind: str                   # builtin | folder | archive | collection
    dataset: ImageDataset
    protocol: Protocol
    check: SourceCheck | None = None

    def lines(self, per_class: bool = False) -> list[str]:
        return split_lines(self.protocol, self.dataset, per_class=per_class)

    def untestable(self) -> str | None:
        """Why the split holds no test queries (None when it holds some): said before training, not after."""
        if self.protocol.query:
            return None
        ids = dict.fromkeys([*self.protocol.train, *self.protocol.validation, *self.protocol.database])
        largest = max(Counter(self.dataset.labels(list(ids)).tolist()).values(), default=0)
        return (f"the split of {self.source} leaves no test queries: its classes have at most {largest} image(s) "
                "each, and every class keeps one for training first")

    def require_test(self) -> None:
        """Refuse, before any training, a run whose report would have nothing to test on."""
        reason = self.untestable()
        if reason:
            raise InvalidInputError(f"{reason}; add images (a class needs 2 for one test query), or train without "
                                    "a test evaluation (`hashseek train --no-eval`)")


@dataclass
class SourceRun:
    """What ``train_on_source`` made: the model, its folder, the figures and the report files."""

    out: Path
    model: HashModel | FeatureHasher      # what the run kept: the trained model, or the baseline that beat it
    result: TrainResult
    validation: dict | None
    test: dict
    files: dict = field(default_factory=dict)
    seconds: float | None = None          # the whole call, source to report
    selection: dict = field(default_factory=dict)   # how the kept model was chosen (eval.json's "selection")


def open_labelled(source: str | Path) -> tuple[ImageDataset, str, str]:
    """(dataset, kind, source key) of a built-in name, a collection, a folder or an archive."""
    if is_builtin(source):
        return load_dataset(str(source)), "builtin", str(source)
    path = Path(source).expanduser()
    if path.is_dir() and is_collection(path):
        with Collection.open(path, read_only=True) as collection:   # a server may hold it open
            dataset = collection.as_dataset()
        return dataset, "collection", str(path.resolve())
    dataset = open_source(path)
    return dataset, "archive" if is_archive(path) else "folder", str(path.resolve())


def prepare(source: str | Path | None = None, *, dataset: str | None = None, protocol: str | None = None,
            split: str | Path | None = None, seed: int | None = None, val_fraction: float | None = None,
            test_fraction: float | None = None, database: str | None = None, folders: bool | None = None,
            resume: str | Path | None = None, progress: bool = True) -> Prepared:
    """Open the source and fix its split; contradictory choices are refused, never silently replaced.

    ``dataset``/``protocol`` name a built-in dataset and protocol (the shipped split for ``seed``);
    ``split`` is a split saved by ``hashseek split``; the fractions, ``database`` and ``folders`` (False:
    ignore the source's own train/ val/ test/ folders) draw a new split of a user's source
    (``SplitSettings`` holds their defaults). ``resume``: the folder of a run being resumed; its saved
    split is kept (photos added since are not in it; deleted ones leave it), unless another is asked for.
    """
    given_seed, seed = seed, SplitSettings().seed if seed is None else seed
    split_given = {k: v for k, v in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction),
                                     ("--database", database), ("--resplit", folders)) if v is not None}
    builtin_name = _builtin_choice(source, dataset, protocol)
    if builtin_name is not None:
        name = protocol_dataset(builtin_name)
        if split_given:
            raise InvalidInputError(
                f"{', '.join(split_given)}: the built-in protocol {builtin_name!r} fixes its own split (choose it "
                f"with --protocol and --seed); to draw your own split of these images, give the archive's path as "
                f"SOURCE (e.g. $HASHSEEK_DATA/{NAMED_DATASETS[name]})")
        if split is not None and protocol is not None:
            raise InvalidInputError(f"--split {split} and --protocol {protocol} both choose the split: give one")
        ds = load_dataset(name)
        chosen = _saved_split(split, name, source or name, ds) if split is not None \
            else get_protocol(builtin_name, ds, seed=seed)
        return Prepared(name, "builtin", ds, chosen)

    ds, kind, key = open_labelled(source)
    check = check_source(ds, leave_out_unlabelled=kind == "collection", progress=progress)
    if split is None and resume is not None and not split_given:
        split = _split_to_resume(Path(resume) / SPLIT_FILE, given_seed)
    if split is not None:
        if split_given:
            raise InvalidInputError(f"--split {split} is a split already drawn; drop {', '.join(split_given)} "
                                    "(or drop --split to draw a new one)")
        return Prepared(key, kind, ds, _saved_split(split, key, source, ds), check)
    settings = SplitSettings(seed=seed, **{("folders" if k == "--resplit" else k.lstrip("-").replace("-", "_")): v
                                          for k, v in split_given.items()})
    drawn = split_source(ds, settings, excluded=check.excluded, source=key)
    _refuse_fractions_of_given_parts(drawn.folders, split_given)
    return Prepared(key, kind, ds, drawn, check)


def _split_to_resume(saved: Path, seed: int | None) -> Path | None:
    """The resumed run's own split, unless there is none or another seed was asked for (then a split is drawn,
    and ``train_prepared`` refuses it if it differs)."""
    return saved if saved.is_file() and (seed is None or Protocol.load(saved).seed == seed) else None


def _refuse_fractions_of_given_parts(folders: dict[str, list[str]], given: dict) -> None:
    """A fraction for a part the source's own folders gave (``Protocol.folders``) was ignored: refuse it."""
    clash = [(flag, folders[part]) for flag, part in (("--val-fraction", "validation"), ("--test-fraction", "query"))
             if flag in given and part in folders]
    if clash:
        said = "; ".join(f"{flag}: the source's {', '.join(f + '/' for f in fs)} folder gives that part"
                         for flag, fs in clash)
        raise InvalidInputError(f"{said}. Drop {' and '.join(flag for flag, _ in clash)}, or add --resplit to pool "
                                "the images and draw a random split")


def _saved_split(path: str | Path, key: str, source, dataset: ImageDataset) -> Protocol:
    """A split written by ``hashseek split``, refused unless it was drawn from this source."""
    chosen = Protocol.load(path)
    if chosen.dataset != key:
        raise InvalidInputError(f"--split {path} was drawn from {chosen.dataset}, not from {key}; "
                                f"draw one for this source with `hashseek split {source} --out FILE`")
    _leave_out_missing(chosen, dataset)
    return chosen


def _builtin_choice(source, dataset: str | None, protocol: str | None) -> str | None:
    """The built-in protocol asked for (by SOURCE, --dataset or --protocol), None for a user's source;
    any two that disagree are an error that says what to do."""
    if dataset is not None and dataset not in NAMED_DATASETS:
        raise InvalidInputError(f"--dataset names a built-in dataset ({', '.join(NAMED_DATASETS)}), not "
                                f"{dataset!r}; give your own folder or archive as SOURCE: `hashseek train {dataset}`")
    if protocol is not None:
        PROTOCOLS.get(protocol)   # UnknownNameError listing the known ones
        if dataset is not None and protocol_dataset(protocol) != dataset:
            raise InvalidInputError(f"--protocol {protocol} splits {protocol_dataset(protocol)}, not --dataset "
                                    f"{dataset}; drop one of them")
    if source is None:
        if dataset is None and protocol is None:
            raise InvalidInputError("nothing to train on: give SOURCE (a folder with one sub-folder per class, a tar "
                                    f"archive of such folders, a collection, or one of {', '.join(NAMED_DATASETS)})")
        return protocol or dataset
    named = str(source) if is_builtin(source) else None
    if named is None and (dataset is not None or protocol is not None):
        flag = f"--protocol {protocol}" if protocol is not None else f"--dataset {dataset}"
        raise InvalidInputError(f"{flag} picks a built-in dataset's split, but SOURCE {source} is your own images; "
                                f"drop {flag} to train on {source} with a split drawn from it "
                                "(see `hashseek split`)")
    if named is not None:
        for flag, value in (("--dataset", dataset), ("--protocol", protocol)):
            if value is not None and protocol_dataset(value) != named:
                raise InvalidInputError(f"SOURCE {named} and {flag} {value} disagree; drop {flag} or SOURCE")
    return protocol or named


def load_run_split(run: str | Path, model: HashModel | None = None) -> Protocol:
    """The split a run was trained and selected with (``split.json.gz`` beside its model); a model trained
    before splits were saved names its built-in protocol."""
    path = Path(run) / SPLIT_FILE
    named = (model.config.get("protocol") if model is not None else None) or ""
    if not path.is_file() and named in PROTOCOLS:
        return get_protocol(named, seed=int((model.config.get("train") or {}).get("seed", 0)))
    if not path.is_file():
        raise NotFoundError(f"{run} holds no {SPLIT_FILE}; it was trained before splits were saved: "
                            "pass --protocol NAME or a saved split (.json.gz)")
    return Protocol.load(path)


def reopen(protocol: Protocol) -> ImageDataset:
    """The dataset a saved split was drawn from (a built-in name, a folder, an archive or a collection).
    Images deleted or moved since then leave the split (``protocol.excluded`` says so) with a warning, so
    a model is still evaluated on the rest of its split."""
    try:
        dataset = open_labelled(protocol.dataset)[0]
    except NotFoundError as err:
        raise NotFoundError(f"{err}; this split was drawn from {protocol.dataset}") from None
    _leave_out_missing(protocol, dataset)
    return dataset


def _leave_out_missing(protocol: Protocol, dataset: ImageDataset) -> None:
    """Images deleted or moved since the split was drawn leave it, with a warning; then the split is checked."""
    missing = protocol.drop_missing(dataset)
    if missing:
        log.warning("%d image(s) of the split are no longer in %s and are left out, e.g. %s",
                    len(missing), protocol.dataset, missing[:3])
    protocol.check(dataset)


def train_prepared(prepared: Prepared, config: TrainConfig, out: str | Path, *, resume: bool = False,
                   recipe: str | None = None, progress: bool = True, deadline: float | None = None,
                   warmup_deadline: float | None = None, final: FinalWork | None = None) -> TrainResult:
    """Train on the split's training images, selecting on its validation images; the test queries are
    never passed to the trainer. The split is written beside the model before training starts.
    ``deadline`` and ``warmup_deadline``: the ``time.perf_counter()`` training must end by, and the earlier one
    while the head warm-up leads; ``final``: what follows training, to re-estimate ``deadline`` from the run's
    own validations (``run_deadlines``)."""
    out = Path(out)
    saved = out / SPLIT_FILE
    if resume:
        trained_on = Protocol.load(saved) if saved.is_file() else None
        if trained_on is not None:
            trained_on.drop_missing(prepared.dataset)   # as ``prepare`` keeps a resumed run's split
        if trained_on is not None and trained_on != prepared.protocol:
            raise ConflictError(f"{out} was trained on another split ({saved}); resume with the same source and "
                                f"seed, or pass --split {saved}")
    elif (out / MODEL_FILE).is_file() or (out / STATE_FILE).is_file():
        raise ConflictError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    prepared.protocol.save(saved)
    trainer = Trainer(config, progress=progress)
    return trainer.fit(prepared.dataset, prepared.protocol.train, validation_ids=prepared.protocol.validation or None,
                       out_dir=out, resume=resume, deadline=deadline, warmup_deadline=warmup_deadline, final=final,
                       dataset_name=prepared.dataset.name,
                       protocol=prepared.protocol.name, source=prepared.source, split=SPLIT_FILE, recipe=recipe)


def recipe_config(recipe: str, prepared: Prepared, *, max_minutes: float | None = None, overrides: dict | None = None,
                  augment: dict | None = None) -> tuple[TrainConfig, list[str]]:
    """The recipe's settings for this split, each given override replacing one; ``augment`` entries
    replace single SeedAugment settings of the recipe's own."""
    plan = recipe_plan(recipe, prepared, max_minutes=max_minutes, overrides=overrides, augment=augment)
    return plan.config, plan.lines


def recipe_plan(recipe: str, prepared: Prepared, *, max_minutes: float | None = None, overrides: dict | None = None,
                augment: dict | None = None, started: float | None = None, evaluate: bool = True) -> Plan:
    """``recipe_config`` with the seconds to keep for the baseline and the report; ``max_minutes`` counts
    from ``started`` (a ``time.perf_counter()``; default now), so time spent opening the source is taken off.
    ``evaluate=False`` (``train --no-eval``): no test evaluation follows training, so none is reserved.
    Unbounded fine-tuning is measured and its duration estimated (``plan_run(estimate=True)``)."""
    protocol = prepared.protocol
    given = {**(overrides or {}), **({"augment_kwargs": augment} if augment else {})}
    left = None
    if max_minutes is not None:
        spent = 0.0 if started is None else (time.perf_counter() - started) / 60
        left = max(max_minutes - spent, 0.05) if max_minutes > 0 else max_minutes   # <= 0: plan_run says why
    return plan_run(recipe, n_train=len(protocol.train), n_classes=_n_classes(prepared),
                    n_validation=len(protocol.validation), n_query=len(protocol.query) if evaluate else 0,
                    n_database=len(protocol.database) if evaluate else 0, max_minutes=left, overrides=given,
                    estimate=True, decode_probe=lambda size: decode_ms(protocol.train, prepared.dataset.read_bytes,
                                                                        size))


def run_deadlines(plan: Plan, started: float, max_minutes: float | None) -> dict:
    """When training must end so the whole run fits ``max_minutes`` from ``started`` (``train_prepared``'s
    ``deadline``: the plan's reserve for the final evaluation and the report comes off the end), when while
    the head warm-up leads (``warmup_deadline``: the reserve for encoding with it at the backbone's own size),
    and what follows training (``final``: fine-tuning on a CPU re-estimates ``deadline`` from its validations)."""
    if max_minutes is None:
        return {"deadline": None, "warmup_deadline": None, "final": None}
    end = started + 60 * max_minutes
    final = FinalWork(end, plan.final_images, plan.final_fixed_seconds) if plan.final_images else None
    return {"deadline": end - plan.reserve_seconds, "warmup_deadline": end - plan.warmup_reserve_seconds,
            "final": final}


def _n_classes(prepared: Prepared) -> int:
    return len(set(prepared.dataset.labels(prepared.protocol.train).tolist()))


def train_on_source(source: str | Path, recipe: str = "fast", out: str | Path | None = None, *,
                    seed: int | None = None, max_minutes: float | None = None, overrides: dict | None = None,
                    augment: dict | None = None, resume: bool = False, progress: bool = True,
                    **split_options) -> SourceRun:
    """The whole loop: split (or the built-in protocol), recipe, training with selection on
    validation, one evaluation on the test queries, and the report written into ``out``.
    ``split_options``: ``val_fraction``, ``test_fraction``, ``database``, ``folders``, ``split``, ``dataset``,
    ``protocol``."""
    started = time.perf_counter()
    prepared = prepare(source, seed=seed, progress=progress, resume=out if resume else None, **split_options)
    prepared.require_test()
    plan = recipe_plan(recipe, prepared, max_minutes=max_minutes, started=started, augment=augment,
                       overrides={**({"seed": seed} if seed is not None else {}), **(overrides or {})})
    out = Path(out) if out is not None else default_out(prepared, recipe, plan.config.seed)
    baseline = zero_training_baseline(prepared, plan.config, progress=progress)   # before the deadline is set
    result = train_prepared(prepared, plan.config, out, resume=resume, recipe=recipe, progress=progress,
                            **run_deadlines(plan, started, max_minutes))
    return report_training(prepared, result, out, recipe=recipe, recipe_lines=plan.lines, progress=progress,
                           started=started, max_minutes=max_minutes, baseline=baseline)


def zero_training_baseline(prepared: Prepared, config: TrainConfig, progress: bool = True) -> Baseline | None:
    """The zero-training baseline at the run's bits, scored on the split's validation images (None without
    them). Fitted before training: its cost is then known when the training deadline is set."""
    protocol = prepared.protocol
    if not (protocol.validation and protocol.train):
        return None
    return baseline_validation(prepared.dataset, protocol.train, protocol.validation, config.bits, seed=config.seed,
                               progress=progress)


def default_out(prepared: Prepared, recipe: str, seed: int) -> Path:
    return Path("runs") / f"{prepared.protocol.name}-{recipe}-seed{seed}"


def report_training(prepared: Prepared, result: TrainResult, out: str | Path, *, recipe: str | None,
                    recipe_lines: list[str], progress: bool = True, started: float | None = None,
                    max_minutes: float | None = None, baseline: Baseline | None = None) -> SourceRun:
    """Validation figures of the kept weights against the zero-training baseline's (the better one is
    kept, and the run says so), then the test queries once, for the kept one only; eval.json, summary.md,
    plots. ``started``/``max_minutes``: the run's clock and bound, recorded in the selection;
    ``baseline``: fitted already (``zero_training_baseline``), else fitted here."""
    out = Path(out)
    dataset, protocol, model = prepared.dataset, prepared.protocol, result.model
    encoder = EncodingMemo(lambda ids: encode_ids(model, dataset, ids, progress=progress))  # each image once
    validation, _ = evaluate_protocol(model, dataset, protocol, progress=progress, test=False, encoder=encoder)
    kept, selection = model, dict(result.selection)
    if validation is not None:
        baseline = baseline or baseline_validation(dataset, protocol.train, protocol.validation, model.n_bits,
                                                   seed=int(model.config["train"]["seed"]), progress=progress)
        trained_map, baseline_map = validation.figures["map_all"], baseline.val_map
        selection.update(baseline=describe_baseline(baseline.hasher), baseline_val_map=baseline_map)
        if trained_map < baseline_map:
            log.warning("the trained model's validation mAP %.4f is below the zero-training baseline's %.4f: "
                        "keeping the baseline (%s/hasher.json); the trained model stays in %s/config.json",
                        trained_map, baseline_map, out, out)
            keep_baseline(out, baseline.hasher)
            kept, encoder, validation = baseline.hasher, baseline.encoder, baseline.validation
            selection.update(kept=f"zero-training baseline (the trained model's validation mAP {trained_map:.4f} "
                                  f"is below its {baseline_map:.4f}); `hashseek index --model {out}` uses it",
                             trained_val_map=trained_map)
    _, test = evaluate_protocol(model, dataset, protocol, progress=progress, validate=False, encoder=encoder)
    if max_minutes is not None and started is not None:
        selection.update(max_minutes=max_minutes, run_seconds=time.perf_counter() - started)
    files = write_run_report(out, kept, dataset, protocol, test, validation, source=prepared.source, recipe=recipe,
                             recipe_lines=recipe_lines, selection=selection, train_seconds=result.seconds,
                             history=result.history, model_dir=out, settings=model.config.get("train") or {},
                             trained_on=model.config.get("trained_on"))
    seconds = None if started is None else time.perf_counter() - started
    return SourceRun(out, kept, result, validation.to_dict() if validation else None, test.to_dict(), files, seconds,
                     selection)


def training_selection(run: Path) -> dict:
    """What the training run's own report says of its selection (the baseline it was held against, its clock),
    which the model's config does not keep; {} without that report."""
    report = run / EVAL_FILE
    try:
        return json.loads(report.read_text()).get("selection") or {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as err:
        log.warning("%s cannot be read (%s): this report leaves out what it said of the selection", report, err)
        return {}


def evaluate_run(run: str | Path, *, source: str | Path | None = None, protocol: Protocol | None = None,
                 out: str | Path | None = None, mirror_average: bool = False, progress: bool = True) -> SourceRun:
    """``hashseek eval --model RUN``: the model on the split saved with it (or ``protocol``), or with
    ``source`` on another labelled source, every image a query against all the others."""
    run = Path(run)
    model = load_model(run)            # the trained model: its config names the split, settings and selection
    kept = run_hasher(run)             # what the run kept: that model, or the zero-training baseline that beat it
    baseline = isinstance(kept, FeatureHasher)
    if mirror_average and not baseline:
        kept.set_mirror_average(True)
    if source is not None:
        dataset, kind, key = open_labelled(source)
        check = check_source(dataset, leave_out_unlabelled=kind == "collection", progress=progress)
        usable = check.usable
        protocol = Protocol(f"{dataset.name}-all", key, 0,
                            "Every readable image of another labelled source is a query against all the others "
                            "(leave-one-out); the model never saw this source.", usable, usable, [],
                            excluded=check.excluded, leave_one_out=True)
    else:
        protocol = protocol or load_run_split(run, model)
        dataset = reopen(protocol)
    validation, test = evaluate_protocol(kept if not baseline else None, dataset, protocol, progress=progress,
                                         validate=source is None,
                                         encoder=hasher_encoder(kept, dataset, progress) if baseline else None)
    out = Path(out) if out is not None else run / "eval"
    selection = dict(model.config.get("selection") or {})
    if baseline:
        selection["kept"] = f"{describe_baseline(kept)}: the trained model was below it on validation"
    selection.update(training_selection(run))
    files = write_run_report(out, kept, dataset, protocol, test, validation, source=protocol.dataset,
                             recipe=model.config.get("recipe"), recipe_lines=[], selection=selection,
                             train_seconds=float(model.config.get("train_seconds", 0.0)),
                             history=model.config.get("history") or [], model_dir=run,
                             settings=model.config.get("train") or {}, trained_on=model.config.get("trained_on"))
    return SourceRun(out, kept, None, validation.to_dict() if validation else None, test.to_dict(), files,
                     selection=selection)
