"""`hashseek train SOURCE`: a labelled source -> honest split -> recipe -> model -> report.

Every training flag defaults to "not given": the recipe (``hashseek.train.recipes``) or, with
``--recipe none``, ``TrainConfig`` holds the defaults, and each flag given replaces one setting.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_RECIPE = "fast"
NO_RECIPE = "none"
# flag dest -> TrainConfig field (the same name unless listed in AUGMENT_FLAGS)
CONFIG_FLAGS = ("backbone", "head", "loss", "bits", "mode", "epochs", "batch_size", "optimizer", "lr",
                "augment_copies", "input_size", "warmup_epochs", "backbone_lr_scale", "frozen_stages",
                "precision", "mirror_average", "schedule", "weight_decay", "device", "backbone_weights", "random_init",
                "patience", "validate_every", "seed", "plateau_factor", "plateau_patience")
STAGE_FLAGS = ("stage_lr", "stage_weight_decay")   # STAGE=NUMBER pairs -> TrainConfig's per-stage dicts
AUGMENT_FLAGS = {"min_crop": "min_crop_fraction", "max_degrees": "max_degrees", "crop_shape": "crop_shape"}


def train_overrides(args) -> dict:
    """The TrainConfig settings the flags give (SeedAugment's apart: see ``augment_overrides``)."""
    given = {name: getattr(args, name) for name in CONFIG_FLAGS if getattr(args, name, None) is not None}
    if getattr(args, "no_augment", None):
        given["augment"] = False
    for flag, key in (("head_option", "head_kwargs"), ("loss_option", "loss_kwargs")):
        if getattr(args, flag, None):
            given[key] = parse_options(getattr(args, flag), "--" + flag.replace("_", "-"))
    for name in STAGE_FLAGS:
        if getattr(args, name, None):
            given[name] = parse_stage_values(getattr(args, name), "--" + name.replace("_", "-"))
    return given


def parse_stage_values(pairs: list[str], flag: str) -> dict[str, float]:
    """STAGE=NUMBER pairs (a training stage's own rate or weight decay); TrainConfig checks the stages and values."""
    from hashseek.core.errors import InvalidInputError
    from hashseek.train.config import STAGE_NAMES

    values = {}
    for pair in pairs:
        stage, _, text = pair.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not stage.strip():
            raise InvalidInputError(f"{flag} takes STAGE=NUMBER (stages: {', '.join(STAGE_NAMES)}), got {pair!r}")
        values[stage.strip()] = value
    return values


def parse_options(pairs: list[str], flag: str) -> dict:
    """KEY=VALUE pairs; a value is read as JSON where it is one (numbers, true/false), else as text."""
    import json

    from hashseek.core.errors import InvalidInputError

    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"{flag} takes KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options


def augment_overrides(args) -> dict:
    """SeedAugment settings the flags give; those not given keep the recipe's (or SeedAugment's) own."""
    given = {key: getattr(args, flag) for flag, key in AUGMENT_FLAGS.items() if getattr(args, flag, None) is not None}
    if getattr(args, "no_mirror", None):
        given["mirror"] = False
    return given


def train_config(args):
    """The flags on top of TrainConfig's own defaults (``--recipe none``)."""
    from hashseek.train import TrainConfig

    return TrainConfig(**train_overrides(args), augment_kwargs=augment_overrides(args))


def reserve_line(selection: dict) -> str | None:
    """What the run kept after training for its final evaluation, as its validations timed it; nothing when the
    warm-up was kept (it encodes at the backbone's own size, whose time the warm-up deadline reserved)."""
    from hashseek.train.trainer import KEPT_WARMUP

    after = selection.get("seconds_kept_after_training", {})
    if "measured" not in after or selection.get("kept") == KEPT_WARMUP:
        return None
    return (f"kept {after['measured']} s after training for the final evaluation, as the run's validations timed it "
            f"(the speed probe planned {after['planned']} s)")


def cmd_train(args) -> int:
    import time

    from hashseek.core.errors import InvalidInputError
    from hashseek.eval.run_report import describe_selection
    from hashseek.eval.source_runs import (SPLIT_FILE, default_out, prepare, recipe_plan, report_training,
                                           run_deadlines, train_prepared, zero_training_baseline)
    from hashseek.train import TrainConfig

    started = time.perf_counter()      # --max-minutes bounds the whole command, from here to the report
    recipe = args.recipe or DEFAULT_RECIPE
    if recipe == NO_RECIPE and args.max_minutes is not None:
        raise InvalidInputError("--max-minutes sizes a recipe's run: give --recipe fast or best, or drop it")
    progress = not args.quiet
    train_overrides(args)              # a malformed flag is said before the source is read

    def prepare_split(resume: Path | None):
        return prepare(args.source, dataset=args.dataset, protocol=args.protocol, split=args.split, seed=args.seed,
                       val_fraction=args.val_fraction, test_fraction=args.test_fraction, database=args.database,
                       folders=args.folders, resume=resume, progress=progress)

    prepared = prepare_split(args.out if args.resume else None)
    if args.resume and args.out is None:   # the default run folder resumes on its own saved split too
        args.out = default_out(prepared, recipe, TrainConfig().seed if args.seed is None else args.seed)
        if (args.out / SPLIT_FILE).is_file():
            prepared = prepare_split(args.out)
    print("\n".join(prepared.lines(per_class=False)))
    if not args.no_eval:
        prepared.require_test()
    plan = None
    if recipe == NO_RECIPE:
        config, lines = train_config(args), ["no recipe: TrainConfig's defaults, and the flags given"]
    else:
        plan = recipe_plan(recipe, prepared, max_minutes=args.max_minutes, overrides=train_overrides(args),
                           augment=augment_overrides(args), started=started, evaluate=not args.no_eval)
        config, lines = plan.config, plan.lines
    print(f"recipe {recipe}{'' if args.recipe else ' (the default; --recipe best fine-tunes the network)'}:")
    print("\n".join(f"  {line}" for line in lines))
    out = args.out or default_out(prepared, recipe, config.seed)
    baseline = None if args.no_eval else zero_training_baseline(prepared, config, progress=progress)
    deadlines = {} if plan is None else run_deadlines(plan, started, args.max_minutes)
    result = train_prepared(prepared, config, out, resume=args.resume, recipe=recipe, progress=progress, **deadlines)
    print(f"trained in {result.seconds:.1f} s; model in {out}"
          + (f"; selection: {describe_selection(result.selection)}" if result.selection else ""))
    sel = result.selection
    if sel.get("stopped_for_time") or sel.get("epochs_planned", config.epochs) < config.epochs:
        print(f"on time: {sel['epochs_run']} of {config.epochs} epochs fit the training deadline"
              + (" (stopped at it)" if sel.get("stopped_for_time") else " (the schedule was re-planned to end there)")
              + f"; kept {sel['kept']}")
    reserve = reserve_line(sel)
    if reserve:
        print(reserve)
    if not args.no_eval:
        run = report_training(prepared, result, out, recipe=recipe, recipe_lines=lines, progress=progress,
                              started=started, max_minutes=args.max_minutes, baseline=baseline)
        if run.model is not result.model:
            print(f"kept: {run.selection['kept']}")
        print_figures(run, out)
        print(f"report: {out}/summary.md, {out}/eval.json and plots; split: {out}/split.json.gz")
    if args.max_minutes is not None:
        print(f"the whole run took {(time.perf_counter() - started) / 60:.2f} min of the {args.max_minutes:g} allowed")
    return 0


def print_figures(run, out: Path) -> None:
    """The validation and test lines of a run (``train`` and ``eval --model`` print the same)."""
    for part, figures in (("validation", run.validation), ("test", run.test)):
        if figures:
            print(f"{part:<10} ({figures['sizes']['query']} queries / {figures['sizes']['database']} database"
                  f"{', leave-one-out' if figures.get('leave_one_out') else ''}): mAP@all {figures['map_all']:.4f}  "
                  f"P@20 {_f(figures['precision_at_20'])}  top-8 vote {_f(figures['vote_accuracy_top8'])}"
                  + (f"  own classifier {figures['classifier_accuracy']:.4f}" if "classifier_accuracy" in figures
                     else ""))
            if "classifier_calibration" in figures:
                calibration = figures["classifier_calibration"]
                print(f"{'':<10} own classifier's probabilities: mean confidence {calibration['confidence']:.4f}, "
                      f"expected calibration error {calibration['ece']:.4f}")
            if "tie_aware" in figures:
                ties = figures["tie_aware"]
                print(f"{'':<10} tie-aware (expected over random order of equal distances): mAP@all "
                      f"{ties['map_all']:.4f}  P@20 {_f(ties['precision_at_20'])}  "
                      f"top-8 vote {_f(ties['vote_accuracy_top8'])}")
            if "held_out" in figures:
                held = figures["held_out"]
                print(f"{'':<10} held out (the {held['n_query']} validation images searching each other, no "
                      f"training image): mAP@all {held['map_all']:.4f} (tie-aware {held['tie_aware']['map_all']:.4f})"
                      f"  top-8 vote {_f(held['vote_accuracy_top8'])}")
            for classes, which in (("seen", "the trained classes"), ("unseen", "classes never trained on")):
                if classes in figures:
                    apart = figures[classes]
                    print(f"{'':<10} {classes} ({apart['n_query']} queries of {which}): mAP@all "
                          f"{apart['map_all']:.4f}  top-8 vote {_f(apart['vote_accuracy_top8'])}"
                          + (f"  own classifier {apart['classifier_accuracy']:.4f}"
                             if "classifier_accuracy" in apart else ""))
            if "searched" in figures:
                found = figures["searched"]
                print(f"{'':<10} as searched (the collection's default: {found['candidates']} Hamming candidates "
                      f"re-ranked): mAP@all {found['map_all']:.4f}  P@20 {_f(found['precision_at_20'])}  "
                      f"top-8 vote {_f(found['vote_accuracy_top8'])}")
    if run.test["n_dropped"]:
        print(f"{run.test['n_dropped']} test image(s) could not be read (listed in {out}/eval.json)")


def _f(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def add_split_args(p: argparse.ArgumentParser) -> None:
    """Flags that draw a user's split; their defaults are SplitSettings'."""
    from hashseek.data.splits import DATABASES, SplitSettings

    d = SplitSettings()
    p.add_argument("--seed", type=int, help=f"seed of the split and of training (default {d.seed})")
    p.add_argument("--val-fraction", type=float,
                   help=f"share of each class held out for selection (default {d.val_fraction})")
    p.add_argument("--test-fraction", type=float,
                   help=f"share of each class kept as test queries (default {d.test_fraction})")
    p.add_argument("--database", choices=DATABASES,
                   help="database of the test figures: the training + validation images (split) or every image of "
                        f"the source, each query left out of its own ranking (all) (default {d.database})")
    p.add_argument("--resplit", dest="folders", action="store_const", const=False,
                   help="draw a random split of all the images even when the source has its own train/ val/ test/ "
                        "folders (by default they give the split, and a missing part is drawn from train/)")


def register(sub) -> None:
    from hashseek.losses import list_losses
    from hashseek.models.heads import list_heads
    from hashseek.train.config import OPTIMIZERS, SCHEDULES, STAGE_NAMES
    from hashseek.train.precision import PRECISIONS
    from hashseek.train.recipes import list_recipes

    p = sub.add_parser("train", help="train a hashing model on labelled images: split, recipe, selection on "
                                     "validation, report on the test queries")
    p.add_argument("source", nargs="?",
                   help="a folder with one sub-folder per class, a tar archive of such folders, a collection "
                        "directory, or a built-in dataset (caltech101, cifar10, cars-bmw13)")
    p.add_argument("--dataset", help="built-in dataset (its protocol gives the split); same as SOURCE")
    p.add_argument("--protocol", help="built-in protocol (caltech101, cars-bmw13, cars-bmw13-unseen, cifar10)")
    p.add_argument("--split", type=Path, help="a split written by `hashseek split` (instead of drawing one)")
    add_split_args(p)
    p.add_argument("--recipe", choices=[*list_recipes(), NO_RECIPE],
                   help="fast: head on frozen maps (default); best: end-to-end fine-tuning; none: TrainConfig's "
                        "defaults. Every flag below replaces one of its settings")
    p.add_argument("--max-minutes", type=float, help="bound the run: the recipe sizes epochs (and input) to fit")
    p.add_argument("--backbone")
    p.add_argument("--backbone-weights", help="local weights file (a state dict in the layout the backbone documents)")
    p.add_argument("--random-init", action="store_true", default=None, help="train the backbone from random weights")
    p.add_argument("--head", choices=list_heads())
    p.add_argument("--loss", choices=list_losses())
    p.add_argument("--head-option", action="append", metavar="KEY=VALUE",
                   help="an option of the head's constructor, e.g. clusters=64 for netvlad (repeatable)")
    p.add_argument("--loss-option", action="append", metavar="KEY=VALUE",
                   help="an option of the loss's constructor, e.g. bank=true for dpsh, dsh, hashnet (repeatable)")
    p.add_argument("--bits", type=int)
    p.add_argument("--mode", choices=["frozen", "finetune"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=SCHEDULES, help="plateau: the rate times --plateau-factor after more than "
                                                         "--plateau-patience validations without a better mAP")
    p.add_argument("--plateau-factor", type=float,
                   help="plateau schedule: the rate's factor at each reduction, in (0, 1)")
    p.add_argument("--plateau-patience", type=int,
                   help="plateau schedule: validations without a better mAP tolerated before a reduction")
    p.add_argument("--stage-lr", action="append", metavar="STAGE=RATE",
                   help=f"a training stage's own learning rate (Bilinear-HashNet's recipe; repeatable); stages: "
                        f"{', '.join(STAGE_NAMES)}; the others use --lr")
    p.add_argument("--stage-weight-decay", action="append", metavar="STAGE=DECAY",
                   help="a training stage's own weight decay (repeatable); the others use --weight-decay")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better validation mAP "
                                                "(0: never stop early)")
    p.add_argument("--validate-every", type=int, help="epochs between validations")
    p.add_argument("--augment-copies", type=int, help="frozen mode: seed-augmented copies per image")
    p.add_argument("--no-augment", action="store_true", default=None,
                   help="fine-tuning without the seed augmentation")
    p.add_argument("--min-crop", type=float,
                   help="seed augmentation: smallest crop, as a fraction of each side (square crops: of the shorter "
                        "side)")
    p.add_argument("--max-degrees", type=float, help="seed augmentation: largest rotation")
    p.add_argument("--crop-shape", choices=["image", "square"],
                   help="seed augmentation: crops with the image's own aspect ratio (image) or the vehicle paper's "
                        "square crops")
    p.add_argument("--no-mirror", action="store_true", default=None,
                   help="seed augmentation without the left-right mirror (text, digits, asymmetric layouts)")
    p.add_argument("--mirror-average", action="store_true", default=None,
                   help="the saved model encodes each image with its left-right mirror, averaged (2x encode time)")
    p.add_argument("--input-size", type=int, help="input size of the network (frozen: of the cached maps; "
                                                  "fine-tuning: reduced resolution on CPU)")
    p.add_argument("--warmup-epochs", type=int,
                   help="fine-tuning: first train the head alone on frozen maps for this many epochs")
    p.add_argument("--backbone-lr-scale", type=float,
                   help="fine-tuning: the backbone's learning rate is --lr times this")
    p.add_argument("--frozen-stages", type=int,
                   help="fine-tuning: the backbone's first N stages keep their pretrained weights (faster steps)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="fine-tuning: the trunk's steps in bfloat16 autocast (auto: where the CPU or GPU has "
                        "bfloat16 arithmetic; about 2x faster on a CPU with AVX-512 BF16)")
    p.add_argument("--device", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    p.add_argument("--out", type=Path, help="run folder: model, split.json.gz, eval.json, summary.md, plots "
                                            "(default runs/<split>-<recipe>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last completed epoch")
    p.add_argument("--no-eval", action="store_true", help="train only; no test evaluation or report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)
