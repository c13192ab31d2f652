"""The refit policy of zero-training collections (search.refit_policy), refits by hand (API and CLI),
a real ``kill -9`` at each point of a refit, and a trained model's refusal. The collection: the shipped
test images (4 classes x 8), encoded once; the policy tests add its stored features one at a time."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3

import numpy as np
import pytest

from hashseek.cli import main
from hashseek.core.errors import ConflictError, InvalidInputError
from hashseek.search.collection import Collection
from hashseek.search.refit_policy import REFIT_DEFAULTS, RefitPolicy
from hashseek.train import TrainConfig, Trainer
from killed_runs import run_until_killed

NEVER = RefitPolicy(min_images=2, growth=1000.0)   # no automatic refit after the first fit


@pytest.fixture(scope="module")
def stale(image_set, tmp_path_factory):
    """32 images whose codes come from a fit on the first 16 (the policy never refitted): a refit changes them."""
    dataset, ids = image_set
    path = tmp_path_factory.mktemp("refit") / "C"
    with Collection.create(path, refit_policy=NEVER) as collection:
        collection.add_dataset(dataset, ids[::2], progress=False)
        collection.add_dataset(dataset, ids[1::2], progress=False)
        assert collection.info()["fit"]["images"] == 16
    return path


@pytest.fixture
def copy(stale, tmp_path):
    path = tmp_path / "C"
    shutil.copytree(stale, path)
    return path


def _codes(path) -> dict[int, bytes]:
    with sqlite3.connect(path / "meta.sqlite") as db:
        return dict(db.execute("SELECT id, code FROM images"))


def test_policy_sizes():
    policy = RefitPolicy(min_images=6, growth=2)
    sizes, fitted = [], None
    for images in range(1, 60):
        if policy.due(images, fitted):
            sizes.append(images)
            fitted = images
    assert sizes == [2, 4, 6, 12, 24, 48]
    assert RefitPolicy(min_images=256).next_fit_at(150) == 256          # a settled fit at min_images
    assert RefitPolicy(min_images=2, growth=1.01).next_fit_at(10) == 11  # always at least one more image
    assert not policy.due(30, 24) and policy.due(48, 24) and not policy.due(1, None)
    for bad in ({"min_images": 1}, {"growth": 1.0}, {"growth": float("nan")}, {"min_images": 2.5}):
        with pytest.raises(InvalidInputError):
            RefitPolicy(**bad)
    with pytest.raises(InvalidInputError, match="unknown"):
        RefitPolicy.from_dict({"min_images": 8, "factor": 2})


def test_policy_refits_as_features_come_one_by_one_and_survives_reopen(stale, tmp_path):
    with Collection.open(stale, read_only=True) as source:
        ids = [r.id for r in source.list(limit=100)]
        features = source.features_of(np.array(ids))
        labels = [r.label for r in source.list(limit=100)]
    path = tmp_path / "grown"
    fits = []
    with Collection.create(path, refit_policy=RefitPolicy(min_images=6, growth=2.0)) as collection:
        for n in range(20):
            before = collection.image_hasher.fit_digest
            collection.add_features(features[n:n + 1], None, [f"f{n}"], [f"f{n}"], labels[n:n + 1])
            if collection.image_hasher.fit_digest != before:
                fits.append(len(collection))
        assert fits == [2, 4, 6, 12]
        assert collection.check().ok                                   # every code from the last fit
    with Collection.open(path) as collection:
        assert collection.refit_policy == RefitPolicy(min_images=6, growth=2.0)
        fit = collection.info()["fit"]
        assert (fit["images"], fit["next_refit_at"], fit["provisional"]) == (12, 24, False)
        digest = collection.image_hasher.fit_digest
        collection.add_features(features[20:23], None, ["a", "b", "c"], ["a", "b", "c"], labels[20:23])
        assert collection.image_hasher.fit_digest == digest            # 23 < 24
        collection.add_features(features[23:24], None, ["d"], ["d"], labels[23:24])
        assert collection.image_hasher.fit_digest != digest and collection.info()["fit"]["images"] == 24
        digest, given = collection.image_hasher.fit_digest, features[:24]     # codes given: never refitted
        collection.add_features(given, collection.image_hasher.codes_from_features(given.astype(np.float32)),
                                [f"g{n}" for n in range(24)], [f"g{n}" for n in range(24)], labels[:24])
        assert len(collection) == 48 and collection.image_hasher.fit_digest == digest
        assert collection.search(1, k=3, rerank=None).hits


def test_default_policy_and_a_collection_without_a_stored_one(copy):
    with sqlite3.connect(copy / "meta.sqlite") as db:   # as collections made before policies were stored
        db.execute("DELETE FROM state WHERE key IN ('refit_policy', 'fit_images', 'fitted_at')")
    with Collection.open(copy) as collection:
        assert collection.refit_policy == REFIT_DEFAULTS
        fit = collection.info()["fit"]
        assert fit["images"] == 16 and fit["fitted_at"] is None and fit["provisional"]


def test_manual_refit_cli(copy, capsys):
    before = _codes(copy)
    assert main(["refit", str(copy)]) == 0
    assert "refitted on 32 of 32 images" in capsys.readouterr().out
    after = _codes(copy)
    assert after.keys() == before.keys() and after != before
    assert main(["info", str(copy)]) == 0
    assert "hasher fitted on 32 images" in capsys.readouterr().out
    with Collection.open(copy, read_only=True) as collection:
        assert collection.check().ok
    assert main(["refit", str(copy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 32 and report["next_refit_at"] == 32000
    assert _codes(copy) == after                                       # the same fit again: deterministic


def test_trained_model_refuses_refit(image_set, tmp_path, capsys):
    dataset, ids = image_set
    model = Trainer(TrainConfig(head="gap", loss="hashnet", bits=16, epochs=1, batch_size=16),
                    progress=False).fit(dataset, ids[:8], out_dir=tmp_path / "model").model
    with pytest.raises(InvalidInputError, match="zero-training"):
        Collection.create(tmp_path / "T0", image_hasher=model, refit_policy=RefitPolicy())
    with Collection.create(tmp_path / "T", image_hasher=model) as collection:
        assert collection.refit_policy is None and collection.info()["fit"] is None
        with pytest.raises(ConflictError, match="trained model"):
            collection.refit()
    assert main(["refit", str(tmp_path / "T")]) == ConflictError.exit_code
    assert "trained model" in capsys.readouterr().err


# Refits the collection; PAUSE names the point where it stops (and is killed): after the new fit's arrays
# are saved, inside the SQLite transaction once every code is rewritten, or after the commit.
REFITTER = """
import sys, time
from hashseek.search.collection import Collection
from hashseek.search.feature_hasher import FeatureHasher
from hashseek.search.metadata import Metadata
path, point = sys.argv[1], sys.argv[2]

def pausing(cls, name, before):
    original = getattr(cls, name)
    def wrapped(*args, **kwargs):
        if before:
            print("AT", point, flush=True); time.sleep(120)
        out = original(*args, **kwargs)
        print("AT", point, flush=True); time.sleep(120)
        return out
    setattr(cls, name, wrapped)

{"saved": lambda: pausing(FeatureHasher, "save_fit", False),
 "transaction": lambda: pausing(Metadata, "set_codes", False),
 "committed": lambda: pausing(FeatureHasher, "save", True)}[point]()
with Collection.open(path) as collection:
    collection.refit()
"""


@pytest.mark.parametrize("point, outcome", [("saved", "old"), ("transaction", "old"), ("committed", "new")])
def test_kill_during_refit_leaves_old_or_new_codes(copy, point, outcome):
    with Collection.open(copy, read_only=True) as collection:
        old_digest = collection.image_hasher.fit_digest
    old_codes = _codes(copy)
    one_thread = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    lines = run_until_killed(REFITTER, [str(copy), point], stop=lambda lines: True, what="the refit",
                             env={**os.environ, **one_thread})   # as the tests run BLAS (conftest): no spinning threads
    assert lines[0].strip() == f"AT {point}"

    def expected(collection) -> None:   # the old fit and codes, or a new fit on all 32 and only its codes
        if outcome == "old":
            assert collection.image_hasher.fit_digest == old_digest and _codes(copy) == old_codes
        else:
            assert collection.image_hasher.fit_digest != old_digest and collection.info()["fit"]["images"] == 32
        assert collection.check().ok                   # every code is its features' code under that fit; index too

    if point != "transaction":   # (a hot journal needs a writable open to roll it back)
        with Collection.open(copy, read_only=True) as collection:     # a reader first: it writes nothing
            expected(collection)
    with Collection.open(copy) as collection:
        expected(collection)
        assert collection.search(3, k=5, rerank=None).hits
        digest = collection.image_hasher.fit_digest
    with Collection.open(copy, read_only=True) as collection:          # hasher.json now names that fit
        assert collection.image_hasher.fit_digest == digest
