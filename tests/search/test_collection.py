"""Collections on real Caltech101 images: layout, zero-training flow, search against brute force, editing."""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from hashseek.core.bits import hamming_distances
from hashseek.core.errors import ConflictError
from hashseek.search.collection import Collection
from hashseek.search.defaults import SEARCH_DEFAULTS
from hashseek.search.distances import pairwise_distance
from hashseek.core.hasher import RefittableHasher, load_image_hasher
from hashseek.search.feature_hasher import FeatureHasher

NEW_CLASS = "cougar_face"


@pytest.fixture(scope="module")
def library(tmp_path_factory, caltech_slice):
    """5 classes x 10 images, added in batches of 16; records what the rows held during the first add."""
    dataset, ids = caltech_slice
    path = tmp_path_factory.mktemp("library") / "C"
    codes_during_add = []
    with Collection.create(path, batch_size=16) as collection:
        def seen(sources):
            codes_during_add.append([r.code for r in collection.list(limit=100)])

        report = collection.add_dataset(dataset, ids, progress=False, on_batch=seen)
    return path, report, codes_during_add


@pytest.fixture
def copy(library, tmp_path):
    """A private copy of the library, opened (a collection is a directory one can copy)."""
    target = tmp_path / "copy"
    shutil.copytree(library[0], target)
    with Collection.open(target) as collection:
        yield collection


def test_zero_training_flow_and_layout(library, caltech_slice):
    path, report, codes_during_add = library
    assert report.added == 50 and report.skipped == 0 and not report.failed
    assert len(codes_during_add) == 4                                  # 16 + 16 + 16 + 2
    assert all(code is None for batch in codes_during_add for code in batch)  # features first, codes after the fit
    assert {p.name for p in path.iterdir()} >= {"collection.json", "hasher", "meta.sqlite", "features.f16",
                                                "index.faiss", "index.state.json", "images"}
    config = json.loads((path / "collection.json").read_text())
    assert config["n_bits"] == 64 and config["index"] == "flat" and config["made_with"]["backbone"] == "efficientnet_lite0"
    assert (path / "features.f16").stat().st_size == 50 * 1280 * 2
    with sqlite3.connect(path / "meta.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM images WHERE code IS NOT NULL AND length(code) = 8").fetchone() == (50,)

    with Collection.open(path) as collection:
        info = collection.info()
        assert len(collection) == 50 and info["classes"] == {c: 10 for c in info["classes"]} and len(info["classes"]) == 5
        assert info["hasher"]["fitted"] and info["hasher"]["n_fit"] == 50
        report = collection.check()
        assert report.ok and not report.notes, str(report)                # the index file was current: no rebuild
        again = collection.add_dataset(*caltech_slice, progress=False)
        assert (again.added, again.skipped) == (0, 50)                    # re-adding is idempotent
        first = collection.get(1)
        assert first.name == caltech_slice[1][0] and first.label == "airplanes" and first.in_library


def _reference(collection: Collection, query_id: int, k: int, rerank=SEARCH_DEFAULTS.rerank, candidates=None,
               radius=None):
    """Brute force with the engine's rule: Hamming order with ties by float distance, then id; a re-rank
    orders every item within the candidates' Hamming cut by (float, Hamming, id), then the rest by
    (Hamming, float, id). Float distances are the re-rank's, or SEARCH_DEFAULTS.tie_distance."""
    records = [r for r in collection.list(limit=10_000) if r.id != query_id]
    ids = np.array([r.id for r in records])
    codes = np.stack([np.frombuffer(r.code, np.uint8) for r in records])
    query = collection.get(query_id)
    hamming = hamming_distances(np.frombuffer(query.code, np.uint8)[None], codes)[0]
    distances = pairwise_distance(collection.features_of([query_id])[0], collection.features_of(ids),
                                  rerank or SEARCH_DEFAULTS.tie_distance)
    items = [i for i in range(len(ids)) if radius is None or hamming[i] <= radius]
    if rerank is None:
        key = lambda i: (hamming[i], distances[i], ids[i])  # noqa: E731
    else:
        m = SEARCH_DEFAULTS.candidate_count(len(collection), candidates)
        cut = radius if radius is not None else sorted(hamming)[min(m, len(ids)) - 1]
        key = lambda i: ((0, distances[i], hamming[i], ids[i]) if hamming[i] <= cut  # noqa: E731
                         else (1, hamming[i], distances[i], ids[i]))
    fine = sorted(items, key=key)[:k]
    return [int(ids[i]) for i in fine], [int(hamming[i]) for i in fine]


@pytest.mark.parametrize("query_id", [1, 17, 38])
@pytest.mark.parametrize("mode", [{}, {"rerank": None}, {"rerank": None, "radius": 24}, {"radius": 24},
                                  {"rerank": "chi2", "candidates": 12},
                                  {"rerank": "chi2"}, {"rerank": "cosine", "radius": 26}])
def test_search_equals_brute_force(library, query_id, mode):
    with Collection.open(library[0]) as collection:
        result = collection.search(query_id, k=10, **mode)
        expected_ids, expected_hamming = _reference(collection, query_id, 10, **mode)
    assert result.ids == expected_ids and [h.hamming for h in result.hits] == expected_hamming
    assert query_id not in result.ids
    if mode.get("rerank"):
        distances = [h.distance for h in result.hits]
        assert distances == sorted(distances) and result.mode == f"rerank:{mode['rerank']}"
    if "radius" in mode:
        assert max(expected_hamming, default=0) <= mode["radius"]


def test_query_modes(copy, caltech_slice):
    dataset, ids = caltech_slice
    by_bytes = copy.search(dataset.read_bytes(ids[12]), k=5, rerank="chi2")   # the bytes of library image 13
    assert by_bytes.query["self_match"] == [13] and 13 not in by_bytes.ids
    assert by_bytes.timings["encode"] > 0 and by_bytes.timings["total"] >= by_bytes.timings["coarse"]
    kept = copy.search(dataset.read_bytes(ids[12]), k=5, rerank="chi2", include_self=True)
    assert kept.hits[0].id == 13 and kept.hits[0].hamming <= 1 and kept.hits[0].distance < 1e-2
    assert kept.ids[1:] == by_bytes.ids[:4]

    with_self = copy.search(13, k=5, include_self=True)
    assert with_self.hits[0].id == 13 and with_self.hits[0].hamming == 0
    by_vector = copy.search_vector(feature=copy.features_of([13])[0], k=5)
    assert by_vector.ids == with_self.ids
    by_code = copy.search_vector(code=np.frombuffer(copy.get(13).code, np.uint8), k=5, exclude=[13], rerank=None)
    assert [h.hamming for h in by_code.hits] == [h.hamming for h in copy.search(13, k=5, rerank=None).hits]
    with pytest.raises(ValueError, match="re-ranking needs"):
        copy.search_vector(code=np.frombuffer(copy.get(13).code, np.uint8), rerank="chi2")

    first, second = copy.search_random(seed=3, k=4), copy.search_random(seed=3, k=4)
    assert first.query == second.query and first.ids == second.ids and first.query["id"] not in first.ids


def test_classify_and_add_a_new_class_without_retraining(copy, caltech101):
    result = copy.classify(25, k=8)                         # a Motorbikes image
    assert result.label == "Motorbikes" and sum(result.distribution.values()) == pytest.approx(1.0)
    assert list(result.distribution)[0] == "Motorbikes" and len(result.neighbours.hits) == 8

    cougars = [i for i in caltech101.ids if i.startswith(NEW_CLASS + "/")][:9]
    fit_before = copy.image_hasher.fit_digest
    copy.add_dataset(caltech101, cougars[:8], progress=False)
    assert copy.image_hasher.fit_digest == fit_before       # later adds use the fitted hasher
    assert copy.classify(caltech101.read_bytes(cougars[8]), k=8, rerank="chi2").label == NEW_CLASS
    assert copy.check().ok


def test_remove_relabel_get_list_and_restore(copy):
    assert copy.remove([3, 4]) == 2 and len(copy) == 48
    assert not ({3, 4} & set(copy.search(1, k=48).ids))
    assert not copy.get(3).in_library
    with pytest.raises(KeyError):
        copy.remove([3])
    copy.relabel(5, "jet")
    assert [r.id for r in copy.list(label="jet")] == [5]
    assert [r.id for r in copy.list(offset=1, limit=3)] == [2, 5, 6]
    path, source, row = copy.path, copy.get(3).source, copy.get(3).feature_row
    copy.close()

    with Collection.open(path) as reopened:
        assert len(reopened) == 48 and reopened.get(5).label == "jet" and reopened.check().ok
        from hashseek.data.named import load_dataset
        report = reopened.add_dataset(load_dataset("caltech101"), [source.split("::", 1)[1]], progress=False)
        assert report.restored == 1 and report.ids == [51]  # a new id, i.e. the newest insertion
        back = reopened.get(51)
        assert back.source == source and back.feature_row == row and back.in_library  # not decoded again
        assert 51 in reopened.search(1, k=49).ids and reopened.check().ok


def test_unreadable_images_are_skipped_and_counted(tmp_path, caltech_slice):
    dataset, ids = caltech_slice
    folder = tmp_path / "photos"
    for n, image_id in enumerate(ids[:3] + ids[20:23]):
        (folder / image_id.split("/")[0]).mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(dataset.read_bytes(image_id))
    (folder / "airplanes" / "broken.jpg").write_bytes(dataset.read_bytes(ids[0])[:600])
    (folder / "airplanes" / "empty.png").write_bytes(b"")
    (folder / "loose.jpg").write_bytes(dataset.read_bytes(ids[40]))
    with Collection.create(tmp_path / "C", n_bits=32, index="ivf") as collection:
        report = collection.add_folder(folder, progress=False)
        assert report.added == 7 and len(report.failed) == 2
        assert {s.rsplit("/", 1)[1] for s, _ in report.failed} == {"broken.jpg", "empty.png"}
        assert sorted(collection.info()["classes"].items()) == [("Motorbikes", 3), ("airplanes", 3)]
        assert collection.info()["unlabelled"] == 1 and collection.check().ok
        assert len(collection.search(1, k=3).hits) == 3


def test_uploads_are_stored_by_content_and_deduplicated(copy, caltech_slice):
    dataset, ids = caltech_slice
    blobs = [dataset.read_bytes(i) for i in ids[:2]]
    report = copy.add_images(blobs, names=["a.JPG", "b"], labels=["mine", None])
    assert report.added == 2
    stored = [copy.get(i).stored for i in report.ids]
    assert stored[0].endswith(".jpg") and all((copy.path / "images" / s).is_file() for s in stored)
    assert copy.add_images(blobs[:1]).skipped == 1
    assert copy.add_images([b"not an image"]).failed and copy.check().ok
    copy.remove(report.ids[:1])
    assert not (copy.path / "images" / stored[0]).exists() and copy.check().ok


def test_feature_hasher_round_trip(library, tmp_path):
    hasher = load_image_hasher(library[0] / "hasher")
    assert isinstance(hasher, FeatureHasher) and isinstance(hasher, RefittableHasher) and hasher.is_fitted
    features = np.random.default_rng(0).random((5, hasher.feature_dim), dtype=np.float32)
    hasher.save(tmp_path / "h")
    again = load_image_hasher(tmp_path / "h")
    np.testing.assert_array_equal(again.codes_from_features(features), hasher.codes_from_features(features))
    assert again.describe() == hasher.describe() and hasher.describe()["fit_digest"]
    assert len(hasher.fit_sample(10)) == 10
    hasher.fit_samples = 4
    assert len(np.unique(hasher.fit_sample(10))) == 4

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "hasher.json").write_text('{"type": "someone_elses_model"}')
    with pytest.raises(ValueError, match="unknown image hasher type 'someone_elses_model'"):
        load_image_hasher(tmp_path / "other")


def test_one_process_at_a_time(copy):
    with pytest.raises(ValueError, match="open in another process"):
        Collection.open(copy.path)
    with pytest.raises(ConflictError):
        Collection.create(copy.path)
