"""A real ``kill -9`` in the middle of a bulk add, and the crash windows between the files of a collection."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from hashseek.core.errors import DamagedError
from hashseek.search.collection import Collection
from killed_runs import run_until_killed

# Adds the ids in batches of 8 and prints the sources of each batch once it is committed.
ADDER = """
import json, os, sys
from hashseek.data.named import load_dataset
from hashseek.core.errors import DamagedError
from hashseek.search.collection import Collection
path, ids = sys.argv[1], json.loads(sys.argv[2])
make = Collection.open if os.path.exists(os.path.join(path, "collection.json")) else Collection.create
collection = make(path, batch_size=8)
collection.add_dataset(load_dataset("caltech101"), ids, progress=False,
                       on_batch=lambda sources: print("DONE", json.dumps(sources), flush=True))
print("FINISHED", flush=True)
"""


def _class_ids(dataset, classes, per_class):
    return [i for c in classes for i in [j for j in dataset.ids if j.startswith(c + "/")][:per_class]]


def _add_and_kill(path, ids, after_batches: int) -> list[str]:
    """Run the adder in a subprocess and SIGKILL it once it has reported ``after_batches`` batches."""
    lines = run_until_killed(ADDER, [str(path), json.dumps(ids)], what="the adder",
                             stop=lambda lines: sum(line.startswith("DONE") for line in lines) == after_batches)
    return [source for line in lines if line.startswith("DONE") for source in json.loads(line[5:])]


def _sources(collection: Collection) -> set[str]:
    return {r.source for r in collection.list(limit=100_000)}


def test_kill_during_zero_training_add_then_resume(tmp_path, caltech101):
    ids = _class_ids(caltech101, ["airplanes", "Leopards", "Motorbikes", "watch", "ketch", "chandelier"], 10)
    path = tmp_path / "C"
    reported = _add_and_kill(path, ids, after_batches=3)
    assert len(reported) == 24

    with Collection.open(path) as collection:
        assert _sources(collection) >= set(reported)
        assert (path / "features.f16").stat().st_size == len(collection) * 1280 * 2   # unfinished batch cut off
        report = collection.check()
        assert report.ok, str(report)
        assert any("no code yet" in note for note in report.notes)   # killed before the fit
        done_before = len(collection)
        resumed = collection.add_dataset(caltech101, ids, progress=False)
        assert (resumed.skipped, resumed.added) == (done_before, 60 - done_before)
        assert len(collection) == 60 and collection.image_hasher.is_fitted and collection.check().ok
        assert collection.get(36).name == ids[35]                      # ids follow the order of the adds
        assert collection.search(36, k=3, include_self=True).hits[0].hamming == 0


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, caltech101):
    """A small fitted collection (16 images, two classes), closed."""
    path = tmp_path_factory.mktemp("fitted") / "C"
    with Collection.create(path) as collection:
        collection.add_dataset(caltech101, _class_ids(caltech101, ["airplanes", "Faces_easy"], 8), progress=False)
    return path


def test_kill_during_add_to_a_fitted_collection(tmp_path, fitted, caltech101):
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    ids = _class_ids(caltech101, ["Motorbikes", "watch", "ketch", "chandelier", "Leopards"], 8)
    reported = _add_and_kill(path, ids, after_batches=2)

    with Collection.open(path) as collection:
        assert _sources(collection) >= set(reported) and len(collection) >= 16 + 16
        assert collection.check().ok                                  # stale index rebuilt from SQLite codes
        newest = max(r.id for r in collection.list(limit=1000))
        assert newest in collection.search(1, k=len(collection)).ids
        collection.add_dataset(caltech101, ids, progress=False)
        assert len(collection) == 56 and collection.check().ok


def test_crash_windows_between_files(tmp_path, fitted):
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    with Collection.open(path) as collection:
        before = collection.search(3, k=10, rerank="chi2").ids

    # Killed between appending features and committing: a row and a half nobody references.
    with open(path / "features.f16", "ab") as f:
        f.write(b"\x01" * int(1.5 * 1280 * 2))
    # Killed after a (re)fit was saved but before the codes were rewritten.
    with sqlite3.connect(path / "meta.sqlite") as db:
        db.execute("UPDATE images SET code = NULL WHERE id > 10")
        db.execute("UPDATE state SET value = 'older fit' WHERE key = 'fit_digest'")
    # The index file deleted (it is a cache).
    (path / "index.faiss").unlink()

    with Collection.open(path) as collection:
        assert (path / "features.f16").stat().st_size == 16 * 1280 * 2
        assert collection.check().ok
        assert collection.search(3, k=10, rerank="chi2").ids == before
    with Collection.open(path) as collection:
        assert not collection.check().notes                           # close wrote a current index back


def test_check_reports_problems(tmp_path, fitted):
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    with sqlite3.connect(path / "meta.sqlite") as db:
        db.execute("UPDATE images SET code = zeroblob(8) WHERE id = 4")
        db.execute("UPDATE images SET feature_row = 99 WHERE id = 5")
    with pytest.raises(DamagedError, match="features.f16"):     # a row beyond the file: named at open
        Collection.open(path)
    with Collection.open(path, read_only=True, damaged_ok=True) as collection:
        report = collection.check()
    assert not report.ok
    assert any("beyond" in p for p in report.problems) and any("differ" in p for p in report.problems)
