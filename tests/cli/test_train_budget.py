"""--max-minutes is a hard bound on the whole run, and a run below the zero-training baseline keeps the baseline."""
from __future__ import annotations

import json
import time

from hashseek.cli import main
from hashseek.core.hasher import load_image_hasher
from hashseek.eval.source_runs import prepare, recipe_plan, train_on_source
from hashseek.search.feature_hasher import FeatureHasher
from hashseek.train.recipes import REPORT_SECONDS, RESERVE_MARGIN

BUDGET_MINUTES = 0.6


def test_max_minutes_bounds_the_whole_run_and_keeps_the_best_validated_epoch(make_photos, cars_bmw13, tmp_path):
    photos = make_photos("bounded", cars_bmw13.classes[:4], 12)
    start = time.perf_counter()
    # 50,000 epochs cannot fit 36 s (given, so the plan may not shrink them): the deadline has to end training
    run = train_on_source(photos, "fast", tmp_path / "run", max_minutes=BUDGET_MINUTES, progress=False,
                          overrides={"epochs": 50_000, "patience": 0, "augment_copies": 1})
    seconds = time.perf_counter() - start
    assert seconds <= 60 * BUDGET_MINUTES + 4, f"the run took {seconds:.1f} s for a {60 * BUDGET_MINUTES:.0f} s bound"
    sel = run.selection
    assert sel["stopped_for_time"] and sel["epochs_run"] < 50_000 and sel["epochs_planned"] < 50_000
    assert sel["max_minutes"] == BUDGET_MINUTES and sel["run_seconds"] <= seconds
    report = json.loads((run.out / "eval.json").read_text())
    assert report["selection"]["stopped_for_time"] and report["test"]["map_all"] > 0
    assert any("does NOT fit: the deadline will cut it" in line for line in report["recipe_lines"])
    assert any("kept for the final evaluation and the report" in line for line in report["recipe_lines"])
    validated = [h for h in run.result.history if "val_map" in h]
    assert sel["best_val_map"] == max(h["val_map"] for h in validated)    # the best validated epoch, not the last
    assert "stopped_for_time True" in (run.out / "summary.md").read_text()


def test_a_run_below_the_zero_training_baseline_keeps_the_baseline_and_says_so(make_photos, cars_bmw13, tmp_path,
                                                                                capsys):
    photos = make_photos("crippled", cars_bmw13.classes[4:8], 12)
    out = tmp_path / "run"
    # one epoch at a learning rate that cannot move the head: the codes are those of its random init
    assert main(["train", str(photos), "--recipe", "fast", "--epochs", "1", "--lr", "1e-9", "--augment-copies", "0",
                 "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "kept: zero-training baseline" in printed
    report = json.loads((out / "eval.json").read_text())
    sel = report["selection"]
    assert sel["trained_val_map"] < sel["baseline_val_map"] == report["validation"]["map_all"]
    assert report["model"]["type"] == "pretrained+shallow" and report["settings"]["lr"] == 1e-9
    assert "zero-training baseline" in (out / "summary.md").read_text()
    kept = load_image_hasher(out)                          # what `hashseek index --model RUN` and `reindex` load
    assert isinstance(kept, FeatureHasher) and kept.n_bits == 64 and kept.is_fitted
    assert (out / "model.safetensors").is_file()           # the trained model stays for inspection
    assert main(["eval", "--model", str(out), "-q"]) == 0   # evaluates what the run kept
    again = json.loads((out / "eval" / "eval.json").read_text())
    assert again["test"]["map_all"] == report["test"]["map_all"]
    assert again["validation"]["map_all"] == sel["baseline_val_map"]
    collection = tmp_path / "photos.hs"
    assert main(["index", str(photos), "--collection", str(collection), "--model", str(out), "-q"]) == 0
    assert main(["info", str(collection)]) == 0
    assert "pretrained+shallow" in capsys.readouterr().out


def test_no_eval_keeps_no_time_for_a_test_evaluation(photos):
    """`train --no-eval --max-minutes M` runs no test evaluation, so its plan must not hold time back for one
    (a cifar10 fine-tuning probe had 20 of its 10 minutes reserved and trained no epoch)."""
    prepared = prepare(photos, seed=0, progress=False)
    evaluated = recipe_plan("fast", prepared, max_minutes=5)
    alone = recipe_plan("fast", prepared, max_minutes=5, evaluate=False)
    assert alone.reserve_seconds == RESERVE_MARGIN * REPORT_SECONDS < evaluated.reserve_seconds
    assert any("kept for the report (no test evaluation)" in line for line in alone.lines)
    assert any("kept for the final evaluation and the report" in line for line in evaluated.lines)


def test_the_re_timed_reserve_is_said_unless_the_warm_up_was_kept():
    """The warm-up encodes at the backbone's own size, reserved apart: the fine-tuned model's timing is not its."""
    from hashseek.cli.train import reserve_line
    from hashseek.train.trainer import KEPT_WARMUP

    timed = {"seconds_kept_after_training": {"planned": 49, "measured": 43}, "kept": "best validation epoch"}
    assert reserve_line(timed) == ("kept 43 s after training for the final evaluation, as the run's validations "
                                   "timed it (the speed probe planned 49 s)")
    assert reserve_line({**timed, "kept": KEPT_WARMUP}) is None
    assert reserve_line({"kept": "best validation epoch"}) is None
