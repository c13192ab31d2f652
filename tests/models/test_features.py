"""Frozen backbone features: ONNX against torch, the cache, unreadable files (shipped test images);
pretrained against random weights (real Caltech101 photos)."""
import numpy as np
import pytest

from hashseek.eval.retrieval import cosine_distances, retrieval_report
from hashseek.models.features import FeatureSet, BackboneEncoder, extract_features


@pytest.fixture(scope="module")
def onnx_encoder():
    return BackboneEncoder("efficientnet_lite0", runtime="onnx")


def test_onnx_features_match_torch(image_set, onnx_encoder):
    dataset, ids = image_set
    fast = extract_features(dataset, ids[:16], encoder=onnx_encoder, cache=False, progress=False)
    slow = extract_features(dataset, ids[:16], encoder=BackboneEncoder(onnx_encoder.backbone, runtime="torch"),
                            cache=False, progress=False)
    a, b = fast.features.astype(np.float32), slow.features.astype(np.float32)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.999
    assert fast.features.dtype == np.float16 and fast.features.shape == (16, 1280)


def test_cache_is_reused_and_keyed_by_ids(image_set, onnx_encoder, monkeypatch):
    dataset, ids = image_set
    first = extract_features(dataset, ids[:8], encoder=onnx_encoder, progress=False)

    def fail(*_):
        raise AssertionError("the network ran although the cache should have answered")

    monkeypatch.setattr(onnx_encoder, "encode_arrays", fail)
    second = extract_features(dataset, ids[:8], encoder=onnx_encoder, progress=False)
    np.testing.assert_array_equal(first.features, second.features)
    assert second.ids == ids[:8]
    with pytest.raises(AssertionError, match="cache should have answered"):
        extract_features(dataset, ids[:9], encoder=onnx_encoder, progress=False)


def test_unreadable_images_are_skipped_and_counted(tmp_path, image_set, onnx_encoder):
    from hashseek.data.datasets import FolderDataset

    dataset, ids = image_set
    (tmp_path / "a").mkdir()
    for n, image_id in enumerate(ids[:3]):
        (tmp_path / "a" / f"{n}.jpg").write_bytes(dataset.read_bytes(image_id))
    (tmp_path / "a" / "broken.jpg").write_bytes(dataset.read_bytes(ids[0])[:500])
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    fs = extract_features(FolderDataset(tmp_path), encoder=onnx_encoder, cache=False, progress=False)
    assert fs.ids == ["a/0.jpg", "a/1.jpg", "a/2.jpg"]
    assert fs.meta["n_failed"] == 2
    assert {f[0] for f in fs.meta["failed"]} == {"a/broken.jpg", "a/empty.png"}


def test_feature_set_round_trip_and_select(tmp_path):
    fs = FeatureSet(["a", "b", "c"], np.array([0, 1, 0]), np.eye(3, dtype=np.float16), {"k": 1})
    loaded = FeatureSet.load(fs.save(tmp_path / "f.npz"))
    assert loaded.ids == fs.ids and loaded.meta == {"k": 1}
    sel = loaded.select(["c", "missing", "a"])
    assert sel.ids == ["c", "a"] and sel.labels.tolist() == [0, 0]


def test_cached_features_are_memory_mapped_and_match_a_fresh_extraction(image_set, onnx_encoder):
    from hashseek.core.paths import cache_root

    dataset, ids = image_set
    cached = extract_features(dataset, ids[:10], encoder=onnx_encoder, progress=False)
    fresh = extract_features(dataset, ids[:10], encoder=onnx_encoder, cache=False, progress=False)
    assert isinstance(cached.features, np.memmap) and not cached.features.flags.writeable
    assert not isinstance(fresh.features, np.memmap) and fresh.features.dtype == np.float16
    np.testing.assert_array_equal(np.asarray(cached.features), fresh.features)
    assert cached.ids == fresh.ids == ids[:10] and cached.labels.tolist() == fresh.labels.tolist()
    leftovers = [f.name for f in (cache_root() / "features").iterdir() if f.suffix != ".npz"]
    assert leftovers == []          # no scratch or .part file stays behind


def test_feature_files_stay_plain_npz_and_older_compressed_ones_still_load(tmp_path):
    maps = np.arange(2 * 3 * 4 * 4, dtype=np.float16).reshape(2, 3, 4, 4)
    path = FeatureSet(["x", "y"], np.array([1, 2]), maps, {"kind": "map"}).save(tmp_path / "maps.npz")
    with np.load(path) as z:                        # any numpy reads it
        np.testing.assert_array_equal(z["features"], maps)
        assert z["ids"].tolist() == ["x", "y"]
    mapped = FeatureSet.load(path)
    assert isinstance(mapped.features, np.memmap)
    np.testing.assert_array_equal(mapped.features[1], maps[1])
    np.savez_compressed(tmp_path / "old.npz", ids=np.array(["x", "y"]), labels=np.array([1, 2]), features=maps,
                        meta=np.array("{}"))
    old = FeatureSet.load(tmp_path / "old.npz")
    assert not isinstance(old.features, np.memmap)
    np.testing.assert_array_equal(old.features, maps)


def test_pretrained_features_retrieve_far_better_than_random(caltech_slice, onnx_encoder):
    import torch

    dataset, ids = caltech_slice
    labels = dataset.labels(ids)
    torch.manual_seed(0)
    scores = {}
    for name, encoder in (("pretrained", onnx_encoder),
                          ("random", BackboneEncoder("efficientnet_lite0", pretrained=False))):
        fs = extract_features(dataset, ids, encoder=encoder, progress=False)
        d = cosine_distances(fs.features, fs.features)
        np.fill_diagonal(d, np.inf)          # leave-one-out: each image queries the other 49
        scores[name] = retrieval_report(d, labels, labels, k_precision=5)["map_all"]
    assert scores["pretrained"] > 0.8
    assert scores["pretrained"] > scores["random"] + 0.3
