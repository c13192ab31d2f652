"""Reindexing a collection with a trained model: staged, resumable, one atomic switch (a real kill -9 at every
stage leaves the old model or the new one, never a mix), the old model restorable."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hashseek.cli import main
from hashseek.core.errors import ConflictError, NotFoundError
from hashseek.core.hasher import load_image_hasher
from hashseek.search.collection import Collection
from hashseek.train import TrainConfig, Trainer
from killed_runs import run_until_killed

CLASSES = ["airplanes", "Faces_easy", "Motorbikes", "watch", "Leopards"]

# Reindexes in batches of 4 and prints each committed batch.
REINDEXER = """
import sys
from hashseek.core.hasher import load_image_hasher
from hashseek.search.collection import Collection
with Collection.open(sys.argv[1], batch_size=4) as collection:
    report = collection.reindex(load_image_hasher(sys.argv[2]), progress=False,
                                on_batch=lambda ids: print("DONE", len(ids), flush=True))
print("FINISHED", report.resumed, report.encoded, flush=True)
"""

# Runs a reindex up to a stage, then dies without any clean-up (os._exit: no close, no checkpoint).
SWITCHER = """
import json, os, sys
from hashseek.core.hasher import load_image_hasher
from hashseek.search import reindex as steps
from hashseek.search.collection import Collection
path, model, stop = sys.argv[1], sys.argv[2], sys.argv[3]
c = Collection.open(path, batch_size=8)
h = load_image_hasher(model)
slot = steps.stage_slot(c.path, c._meta, h)
steps.encode(c.path, c._meta, slot, c.config, h, c._library_records(), c.image_bytes, 8, None, False, None)
if stop != "before-switch":
    steps.commit_swap(c.path, c._meta, slot, h)
if stop == "mid-finish":   # the live hasher moved into the previous slot, nothing else yet
    previous = c.path / "slots" / json.loads(c._meta.state("swap"))["out"]
    previous.mkdir(parents=True)
    os.rename(c.path / "hasher", previous / "hasher")
os._exit(0)
"""


@pytest.fixture(scope="module")
def slice_ids(caltech101):
    return [i for c in CLASSES for i in [j for j in caltech101.ids if j.startswith(c + "/")][:8]]


@pytest.fixture(scope="module")
def library(tmp_path_factory, caltech101, slice_ids):
    """40 images, zero-training (64-bit ITQ codes), closed."""
    path = tmp_path_factory.mktemp("reindex") / "C"
    with Collection.create(path, batch_size=8) as collection:
        collection.add_dataset(caltech101, slice_ids, progress=False)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory, caltech101, slice_ids):
    """A 16-bit gap+csq head trained for 2 epochs on frozen maps (seconds)."""
    out = tmp_path_factory.mktemp("model") / "run"
    Trainer(TrainConfig(mode="frozen", epochs=2, head="gap", loss="csq", bits=16, batch_size=16),
            progress=False).fit(caltech101, slice_ids, out_dir=out)
    return out


@pytest.fixture
def copy(library, tmp_path):
    target = tmp_path / "C"
    shutil.copytree(library, target)
    return target


def _model_in_use(path, n_images: int = 40) -> str:
    """Open the collection and check that every part agrees on ONE model; its type."""
    with Collection.open(path) as collection:
        hasher, config = collection.image_hasher, json.loads((path / "collection.json").read_text())
        made_with = load_image_hasher(path / "hasher").describe()   # (a zero-training fit is not in collection.json)
        assert made_with == hasher.describe() and made_with["type"] == config["made_with"]["type"]
        assert collection.n_bits == hasher.n_bits == config["n_bits"]
        records = collection.list(limit=1000)
        assert len(records) == n_images and {len(r.code) for r in records} == {-(-hasher.n_bits // 8)}
        assert (path / "features.f16").stat().st_size == n_images * hasher.feature_dim * 2
        report = collection.check()
        assert report.ok, str(report)
        for record in records[::13]:   # stored codes and features are the hasher's own for the image
            codes, features = hasher.encode_arrays(hasher.preprocess(collection.image_bytes(record))[None])
            assert codes[0].tobytes() == record.code
            np.testing.assert_allclose(collection.features_of([record.id])[0], features[0], rtol=1e-2, atol=1e-2)
        assert len(collection.search(records[0].id, k=5).hits) == 5
        return made_with["type"]


def test_reindex_swaps_in_a_trained_model_and_restores_the_old_one(copy, model, caltech101):
    with Collection.open(copy, batch_size=8) as collection:
        before = collection.search(3, k=8).ids
        codes_before = {r.id: r.code for r in collection.list(limit=1000)}
        seen = []

        def during(ids):   # searches keep answering with the old model until the switch
            seen.append(ids)
            assert collection.n_bits == 64 and collection.search(3, k=8).ids == before

        report = collection.reindex(load_image_hasher(model), progress=False, on_batch=during)
        assert (report.encoded, report.resumed, report.failed, report.n_bits) == (40, 0, [], 16) and len(seen) == 5
        assert collection.n_bits == 16 and collection.info()["hasher"]["type"] == "hash_model"
        assert collection.info()["previous_hasher"]["type"] == "pretrained+shallow"
        assert collection.check().ok and collection.search(3, k=8).hits[0].hamming <= 16
        added = collection.add_dataset(caltech101, [i for i in caltech101.ids if i.startswith("ketch/")][:2],
                                       progress=False).ids
    assert _model_in_use(copy, 42) == "hash_model"
    assert [p.name for p in (copy / "slots").iterdir()] == ["2"]   # the previous model, nothing else

    with Collection.open(copy, batch_size=1) as collection:   # a restore stopped after a batch, given up
        staged = collection.begin_restore()
        assert (staged.total, staged.done) == (42, 40)   # only the images added since need encoding
        with pytest.raises(ConflictError, match="switching back to its previous model"):
            collection.relabel(added[0], "x")
        with pytest.raises(ConflictError, match="was stopped"):
            staged.encode(False, lambda ids: staged.stop(0))
        collection.end_reindex(staged)
        assert collection.n_bits == 16 and collection.info()["previous_hasher"]["type"] == "pretrained+shallow"
        other = collection.begin_reindex(load_image_hasher(model))   # another switch, given up too
        collection.end_reindex(other)
    with Collection.open(copy, batch_size=8) as collection:
        restored = collection.restore_previous(progress=False)
        assert (restored.resumed, restored.encoded) == (41, 1)    # the stopped restore's batch is kept
        assert collection.n_bits == 64 and collection.info()["previous_hasher"]["type"] == "hash_model"
        assert {r.id: r.code for r in collection.list(limit=1000) if r.id not in added} == codes_before
        assert collection.search(3, k=8).ids == before and collection.check().ok
    # the model can be swapped back again, from the CLI
    assert main(["reindex", str(copy), "--restore-previous", "-q"]) == 0
    with Collection.open(copy) as collection:
        assert collection.n_bits == 16 and len(collection) == 42 and collection.check().ok


def test_kill_during_reindex_keeps_the_old_model_and_a_rerun_completes(copy, model):
    run_until_killed(REINDEXER, [str(copy), str(model)], what="the reindex",
                     stop=lambda lines: sum(line.startswith("DONE") for line in lines) == 3)
    assert _model_in_use(copy) == "pretrained+shallow"

    done = subprocess.run([sys.executable, "-c", REINDEXER, str(copy), str(model)], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=600)
    assert done.returncode == 0, done.stderr
    resumed, encoded = done.stdout.split("FINISHED")[1].split()
    assert int(resumed) >= 12 and int(resumed) + int(encoded) == 40      # the staged batches were kept
    assert _model_in_use(copy) == "hash_model"


@pytest.mark.parametrize("stop, expected", [("before-switch", "pretrained+shallow"), ("after-switch", "hash_model"),
                                            ("mid-finish", "hash_model")])
def test_a_kill_at_the_switch_leaves_one_model(copy, model, stop, expected):
    run = subprocess.run([sys.executable, "-c", SWITCHER, str(copy), str(model), stop], capture_output=True,
                         text=True, env=os.environ.copy(), timeout=600)
    assert run.returncode == 0, run.stderr
    if stop != "before-switch":   # a reader cannot move the files: it refuses rather than read a mix
        with pytest.raises(ConflictError, match="stopped right after its switch"):
            Collection.open(copy, read_only=True)
    assert _model_in_use(copy) == expected
    with Collection.open(copy) as collection:   # and a rerun of the reindex ends on the new model
        collection.reindex(load_image_hasher(model), progress=False)
    assert _model_in_use(copy) == "hash_model"
    assert len(list((copy / "slots").iterdir())) == 1


def test_restore_needs_a_previous_model_and_the_cli_one_source(copy, model, capsys):
    with Collection.open(copy) as collection, pytest.raises(NotFoundError, match="no previous model"):
        collection.restore_previous()
    assert main(["reindex", str(copy)]) == 2
    assert main(["reindex", str(copy), "--model", str(model), "--restore-previous"]) == 2
    assert "--restore-previous" in capsys.readouterr().err
    assert main(["reindex", str(copy), "--restore-previous"]) == 2   # nothing was reindexed yet
    assert main(["reindex", str(copy), "--model", str(model), "-q"]) == 0
    assert "16-bit codes from hash_model" in capsys.readouterr().out


def test_a_model_that_encodes_alike_keeps_the_codes_and_swaps_in_at_once(model, caltech101, slice_ids, tmp_path):
    """A recalibrated model (same weights, another classifier temperature) is swapped in without decoding an
    image; its probabilities answer, the old model stays restorable; a model that encodes otherwise is not."""
    path = tmp_path / "M"
    with Collection.create(path, load_image_hasher(model), batch_size=8) as collection:
        collection.add_dataset(caltech101, slice_ids, progress=False)
        before = {r.id: r.code for r in collection.list(limit=1000)}
        sharp = collection.classify(3, method="classifier").classifier
    recalibrated = load_image_hasher(model).set_classifier_temperature(20.0)
    recalibrated.save(tmp_path / "recalibrated")
    with Collection.open(path, batch_size=8) as collection:
        report = collection.reindex(load_image_hasher(tmp_path / "recalibrated"), progress=False,
                                    on_batch=lambda ids: pytest.fail("nothing should be encoded"))
        assert (report.kept, report.encoded, report.resumed) == (40, 0, 0) and "kept 40 codes" in str(report)
        assert {r.id: r.code for r in collection.list(limit=1000)} == before
        assert collection.info()["hasher"]["classifier_temperature"] == 20.0
        soft = collection.classify(3, method="classifier").classifier
        assert list(soft) == list(sharp) and max(soft.values()) < max(sharp.values())
        assert not os.path.samefile(path / "features.f16", next((path / "slots").iterdir()) / "features.f16")
    assert _model_in_use(path) == "hash_model"
    with Collection.open(path, batch_size=8) as collection:
        restored = collection.restore_previous(progress=False)
        assert (restored.encoded, restored.resumed) == (0, 40)
        assert collection.info()["hasher"]["classifier_temperature"] == 1.0
        mirrored = collection.reindex(load_image_hasher(model).set_mirror_average(True), progress=False)
        assert (mirrored.kept, mirrored.encoded) == (0, 40)   # other codes: every image encoded again
    assert _model_in_use(path) == "hash_model"
