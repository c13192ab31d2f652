"""The user path of issue #13 from the CLI: labelled folder -> split -> recipe -> model -> report -> eval."""
from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

import pytest

from hashseek.cli import main
from hashseek.core.errors import InvalidInputError
from hashseek.data.protocols import Protocol
from hashseek.eval.report import write_results_page
from hashseek.eval.trained_runs import record_name, trained_curves, trained_tables
from hashseek.train.trainer import KEPT_WARMUP

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import run_all  # noqa: E402


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory):
    """One short `--recipe fast` run on the folder, shared by the tests that read its report."""
    out = tmp_path_factory.mktemp("runs") / "photos-fast"
    code = main(["train", str(photos), "--recipe", "fast", "--epochs", "3", "--seed", "1", "--out", str(out), "-q"])
    assert code == 0
    return out


def test_a_folder_trains_end_to_end_and_the_report_keeps_validation_and_test_apart(run, photos):
    split = Protocol.load(run / "split.json.gz")
    assert split.dataset == str(photos.resolve()) and split.seed == 1
    assert split.sizes() == {"train": 32, "validation": 8, "query": 8, "database": 40}   # 4 x (8 + 2 + 2)
    report = json.loads((run / "eval.json").read_text())
    assert report["recipe"] == "fast" and report["recipe_lines"]
    assert report["settings"]["epochs"] == 3 and report["settings"]["seed"] == 1      # the flag replaced one setting
    assert report["split"]["sizes"] == split.sizes() and report["train_seconds"] > 0
    assert report["validation"]["sizes"]["query"] == 8 and report["validation"]["sizes"]["database"] == 32
    assert report["test"]["sizes"]["query"] == 8 and report["test"]["sizes"]["database"] == 40
    assert 0 < report["test"]["map_all"] <= 1 and 0 < report["validation"]["map_all"] <= 1
    for part in ("validation", "test"):   # both tie rules, on the same codes
        ties = report[part]["tie_aware"]
        assert 0 < ties["map_all"] <= 1 and "tie-aware" in ties["tie_rule"]
    summary = (run / "summary.md").read_text()
    assert "| figure | validation (selection) | test queries" in summary and "| BMW_1_Series" in summary
    assert "| mAP@all, tie-aware |" in summary
    for part in ("validation", "test"):   # as a collection of this model searches, with the search defaults
        searched = report[part]["searched"]
        assert 0 < searched["map_all"] <= 1 and "re-ranked by cosine" in searched["ranking"]
    assert "| mAP@all, as searched |" in summary and "As searched: " in summary
    held = report["validation"]["held_out"]   # the validation images searching each other: no training image
    assert held["n_query"] == 8 and 0 < held["map_all"] <= 1 and "held_out" not in report["test"]
    assert "| mAP@all, validation images searching each other (held out) |" in summary and "Held out: " in summary
    assert list(run.glob("*.png")) and (run / "model.safetensors").is_file()


def test_eval_model_reads_the_saved_split(run, capsys):
    capsys.readouterr()
    assert main(["eval", "--model", str(run), "-q"]) == 0
    out = capsys.readouterr().out
    trained = json.loads((run / "eval.json").read_text())
    again = json.loads((run / "eval" / "eval.json").read_text())
    assert again["split"] == trained["split"]
    assert again["selection"] == trained["selection"]   # the baseline it was held against, its clock: kept
    assert again["test"]["map_all"] == pytest.approx(trained["test"]["map_all"])
    assert "test       (8 queries / 40 database)" in out and "tie-aware (expected over random order" in out
    assert again["test"]["tie_aware"]["map_all"] == pytest.approx(trained["test"]["tie_aware"]["map_all"])
    assert "as searched (the collection's default" in out
    assert "held out (the 8 validation images searching each other" in out
    assert again["validation"]["held_out"]["map_all"] == pytest.approx(trained["validation"]["held_out"]["map_all"])
    assert again["test"]["searched"]["map_all"] == pytest.approx(trained["test"]["searched"]["map_all"])


def test_eval_model_with_a_damaged_training_report_says_so_and_still_reports(run, tmp_path, caplog):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "eval.json").write_text("{half written")
    assert main(["eval", "--model", str(copy), "-q"]) == 0
    assert "eval.json cannot be read" in caplog.text
    again = json.loads((copy / "eval" / "eval.json").read_text())
    assert again["test"]["map_all"] > 0 and "baseline_val_map" not in again["selection"]


def test_eval_model_leaves_out_photos_deleted_since_training(run, photos, capsys, caplog):
    split = Protocol.load(run / "split.json.gz")
    gone = photos / split.query[0]
    kept = gone.read_bytes()
    gone.unlink()
    try:
        capsys.readouterr()
        assert main(["eval", "--model", str(run), "--out", str(run / "eval-deleted"), "-q"]) == 0
    finally:
        gone.write_bytes(kept)
    report = json.loads((run / "eval-deleted" / "eval.json").read_text())
    assert report["test"]["sizes"]["query"] == len(split.query) - 1
    assert "no longer in the source" in report["split"]["unreadable"][split.query[0]]
    assert "1 image(s) of the split are no longer in" in caplog.text


def test_eval_on_another_folder_is_leave_one_out(run, other_photos, capsys):
    capsys.readouterr()
    assert main(["eval", "--model", str(run), "--source", str(other_photos), "-q"]) == 0
    report = json.loads((run / "eval-others" / "eval.json").read_text())
    assert report["validation"] is None and report["test"]["leave_one_out"]
    assert report["test"]["sizes"]["query"] == report["test"]["sizes"]["database"] == 24
    assert "leave-one-out" in capsys.readouterr().out


def test_resume_keeps_its_own_split_after_photos_were_added_and_deleted(run, photos, tmp_path, caplog):
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    split = Protocol.load(run / "split.json.gz")
    gone, added = photos / split.train[0], photos / Path(split.train[1]).parent / "added since.jpg"
    kept = gone.read_bytes()
    added.write_bytes(kept)
    gone.unlink()
    try:
        assert main(["train", str(photos), "--recipe", "fast", "--epochs", "3", "--seed", "1", "--resume", "--out",
                     str(resumed), "-q"]) == 0
    finally:
        gone.write_bytes(kept)
        added.unlink()
    again = Protocol.load(resumed / "split.json.gz")
    assert again.train == split.train[1:] and again.query == split.query and again.validation == split.validation
    assert "no longer in the source" in again.excluded[split.train[0]]
    assert "1 image(s) of the split are no longer in" in caplog.text


def test_resume_without_out_continues_the_default_run_folder_on_its_own_split(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", str(photos), "--recipe", "fast", "--epochs", "2", "--seed", "3", "--no-eval", "-q"]
    assert main(argv) == 0
    [folder] = (tmp_path / "runs").iterdir()
    split = Protocol.load(folder / "split.json.gz")
    added = photos / Path(split.train[0]).parent / "added since.jpg"
    added.write_bytes((photos / split.train[0]).read_bytes())   # a redrawn split would differ
    try:
        assert main([*argv, "--resume"]) == 0
    finally:
        added.unlink()
    assert Protocol.load(folder / "split.json.gz").train == split.train and list((tmp_path / "runs").iterdir()) == [folder]


def test_resume_refuses_another_split_and_a_rerun_needs_resume(run, photos, capsys):
    assert main(["train", str(photos), "--recipe", "fast", "--epochs", "3", "--out", str(run), "-q"]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    assert main(["train", str(photos), "--seed", "2", "--resume", "--out", str(run), "-q"]) == 2
    assert "was trained on another split" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--protocol", "cars-bmw13"], "--protocol cars-bmw13 picks a built-in dataset's split, but SOURCE"),
    (["--dataset", "cars-bmw13"], "drop --dataset cars-bmw13 to train on"),
    (["--val-fraction", "0.9", "--test-fraction", "0.5"], "must leave images to train on"),
])
def test_contradictory_flags_fail_with_a_clear_message(photos, argv, message, capsys):
    assert main(["train", str(photos), *argv, "-q"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["caltech101", "--dataset", "cars-bmw13"], "SOURCE caltech101 and --dataset cars-bmw13 disagree"),
    (["--dataset", "caltech101", "--protocol", "cars-bmw13"], "--protocol cars-bmw13 splits cars-bmw13"),
    (["cars-bmw13", "--test-fraction", "0.3"], "the built-in protocol 'cars-bmw13' fixes its own split"),
    (["--protocol", "no-such"], "unknown protocol 'no-such'"),
    ([], "nothing to train on: give SOURCE"),
    (["/no/such/folder"], "no such folder or archive"),
    (["cars-bmw13", "--recipe", "none", "--max-minutes", "3"], "--max-minutes sizes a recipe's run"),
])
def test_contradictory_builtin_choices_fail_with_exit_code_2(argv, message, capsys):
    assert main(["train", *argv, "-q"]) == 2
    assert message in capsys.readouterr().err


def test_split_command_writes_a_loadable_file(photos, tmp_path, capsys):
    out = tmp_path / "s.json.gz"
    assert main(["split", str(photos), "--out", str(out), "--seed", "5", "--val-fraction", "0.25", "-q"]) == 0
    printed = capsys.readouterr().out
    split = Protocol.load(out)
    assert split.seed == 5 and split.sizes()["validation"] == 12 and "| class | training |" in printed
    assert main(["split", str(photos), "--out", str(tmp_path / "t.json.gz"), "--seed", "5", "--val-fraction", "0.25",
                 "-q"]) == 0
    assert Protocol.load(tmp_path / "t.json.gz") == split                                   # reproducible
    assert main(["train", str(photos), "--split", str(out), "--test-fraction", "0.1", "-q"]) == 2
    assert "is a split already drawn" in capsys.readouterr().err


def test_a_split_of_another_source_is_refused(photos, other_photos, tmp_path, capsys):
    out = tmp_path / "other.json.gz"
    assert main(["split", str(other_photos), "--out", str(out), "-q"]) == 0
    assert main(["train", str(photos), "--split", str(out), "-q"]) == 2
    assert "was drawn from" in capsys.readouterr().err


def test_a_single_class_folder_is_refused(make_photos, cars_bmw13, capsys):
    root = make_photos("one", cars_bmw13.classes[:1], 5)
    assert main(["train", str(root), "-q"]) == 2
    assert "at least two classes" in capsys.readouterr().err


def test_a_collection_trains_on_its_labelled_library_and_eval_reopens_it(photos, tmp_path, capsys):
    collection, out = tmp_path / "C", tmp_path / "run"
    assert main(["index", str(photos), "--collection", str(collection), "--bits", "32", "-q"]) == 0
    assert main(["train", str(collection), "--recipe", "fast", "--epochs", "2", "--augment-copies", "0",
                 "--out", str(out), "-q"]) == 0
    split = Protocol.load(out / "split.json.gz")
    assert split.dataset == str(collection.resolve()) and split.sizes()["train"] == 32
    assert main(["eval", "--model", str(out), "-q"]) == 0
    assert "test       (8 queries / 40 database)" in capsys.readouterr().out


def test_the_python_api_runs_the_whole_loop_and_lists_unreadable_files(make_photos, cars_bmw13, tmp_path):
    from hashseek.eval.source_runs import train_on_source

    photos = make_photos("api", cars_bmw13.classes[:4], 12)
    broken = photos / cars_bmw13.classes[2] / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    run = train_on_source(photos, "fast", tmp_path / "api", seed=3, overrides={"epochs": 2, "augment_copies": 0},
                          database="all", progress=False)
    assert run.test["leave_one_out"] and run.test["sizes"] == {"query": 8, "database": 48, "query_requested": 8,
                                                               "database_requested": 48}
    assert run.validation["sizes"]["database"] == 32 and run.result.model.config["train"]["seed"] == 3
    split = Protocol.load(run.out / "split.json.gz")
    image_id = f"{cars_bmw13.classes[2]}/broken.jpg"
    assert split.leave_one_out and list(split.excluded) == [image_id]
    assert json.loads((run.out / "eval.json").read_text())["split"]["unreadable"] == split.excluded
    assert f"1 image(s) left out of every part:\n  {image_id}: " in (run.out / "summary.md").read_text()


def test_a_builtin_protocol_written_by_split_is_taken_back_by_train(tmp_path, capsys):
    out = tmp_path / "cars.json.gz"
    assert main(["split", "cars-bmw13", "--out", str(out), "--seed", "2", "-q"]) == 0
    assert "hashseek train cars-bmw13 --split" in capsys.readouterr().out
    assert Protocol.load(out).sizes() == {"query": 206, "database": 325, "train": 260, "validation": 65}
    assert main(["train", "cars-bmw13", "--split", str(out), "--protocol", "cars-bmw13", "-q"]) == 2
    assert "both choose the split" in capsys.readouterr().err


def test_flags_not_given_leave_the_recipe_alone_and_each_given_one_replaces_one_setting():
    from hashseek.cli import build_parser
    from hashseek.cli.train import augment_overrides, train_config, train_overrides
    from hashseek.train import TrainConfig
    from hashseek.train.recipes import resolve_recipe

    parse = build_parser().parse_args
    plain = parse(["train", "photos"])
    assert train_overrides(plain) == {} and augment_overrides(plain) == {} and train_config(plain) == TrainConfig()
    tuned = parse(["train", "photos", "--min-crop", "0.6", "--no-mirror", "--epochs", "7", "--mirror-average",
                   "--device", "cpu"])
    assert train_overrides(tuned) == {"epochs": 7, "mirror_average": True, "device": "cpu"}
    assert augment_overrides(tuned) == {"min_crop_fraction": 0.6, "mirror": False}
    config, _ = resolve_recipe("best", n_train=100, n_classes=4,
                               overrides={**train_overrides(tuned), "augment_kwargs": augment_overrides(tuned)})
    best, _ = resolve_recipe("best", n_train=100, n_classes=4)
    assert config.augment_kwargs == {**best.augment_kwargs, "min_crop_fraction": 0.6, "mirror": False}
    assert (config.epochs, config.device, config.input_size, config.loss) == (7, "cpu", best.input_size, best.loss)


def test_a_train_run_reaches_the_results_page_as_mean_and_sd_over_its_seeds(run, tmp_path):
    """`run_all.py --trained RUN` keeps the run's figures beside the page; two seeds of one setting share a
    row (mean and sd) and each keeps its own row below it."""
    report = json.loads((run / "eval.json").read_text())
    other = {**report, "split": {**report["split"], "seed": 7},
             "test": {**report["test"], "map_all": report["test"]["map_all"] / 2}}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "eval.json").write_text(json.dumps(other))
    folder = tmp_path / "results" / "trained"
    records = run_all.trained_runs([run, tmp_path / "other"], folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        f"{report['split']['name']}-gap_csq-efficientnet_lite0-64b-seed{s}.json" for s in (1, 7)]
    assert all("history" not in r for r in records)
    page = write_results_page([], [], tmp_path / "results.md", "x", run_all.machine(), [], [64], trained=records)
    text = page.read_text()
    assert f"## {report['split']['name']} (a user's source, its own split)" in text
    assert f"`hashseek train {Path(report['source']).name}`" in text
    maps = [report["test"]["map_all"], other["test"]["map_all"]]
    summary = [line for line in text.splitlines() if line.startswith("| gap+csq | frozen")]
    assert len(summary) == 1 and "| 1, 7 |" in summary[0]
    assert f"| {statistics.mean(maps):.3f} ({statistics.stdev(maps):.3f}) |" in summary[0]
    per_run = [line for line in text.splitlines() if line.startswith("| gap+csq | 64 |")]
    assert [line.split(" | ")[2] for line in per_run] == ["1", "7"]
    assert f"| {maps[1]:.3f} |" in per_run[1]
    kept = {**records[0], "frozen_stages": 3}   # a fine-tuning setting of its own: its own file and row
    assert record_name(kept) == f"{report['split']['name']}-gap_csq-efficientnet_lite0-64b-frozen3-seed1.json"
    rows = "\n".join(trained_tables([records[0], kept])).splitlines()
    assert sum(line.startswith("| gap+csq | frozen") for line in rows) == 2
    assert sum("(first 3 stages kept)" in line for line in rows) == 1
    reduced = {**kept, "precision": "bfloat16"}   # bfloat16 steps: a row and a file of their own too
    assert record_name(reduced) == record_name(kept).replace("-frozen3-", "-frozen3-bf16-")
    limits = {record_name({**reduced, "max_minutes": m}) for m in (15, 30.2)}   # a longer run does not replace it
    assert limits == {record_name(reduced).replace("-bf16-", f"-bf16-{m}min-") for m in (15, 30)}
    rows = "\n".join(trained_tables([kept, reduced])).splitlines()
    assert sum(line.startswith("| gap+csq | frozen") for line in rows) == 2
    assert sum(", cpu in bfloat16" in line for line in rows) == 1
    warm = {**reduced, "kept": "trained",
            "selection": {**reduced["selection"], "kept": KEPT_WARMUP, "best_epoch": 100}}
    rows = "\n".join(trained_tables([warm])).splitlines()   # fine-tuning ended below its warm-up: the page says so
    assert sum("(kept the warm-up on frozen maps)" in line for line in rows) == 1


def test_a_setting_trained_at_two_code_lengths_gets_a_plot_and_old_reports_take_their_class_parts(run, tmp_path):
    """The page plots a setting's runs over code length once it has two lengths (mean of the seeds); an
    eval.json written before it kept the seen/unseen parts takes them from its run's results.json."""
    report = json.loads((run / "eval.json").read_text())
    runs = []
    for bits, seed, scale in ((64, 1, 1.0), (16, 1, 0.5), (16, 2, 0.7)):
        folder = tmp_path / f"run-{bits}-{seed}"
        folder.mkdir()
        (folder / "eval.json").write_text(json.dumps({
            **report, "split": {**report["split"], "seed": seed}, "settings": {**report["settings"], "bits": bits},
            "test": {**report["test"], "map_all": report["test"]["map_all"] * scale}}))
        runs.append(folder)
    part = {"classes": ["a"], "n_query": 3, "map_all": 0.25, "vote_accuracy_top8": 1 / 3, "confusion_matrix": [[3]]}
    (runs[0] / "results.json").write_text(json.dumps({"records": [{"seen": part, "unseen": {**part, "map_all": 0.5}}]}))
    records = run_all.trained_runs(runs, tmp_path / "results" / "trained")
    old = next(r for r in records if r["bits"] == 64)
    assert old["test"]["unseen"] == {k: v for k, v in part.items() if k != "confusion_matrix"} | {"map_all": 0.5}
    assert all("unseen" not in r["test"] for r in records if r["bits"] == 16)
    page = write_results_page([], [], tmp_path / "results.md", "x", run_all.machine(), [], [16, 64], trained=records)
    name = report["split"]["name"]
    assert f"![trained_vs_bits](results/{name}-trained-vs-bits.png)" in page.read_text().splitlines()
    assert (tmp_path / "results" / f"{name}-trained-vs-bits.png").stat().st_size > 10_000
    (curve,) = trained_curves(records)
    maps = [report["test"]["map_all"] * s for s in (0.5, 0.7)]
    assert [(p["bits"], p["seeds"]) for p in curve["points"]] == [(16, 2), (64, 1)]
    assert curve["points"][0]["map_all"] == pytest.approx((statistics.mean(maps), statistics.stdev(maps)))
    assert trained_curves([r for r in records if r["bits"] == 16]) == []   # one length: nothing to plot


def test_a_report_without_test_figures_is_refused_by_name(run, tmp_path):
    report = json.loads((run / "eval.json").read_text())
    del report["test"]
    (tmp_path / "eval.json").write_text(json.dumps(report))
    with pytest.raises(InvalidInputError, match=r"eval\.json is not the eval\.json of a `hashseek train` run.*lacks test"):
        run_all.trained_runs([tmp_path / "eval.json"], tmp_path / "trained")
    with pytest.raises(SystemExit, match="no eval.json there"):
        run_all.trained_runs([tmp_path / "missing"], tmp_path / "trained")


def test_a_folder_too_small_to_test_is_refused_before_training_unless_no_eval(make_photos, cars_bmw13, tmp_path,
                                                                               capsys):
    root = make_photos("singles", cars_bmw13.classes[:3], 1)
    assert main(["train", str(root), "--recipe", "fast", "--out", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "leaves no test queries: its classes have at most 1 image(s) each" in err and "--no-eval" in err
    assert not (tmp_path / "run").exists()                    # said before training, nothing half-made
    assert main(["train", str(root), "--recipe", "fast", "--epochs", "2", "--no-eval",
                 "--out", str(tmp_path / "run"), "-q"]) == 0
    assert (tmp_path / "run" / "config.json").is_file() and not (tmp_path / "run" / "eval.json").exists()
