"""Selection on validation images: the best epoch is kept, early stopping, the warm-up kept when fine-tuning
ends below it, and the test images are never read while training."""
from __future__ import annotations

import numpy as np
import pytest

from hashseek.core.errors import InvalidInputError
from hashseek.train import TrainConfig, Trainer, evaluate_split


def test_the_best_validation_epoch_is_kept_and_test_images_are_never_read(cars_split, watch, tmp_path):
    dataset, train, validation, test = cars_split
    watched = watch(dataset)
    config = TrainConfig(head="gap", loss="csq", bits=32, epochs=24, batch_size=8, lr=3e-3, validate_every=1,
                         patience=0, schedule="constant")
    result = Trainer(config, progress=False).fit(watched, train, validation_ids=validation, out_dir=tmp_path)
    assert watched.touched and not watched.touched & set(test)

    validated = [(h["epoch"], h["val_map"]) for h in result.history if "val_map" in h]
    assert [e for e, _ in validated] == list(range(1, 25))
    best_epoch, best_map = max(validated, key=lambda item: (item[1], -item[0]))
    sel = result.selection
    assert (sel["best_epoch"], sel["best_val_map"], sel["kept"]) == (best_epoch, best_map, "best validation epoch")
    assert "validation" in sel["queries"] and "training" in sel["database"]
    # the returned (and saved) weights are that epoch's: the evaluator gives its figure again
    again = evaluate_split(result.model, dataset, validation, train, progress=False)
    assert again.figures["map_all"] == pytest.approx(best_map, abs=1e-9)
    assert again.sizes == {"query": 12, "database": 24, "query_requested": 12, "database_requested": 24}
    from hashseek.models.hash_model import load_model

    saved = evaluate_split(load_model(tmp_path), dataset, validation, train, progress=False)
    assert saved.figures["map_all"] == pytest.approx(best_map, abs=1e-9)
    logged = (tmp_path / "loss_log.json").read_text()
    assert '"val_map"' in logged


def test_early_stopping_ends_a_run_that_stopped_improving(cars_split):
    dataset, train, validation, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=32, epochs=200, batch_size=8, lr=3e-3, validate_every=1,
                         patience=4)
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation)
    sel = result.selection
    assert sel["stopped_early"] and sel["epochs_run"] < 200
    assert sel["epochs_run"] - sel["best_epoch"] == 4
    assert result.history[-1]["epoch"] == sel["epochs_run"]


def test_a_fine_tuning_run_below_its_warm_up_keeps_the_warm_up_model(cars_split):
    dataset, train, validation, _ = cars_split
    # a trunk learning rate that wrecks the pretrained features in one epoch
    config = TrainConfig(head="gap", loss="csq", bits=32, mode="finetune", epochs=2, batch_size=8, input_size=64,
                         warmup_epochs=12, lr=1e-3, backbone_lr_scale=300.0, backbone_lr_ramp_epochs=0.0)
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation)
    sel = result.selection
    assert sel["kept"].startswith("warm-up"), sel
    assert sel["finetune_best_val_map"] < sel["warmup_val_map"] == sel["best_val_map"]
    assert result.model.config["mode"] == "frozen"          # the head on the untouched pretrained trunk
    stages = [h["stage"] for h in result.history]
    assert stages == ["warmup-all"] * 12 + ["all"] * 2


def test_evaluator_lists_unreadable_images_and_scores_leave_one_out(cars_split, tmp_path):
    from hashseek.data.datasets import FolderDataset

    dataset, train, validation, _ = cars_split
    result = Trainer(TrainConfig(head="gap", loss="csq", bits=32, epochs=3, batch_size=8), progress=False) \
        .fit(dataset, train)
    folder = tmp_path / "photos"
    for image_id in validation:
        target = folder / image_id
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(dataset.read_bytes(image_id))
    broken = folder / validation[0].split("/")[0] / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    photos = FolderDataset(folder)
    record = evaluate_split(result.model, photos, photos.ids, photos.ids, leave_one_out=True, progress=False)
    assert [i for i, _ in record.dropped] == [f"{validation[0].split('/')[0]}/broken.jpg"]
    assert record.sizes["query"] == record.sizes["database"] == 12
    # each query is scored against the 11 others: 2 of them share its class
    assert record.figures["n_database"] == 11 and 0 < record.figures["map_all"] <= 1
    codes = record.database.codes
    manual = []
    from hashseek.core.bits import hamming_distances
    from hashseek.core.metrics import average_precision

    labels = record.database.labels
    for n in range(12):
        others = [m for m in range(12) if m != n]
        d = hamming_distances(codes[n:n + 1], codes[others])
        manual.append(average_precision(d, labels[n:n + 1], labels[others])[0])
    assert record.figures["map_all"] == pytest.approx(np.mean(manual))
    with pytest.raises(InvalidInputError, match="also in the database"):
        evaluate_split(result.model, photos, photos.ids, photos.ids, progress=False)


def test_validation_images_must_be_held_out(cars_split):
    dataset, train, _, _ = cars_split
    with pytest.raises(InvalidInputError, match="validation images are also training images"):
        Trainer(TrainConfig(epochs=1), progress=False).fit(dataset, train, validation_ids=train[:2])


def test_a_time_limit_stops_before_the_epoch_that_would_pass_it(cars_split):
    dataset, train, validation, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=32, epochs=50, batch_size=8, validate_every=1,
                         max_minutes=1e-4)
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation)
    assert result.selection["stopped_for_time"] and result.selection["epochs_run"] == 1
    assert result.selection["kept"] == "best validation epoch" and result.selection["best_epoch"] == 1


def test_a_deadline_passed_in_the_warm_up_starts_no_fine_tuning_epoch_and_keeps_the_warm_up(cars_split):
    import time

    dataset, train, validation, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=32, mode="finetune", epochs=3, batch_size=8, input_size=64,
                         warmup_epochs=2)
    # a deadline already past: the warm-up still gives one validated epoch, no fine-tuning epoch is started
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation,
                                                 deadline=time.perf_counter())
    sel = result.selection
    assert sel["stopped_for_time"] and sel["kept"].startswith("warm-up") and sel["epochs_run"] == 0
    assert [h["stage"] for h in result.history] == ["warmup-all"] and "val_map" in result.history[-1]


def test_the_earlier_deadline_applies_while_the_warm_up_leads(cars_split):
    """Kept, the warm-up encodes at the backbone's own size, so the run passes a second, earlier deadline
    that binds until fine-tuning beats the warm-up on validation: already past, no fine-tuning epoch starts."""
    import time

    dataset, train, validation, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=32, mode="finetune", epochs=3, batch_size=8, input_size=64,
                         warmup_epochs=2)
    now = time.perf_counter()
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation, deadline=now + 600,
                                                 warmup_deadline=now)
    sel = result.selection
    assert sel["stopped_for_time"] and sel["kept"].startswith("warm-up") and sel["epochs_run"] == 0
    assert time.perf_counter() < now + 300


def test_a_frozen_run_at_a_larger_input_reads_its_maps_at_that_size(cars_split, tmp_path):
    from hashseek.models.hash_model import load_model

    dataset, train, validation, _ = cars_split
    config = TrainConfig(head="gap", loss="csq", bits=32, epochs=3, batch_size=8, input_size=256)
    result = Trainer(config, progress=False).fit(dataset, train, validation_ids=validation, out_dir=tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.input_size == 256 and loaded.preprocess.input_size == 256
    again = evaluate_split(loaded, dataset, validation, train, progress=False)   # maps at 256, then the head
    assert again.figures["map_all"] == pytest.approx(result.selection["best_val_map"], abs=1e-9)
    codes, _ = loaded.encode([dataset.read_bytes(i) for i in validation])       # the exported graph at 256
    assert (codes == again.query.codes).mean() > 0.95


def test_a_fine_tuned_model_keeps_the_encode_size_that_validates_better(cars_split, watch, tmp_path):
    """After fine-tuning, the kept weights are validated at 1.15x the training size as well; the saved model
    encodes at the better one, and its figure is the one recorded (test images never read)."""
    from hashseek.models.hash_model import load_model
    from hashseek.train.encode_size import larger_size

    dataset, train, validation, test = cars_split
    watched = watch(dataset)
    config = TrainConfig(head="gap", loss="csq", bits=32, mode="finetune", epochs=2, batch_size=8, input_size=64,
                         warmup_epochs=0, validate_every=1)
    result = Trainer(config, progress=False).fit(watched, train, validation_ids=validation, out_dir=tmp_path)
    assert watched.touched and not watched.touched & set(test)
    sel = result.selection
    tried = sel["encode_size_val_map"]
    assert sel["trained_size"] == 64 and set(tried) == {"64", "80"} and tried["64"] == sel["best_val_map"]
    assert sel["encode_size"] == (80 if tried["80"] > tried["64"] else 64)
    loaded = load_model(tmp_path)
    assert loaded.input_size == sel["encode_size"] and loaded.config["train"]["input_size"] == 64
    again = evaluate_split(loaded, dataset, validation, train, progress=False)
    assert again.figures["map_all"] == pytest.approx(tried[str(sel["encode_size"])], abs=1e-6)
    assert [larger_size(s) for s in (16, 64, 160, 192, 280)] == [32, 80, 192, 224, 320]


def test_the_larger_encode_size_is_not_tried_past_the_deadline(cars_split):
    import time

    import torch

    from hashseek.models.hash_model import HashModel
    from hashseek.train.encode_size import choose_encode_size

    dataset, train, validation, _ = cars_split
    model = HashModel.build("efficientnet_lite0", "gap", 16, loss="csq", mode="finetune", input_size=96)
    record = choose_encode_size(model, dataset, validation, train, torch.device("cpu"), 0.5, 1.0,
                                deadline=time.perf_counter())
    assert record["encode_size"] == model.input_size == 96 and "past the deadline" in record["encode_size_note"]
    # the try alone fits (1.4 s of 60), the final encoding it would lengthen (300 s kept, 38% more) does not
    record = choose_encode_size(model, dataset, validation, train, torch.device("cpu"), 0.5, 1.0,
                                deadline=time.perf_counter() + 60, encoding_after=300.0)
    assert record["encode_size"] == model.input_size == 96 and "longer final encoding" in record["encode_size_note"]


def test_snapshot_folders_of_killed_runs_are_swept_and_live_ones_kept(cars_split):
    """A run killed with kill -9 cannot remove its validation snapshot (an ONNX graph of 13-17 MB); the next
    run's encoder removes those whose process is gone, and never a live run's."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from hashseek.models.hash_model import HashModel
    from hashseek.train.evaluator import SNAPSHOT_PREFIX, SnapshotEncoder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Path(tempfile.mkdtemp(prefix=f"{SNAPSHOT_PREFIX}{int(gone.stdout)}-"))
    live = Path(tempfile.mkdtemp(prefix=f"{SNAPSHOT_PREFIX}{os.getpid()}-"))
    (dead / "graph.onnx").write_bytes(b"\0" * 1024)
    try:
        model = HashModel.build("efficientnet_lite0", "gap", 16, loss="csq", mode="finetune", input_size=64)
        encoder = SnapshotEncoder(model, cars_split[0])
        assert not dead.exists() and live.is_dir()
        encoder(cars_split[2][:2])
        assert encoder.folder is not None
        own = Path(encoder.folder.name).name
        assert own.startswith(f"{SNAPSHOT_PREFIX}{os.getpid()}-")
        encoder.close()
    finally:
        live.rmdir()
