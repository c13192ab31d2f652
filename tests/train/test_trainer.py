"""The one trainer on a small real slice: every head+loss combination learns, checkpoints resume."""
from pathlib import Path

import numpy as np
import pytest
import torch

from hashseek.core.bits import hamming_distances
from hashseek.core.errors import InvalidInputError
from hashseek.core.metrics import retrieval_report
from hashseek.hashers import create_hasher
from hashseek.models.features import BackboneEncoder, extract_features
from hashseek.models.hash_model import load_model
from hashseek.train import TrainConfig, Trainer, evaluate_split

COMBINATIONS = [("fc", "hashnet"), ("gap", "hashnet"), ("bilinear", "hashnet"), ("spp_pmt", "multitask"),
                ("latent", "ce"), ("gap", "csq"), ("gap", "dpsh"), ("gap", "dsh"), ("gap", "triplet")]


@pytest.fixture(scope="module")
def split(caltech_slice):
    """6 training (= database) and 4 query images per class, 5 classes."""
    dataset, ids = caltech_slice
    train = [i for n, i in enumerate(ids) if n % 10 < 6]
    query = [i for n, i in enumerate(ids) if n % 10 >= 6]
    return dataset, train, query


@pytest.fixture(scope="module")
def lsh_map(split):
    dataset, train, query = split
    enc = BackboneEncoder("efficientnet_lite0")
    db, q = extract_features(dataset, train, encoder=enc, progress=False), extract_features(dataset, query, encoder=enc, progress=False)
    lsh = create_hasher("lsh", 16, seed=0).fit(db.features.astype(np.float32))
    distances = hamming_distances(lsh.transform(q.features.astype(np.float32)),
                                  lsh.transform(db.features.astype(np.float32)))
    return retrieval_report(distances, q.labels, db.labels)["map_all"]


@pytest.mark.parametrize("head,loss", COMBINATIONS)
def test_each_combination_learns_and_beats_lsh(split, lsh_map, head, loss):
    dataset, train, query = split
    epochs = 24 if head == "bilinear" else 9      # bilinear trains its hash layer only in the last third
    config = TrainConfig(head=head, loss=loss, bits=16, epochs=epochs, batch_size=16, lr=1e-3, seed=0)
    result = Trainer(config, progress=False).fit(dataset, train)
    losses = [h["loss"] for h in result.history if not h["stage"].startswith(("1", "2"))]
    assert losses[-1] < losses[0], f"{head}+{loss} loss did not decrease: {losses[0]:.4f} -> {losses[-1]:.4f}"
    report = evaluate_split(result.model, dataset, query, train, progress=False).figures
    assert report["map_all"] > lsh_map, f"{head}+{loss}: mAP {report['map_all']:.3f} <= LSH {lsh_map:.3f}"


def test_bilinear_runs_its_three_stages(split):
    dataset, train, _ = split
    result = Trainer(TrainConfig(head="bilinear", loss="hashnet", bits=16, epochs=3, batch_size=16),
                     progress=False).fit(dataset, train)
    assert [h["stage"] for h in result.history] == ["1-classifier", "2-bilinear", "3-hash"]


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])   # rmsprop: fc+hashnet's chosen form (memory bank)
def test_checkpoint_round_trip_and_resume(split, tmp_path, optimizer):
    dataset, train, query = split
    config = TrainConfig(head="gap", loss="hashnet", bits=32, epochs=4, batch_size=16, schedule="constant",
                         optimizer=optimizer)
    full = Trainer(config, progress=False).fit(dataset, train, out_dir=tmp_path / "a")
    loaded = load_model(tmp_path / "a")
    assert loaded.describe()["weights_digest"] == full.model.describe()["weights_digest"]
    assert (tmp_path / "a" / "model.safetensors").stat().st_size < 2_000_000   # head only for frozen runs
    codes_a, _ = full.model.encode([dataset.read_bytes(i) for i in query[:4]])
    codes_b, _ = loaded.encode([dataset.read_bytes(i) for i in query[:4]])
    np.testing.assert_array_equal(codes_a, codes_b)

    # Stop after 2 epochs, resume to 4: same weights as the uninterrupted run (constant LR, so
    # the shorter first run follows the same schedule).
    Trainer(TrainConfig(**{**config.__dict__, "epochs": 2}), progress=False).fit(dataset, train, out_dir=tmp_path / "b")
    state = torch.load(tmp_path / "b" / "trainer_state.pt", weights_only=False)
    assert state["epoch"] == 2
    assert ("square_avg" if optimizer == "rmsprop" else "exp_avg") in next(iter(state["optimizer"]["state"].values()))
    resumed = Trainer(config, progress=False).fit(dataset, train, out_dir=tmp_path / "b", resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for k, v in full.model.head.state_dict().items():
        torch.testing.assert_close(resumed.model.head.state_dict()[k], v)


def test_finetune_updates_the_backbone_at_reduced_resolution(split):
    dataset, train, _ = split
    config = TrainConfig(head="gap", loss="hashnet", bits=16, mode="finetune", epochs=1, batch_size=8,
                         input_size=96, lr=1e-3)
    trainer = Trainer(config, progress=False)
    from hashseek.models.backbones import create_backbone

    reference = create_backbone("efficientnet_lite0").state_dict()["net._conv_stem.weight"]
    result = trainer.fit(dataset, train[:16])
    assert np.isfinite(result.history[0]["loss"])
    assert result.model.input_size == 96
    assert not torch.equal(result.model.backbone.state_dict()["net._conv_stem.weight"], reference)
    codes, feats = result.model.encode([dataset.read_bytes(train[0])])
    assert codes.shape == (1, 2) and feats.shape == (1, result.model.feature_dim)


def test_finetune_warm_up_trains_the_head_on_frozen_maps_first(split):
    dataset, train, _ = split
    config = TrainConfig(head="latent", loss="ce", bits=16, mode="finetune", epochs=1, batch_size=8,
                         input_size=96, warmup_epochs=6, lr=1e-2, mirror_average=True,
                         augment_kwargs={"min_crop_fraction": 0.8, "max_degrees": 10.0})
    result = Trainer(config, progress=False).fit(dataset, train[:16])
    stages = [record["stage"] for record in result.history]
    assert stages == ["warmup-all"] * 6 + ["all"]
    warm_losses = [record["loss"] for record in result.history[:6]]
    assert warm_losses[-1] < warm_losses[0]          # the head learned before the trunk moved
    assert result.history[-1]["seconds"] >= result.history[5]["seconds"]
    assert result.model.config["train"]["warmup_epochs"] == 6
    assert result.model.config["train"]["augment_kwargs"]["min_crop_fraction"] == 0.8
    assert result.model.mirror_average  # the config reaches the model (and its checkpoint)
    assert result.model.config["trained_on"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert all(p.device.type == "cpu" for p in result.model.parameters())   # back on the CPU for encoding


def test_training_device_auto_takes_cuda_only_when_torch_sees_it():
    from hashseek.train.config import training_device

    assert training_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert training_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="no CUDA device"):
            training_device("cuda")
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")


def test_finetune_images_are_held_with_their_aspect_and_a_bounded_shorter_side(split):
    from hashseek.data.images import load_image
    from hashseek.data.loader import Preprocess
    from hashseek.train.batches import ImageBatches

    dataset, train, _ = split
    ids = train[:6]
    pre = Preprocess(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    held = ImageBatches(dataset, ids, torch.from_numpy(dataset.labels(ids)), pre, 4, 0, None, working_side=90)
    for image_id, image in held.images.items():
        original = load_image(dataset.read_bytes(image_id))
        assert min(image.size) == min(90, min(original.size))
        assert abs(image.width / image.height - original.width / original.height) < 0.05
    inputs, labels = next(held.epoch(0))
    assert inputs.shape == (4, 3, 64, 64) and labels.shape == (4,)


def test_validation_snapshots_encode_as_torch_and_follow_the_weights(split, tmp_path, monkeypatch):
    """Fine-tuning on the CPU validates through an ONNX export of the current weights: the codes are the
    torch graph's, a weight change exports again, and no export is left in the shared cache."""
    from hashseek.models.hash_model import HashModel
    from hashseek.train.evaluator import SnapshotEncoder, encode_with_torch

    monkeypatch.setenv("HASHSEEK_CACHE", str(tmp_path / "cache"))
    dataset, train, _ = split
    model = HashModel.build("efficientnet_lite0", "gap", 16, loss="hashnet", mode="finetune", input_size=96,
                            mirror_average=True)
    model.train()
    encoder = SnapshotEncoder(model, dataset)
    ids = train[:12]
    fast, _ = encoder(ids)
    slow, _ = encode_with_torch(model, dataset, ids, torch.device("cpu"))
    assert fast.ids == slow.ids and model.training     # the model is handed back in training mode
    assert (np.unpackbits(fast.codes) != np.unpackbits(slow.codes)).mean() < 0.01   # float rounding at 0 only
    np.testing.assert_allclose(fast.features, slow.features, atol=1e-4)
    first = encoder.folder.name
    again, _ = encoder(ids)                            # same weights: the same export
    assert encoder.folder.name == first and np.array_equal(again.codes, fast.codes)
    with torch.no_grad():
        for p in model.head.parameters():
            p.mul_(-1)
    flipped, _ = encoder(ids)
    assert encoder.folder.name != first and not np.array_equal(flipped.codes, fast.codes)
    folder = encoder.folder.name
    encoder.close()
    assert not (tmp_path / "cache" / "onnx").exists() and not any(Path(folder).parent.glob(Path(folder).name))
