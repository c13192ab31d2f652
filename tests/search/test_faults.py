"""Faults a collection must survive: a full disk mid-add, a read-only file system, damaged files.

The full disk is a small tmpfs and the read-only file system a read-only bind mount, both real
mounts: CI runs as root. Where the kernel refuses the mount (an unprivileged container) the test
is skipped with the kernel's answer as the reason.
"""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hashseek.cli import main
from hashseek.core.errors import DamagedError, ReadOnlyError, StorageFullError
from hashseek.search.collection import Collection

ROW_BYTES = 1280 * 2     # a float16 EfficientNet-Lite0 feature row
PAGE = 4096


def _class_ids(dataset, classes, per_class, skip=0):
    return [i for c in classes for i in [j for j in dataset.ids if j.startswith(c + "/")][skip:skip + per_class]]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, caltech101):
    """A closed fitted collection: 12 archive members, then 2 uploads kept under images/."""
    path = tmp_path_factory.mktemp("fitted") / "C"
    uploads = _class_ids(caltech101, ["Motorbikes"], 2)
    with Collection.create(path) as collection:
        collection.add_dataset(caltech101, _class_ids(caltech101, ["airplanes", "Faces_easy"], 6), progress=False)
        collection.add_images([caltech101.read_bytes(i) for i in uploads], names=uploads, labels=["Motorbikes"] * 2)
        assert len(collection) == 14 and len(os.listdir(path / "images")) == 2
    return path


def _mount(*args: str | Path) -> None:
    """Run ``mount``; skip the test with the kernel's answer where it refuses (no privileges)."""
    done = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount {' '.join(map(str, args))} refused: {done.stderr.strip() or done.returncode}")


def _umount(path: Path) -> None:
    """Unmount, lazily when a failed test left a file open there."""
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MB tmpfs (grow it with ``_resize``)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", mount)
    yield mount
    _umount(mount)


def _resize(mount: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


def _leave_free(mount: Path, n_bytes: int) -> None:
    """Fill the file system at ``mount`` until exactly ``n_bytes`` (whole pages) are free."""
    filler = mount / "filler"
    filler.unlink(missing_ok=True)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        try:
            while True:
                os.write(fd, bytes(PAGE))
        except OSError as err:
            assert err.errno == errno.ENOSPC
        os.ftruncate(fd, max(os.fstat(fd).st_size - n_bytes, 0))
    finally:
        os.close(fd)
    stats = os.statvfs(mount)
    assert stats.f_bavail * stats.f_frsize == n_bytes


def _assert_consistent(path: Path, collection: Collection) -> None:
    """The feature file holds whole rows, exactly those SQLite references, and ``check`` finds nothing."""
    size = (path / "features.f16").stat().st_size
    assert size % ROW_BYTES == 0, f"features.f16 ends in a partial row ({size} bytes)"
    assert size // ROW_BYTES == len(collection), "features.f16 holds rows no image references"
    report = collection.check()
    assert report.ok, str(report)


def test_full_disk_adds_are_all_or_nothing(tmpfs, fitted, caltech101):
    """Defect B: a full disk in the middle of an add keeps nothing of it and names its cause; once
    space returns, the next add lands on its own feature row."""
    path = tmpfs / "C"
    shutil.copytree(fitted, path)
    new = _class_ids(caltech101, ["watch"], 40)
    causes = []
    with Collection.open(path) as collection:
        before = len(collection)
        # Every amount of free space from none to a whole batch: the features, SQLite's journal
        # or its commit run out of space in turn.
        for free in range(0, 12 * PAGE, PAGE):
            _leave_free(tmpfs, free)
            count = len(collection)
            try:
                collection.add_dataset(caltech101, new[count - before:][:2], progress=False)
            except StorageFullError as err:
                causes.append(str(err))
                assert len(collection) == count
                _assert_consistent(path, collection)
        assert len(causes) >= 3, causes
        assert any("No space left on device" in cause for cause in causes), causes
        assert any("database or disk is full" in cause for cause in causes), causes
        assert not any("cannot rollback" in cause for cause in causes), causes

        (tmpfs / "filler").unlink()
        _resize(tmpfs, "8m")
        batch = new[len(collection) - before:][:3]
        report = collection.add_dataset(caltech101, batch, progress=False)
        assert report.added == 3
        _assert_consistent(path, collection)
        for image_id, member in zip(report.ids, batch):
            query = caltech101.read_bytes(member)
            best = collection.search(query, k=1, rerank="chi2", include_self=True).hits[0]
            assert best.id == image_id and best.distance < 1e-3   # its own features, not a neighbour's
    with Collection.open(path) as collection:
        _assert_consistent(path, collection)


def test_full_disk_uploads_keep_no_stored_copies(tmpfs, fitted, caltech101):
    """A failed upload batch leaves no copy under images/ and no row; the same upload later succeeds."""
    path = tmpfs / "C"
    shutil.copytree(fitted, path)
    members = _class_ids(caltech101, ["watch"], 2)
    uploads = [caltech101.read_bytes(m) for m in members]
    failures = 0
    with Collection.open(path) as collection:
        for free in range(0, 40 * PAGE, 2 * PAGE):
            _leave_free(tmpfs, free)
            try:
                report = collection.add_images(uploads, names=members)
            except StorageFullError as err:
                failures += 1
                assert "full" in str(err) or "No space" in str(err)
                assert len(collection) == 14 and len(os.listdir(path / "images")) == 2
                _assert_consistent(path, collection)
            else:
                assert report.added == 2 and len(os.listdir(path / "images")) == 4
                break
        else:
            pytest.fail("the uploads never fitted")
        assert failures >= 3
        _assert_consistent(path, collection)
        assert collection.image_bytes(report.ids[1]) == uploads[1]
        _leave_free(tmpfs, 0)   # closing cannot save the index cache: a warning, not an error
    assert sorted(os.listdir(path)) == sorted(os.listdir(fitted))
    with Collection.open(path) as collection:
        _assert_consistent(path, collection)
        assert len(collection) == 16


def test_full_disk_when_the_first_fit_is_saved(tmpfs, caltech101):
    """The second image of a zero-training collection fits the hasher: a disk too full to save the fit
    is a StorageFullError, and ``check --repair`` fits it once there is space."""
    path = tmpfs / "C"
    members = _class_ids(caltech101, ["airplanes", "watch"], 1)
    with Collection.create(path) as collection:
        collection.add_dataset(caltech101, members[:1], progress=False)
        _leave_free(tmpfs, 16 * PAGE)   # room for a feature row and SQLite's journal, not for the fitted hasher
        with pytest.raises(StorageFullError, match="hasher"):
            collection.add_dataset(caltech101, members[1:], progress=False)
        (tmpfs / "filler").unlink()
    with Collection.open(path) as collection:
        report = collection.check()
        assert report.ok and any("not fitted" in note for note in report.notes), str(report)
        repaired = collection.repair(progress=False)
        assert repaired.ok, str(repaired)
        assert collection.image_hasher.is_fitted and collection.search(1, k=1, include_self=True).hits[0].id == 1


def test_full_disk_when_a_collection_is_created(tmpfs):
    """Creating on a full disk is a StorageFullError (not a raw OSError) and leaves no collection;
    the same call succeeds once there is room."""
    _leave_free(tmpfs, 0)
    with pytest.raises(StorageFullError, match="creating the collection"):
        Collection.create(tmpfs / "C", n_bits=16)
    assert not (tmpfs / "C" / "collection.json").exists()
    (tmpfs / "filler").unlink()
    Collection.create(tmpfs / "C", n_bits=16).close()


@pytest.fixture
def read_only(tmp_path, fitted):
    """A copy of ``fitted`` behind a read-only bind mount, with a stale index and no lock file."""
    source = tmp_path / "source"
    shutil.copytree(fitted, source / "C")
    (source / "C" / ".lock").unlink(missing_ok=True)
    (source / "C" / "index.state.json").unlink()   # the index must be rebuilt, in memory only
    mount = tmp_path / "ro"
    mount.mkdir()
    _mount("--bind", source, mount)
    try:
        _mount("-o", "remount,ro,bind", mount)
        yield mount / "C"
    finally:
        _umount(mount)


def test_read_only_file_system(read_only, caltech101, capsys):
    """Defect C: info, check and search work on a read-only file system; writes say why they cannot."""
    with pytest.raises(OSError) as raised:
        (read_only / "probe").write_text("x")
    assert raised.value.errno == errno.EROFS

    with Collection.open(read_only, read_only=True) as collection:
        assert collection.read_only and len(collection) == 14
        assert collection.info()["images"] == 14
        report = collection.check()
        assert report.ok, str(report)
        hits = collection.search(3, k=5, rerank="chi2").hits
        assert len(hits) == 5 and hits[0].label == "airplanes"
        assert collection.image_bytes(13)[:2] == b"\xff\xd8"             # a stored copy under images/
        with pytest.raises(ReadOnlyError, match="read-only"):
            collection.add_dataset(caltech101, _class_ids(caltech101, ["watch"], 1), progress=False)
        with pytest.raises(ReadOnlyError):
            collection.remove([1])
        with pytest.raises(ReadOnlyError):
            collection.relabel(1, "x")
        with pytest.raises(ReadOnlyError):
            collection.repair()
        with pytest.raises(ReadOnlyError):
            collection.reindex(collection.image_hasher)
    with Collection.open(read_only, read_only=None) as collection:   # None: read-only when it cannot write
        assert collection.read_only
    with pytest.raises(ReadOnlyError, match="read-only"):
        Collection.open(read_only)

    c = str(read_only)
    assert main(["info", c]) == 0
    assert "14 images" in capsys.readouterr().out
    assert main(["check", c]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ok")
    assert main(["search", c, "--id", "3", "-k", "3", "--rerank", "chi2"]) == 0
    assert "airplanes" in capsys.readouterr().out
    assert main(["classify", c, "--id", "3", "-k", "3"]) == 0
    assert "predicted" in capsys.readouterr().out
    assert main(["remove", c, "1"]) == ReadOnlyError.exit_code
    assert "read-only" in capsys.readouterr().err
    assert not (Path(c) / ".lock").exists()


def _snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*")}


def test_read_only_open_writes_nothing(tmp_path, fitted):
    """A read-only open takes no lock, cuts nothing, rewrites no index: it reports what needs recovery."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    (path / ".lock").unlink(missing_ok=True)
    (path / "index.state.json").unlink()
    with open(path / "features.f16", "ab") as f:       # a batch killed before its commit
        f.write(b"\x01" * int(1.5 * ROW_BYTES))
    before = _snapshot(path)
    with Collection.open(path, read_only=True) as collection:
        assert collection.search(2, k=3, rerank="chi2").hits
        report = collection.check()
        assert report.ok and any("features.f16" in note for note in report.notes), str(report)
    assert _snapshot(path) == before
    with Collection.open(path) as collection:           # a writable open recovers
        _assert_consistent(path, collection)


def _cut(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def test_truncated_feature_file_is_named_and_repaired(tmp_path, fitted, caltech101, capsys):
    """Defect D: a truncated features.f16 opens with an error that names it and the repair command
    (never an IndexError mid-search), and ``check --repair`` re-encodes the lost rows from the
    archive and the stored copies."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    with Collection.open(path) as collection:
        expected = {i: collection.search(i, k=5, rerank="chi2").ids for i in (2, 12, 14)}
    _cut(path / "features.f16", 11 * ROW_BYTES + 100)    # 11 rows + 100 bytes of 14

    for read_only in (False, True):
        with pytest.raises(DamagedError) as raised:
            Collection.open(path, read_only=read_only)
        message = str(raised.value)
        assert "features.f16" in message and f"hashseek check --repair {path}" in message
    c = str(path)
    assert main(["search", c, "--id", "12", "--rerank", "chi2"]) == DamagedError.exit_code
    assert "features.f16" in capsys.readouterr().err
    assert main(["check", c]) == 1
    assert "features.f16" in capsys.readouterr().out

    assert main(["check", "--repair", c]) == 0
    out = capsys.readouterr().out
    assert "re-encoded 3 feature rows" in out and out.rstrip().endswith("ok")
    with Collection.open(path) as collection:
        _assert_consistent(path, collection)
        for image_id, ids in expected.items():
            assert collection.search(image_id, k=5, rerank="chi2").ids == ids


def test_repair_rewrites_rows_holding_another_images_features(tmp_path, fitted):
    """What defect B left behind: a row whose features are another image's (``check``: codes differ)."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    with Collection.open(path) as collection:
        expected = collection.search(5, k=5, rerank="chi2").ids
    with open(path / "features.f16", "r+b") as f:
        f.seek(3 * ROW_BYTES)
        row = f.read(ROW_BYTES)
        f.seek(4 * ROW_BYTES)
        f.write(row)                                       # image 5's row now holds image 4's features
    (path / "images" / "0123abcd.jpg").write_bytes(b"an upload whose batch failed")
    with Collection.open(path) as collection:
        assert any("differ" in p for p in collection.check().problems)
        report = collection.repair()
        assert report.ok and not report.unrecoverable, str(report)
        assert any("re-encoded 1 feature row" in line for line in report.repaired), str(report)
        assert any("deleted 1 files under images/" in line for line in report.repaired), str(report)
        assert not (path / "images" / "0123abcd.jpg").exists()
        _assert_consistent(path, collection)
        assert collection.search(5, k=5, rerank="chi2").ids == expected


def test_repair_names_what_it_cannot_recover(tmp_path, fitted, caltech101, capsys):
    """An image whose features are gone with its source file: repair drops it and says so (exit 1)."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(caltech101.read_bytes(_class_ids(caltech101, ["watch"], 1)[0]))
    with Collection.open(path) as collection:
        (lost,) = collection.add_paths([photo], progress=False).ids
    photo.unlink()
    _cut(path / "features.f16", 14 * ROW_BYTES)
    assert main(["check", "--repair", str(path)]) == 1
    out = capsys.readouterr().out
    assert str(photo) in out
    with Collection.open(path) as collection:
        _assert_consistent(path, collection)
        assert len(collection) == 14
        with pytest.raises(KeyError):
            collection.features_of(np.array([lost]))


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_damaged_metadata_is_named(tmp_path, fitted, capsys, damage):
    """Defect D: a damaged meta.sqlite gives an error naming the file, not a bare traceback."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    db = path / "meta.sqlite"
    if damage == "header":
        with open(db, "r+b") as f:
            f.write(b"this is no database" * 8)
    else:
        _cut(db, 2 * PAGE)
    for read_only in (False, True):
        with pytest.raises(DamagedError, match="meta.sqlite"):
            Collection.open(path, read_only=read_only)
    for command in (["info", str(path)], ["check", str(path)], ["check", "--repair", str(path)]):
        assert main(command) == DamagedError.exit_code
        assert "meta.sqlite" in capsys.readouterr().err


def test_truncated_index_is_rebuilt(tmp_path, fitted):
    """index.faiss is a cache: a truncated one is rebuilt from SQLite (in memory when read-only)."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    with Collection.open(path) as collection:
        expected = collection.search(4, k=6).ids
    size = (path / "index.faiss").stat().st_size
    _cut(path / "index.faiss", size // 2)
    with Collection.open(path, read_only=True) as collection:
        assert collection.check().ok and collection.search(4, k=6).ids == expected
    assert (path / "index.faiss").stat().st_size == size // 2
    with Collection.open(path) as collection:
        assert collection.check().ok and collection.search(4, k=6).ids == expected
    assert (path / "index.faiss").stat().st_size == size


def test_read_only_open_of_an_older_file(tmp_path, fitted):
    """A file from before the content_hash column and the slot table is read without migrating it."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    with sqlite3.connect(path / "meta.sqlite") as db:
        db.execute("DROP INDEX images_content_hash")
        db.execute("ALTER TABLE images DROP COLUMN content_hash")
        db.execute("DROP TABLE slot_rows")
    before = _snapshot(path)
    with Collection.open(path, read_only=True) as collection:
        assert collection.check().ok and collection.info()["images"] == 14
        assert len(collection.search(collection.image_bytes(13), k=3).hits) == 3
    assert _snapshot(path) == before


def test_read_only_open_names_an_unfinished_transaction(tmp_path, fitted):
    """A writer killed mid-transaction leaves a hot journal: a read-only open says so and rolls nothing
    back; the next writable open does."""
    path = tmp_path / "C"
    shutil.copytree(fitted, path)
    killed = subprocess.run([sys.executable, "-c", HALF_WRITTEN, str(path / "meta.sqlite")])
    assert killed.returncode == 9 and (path / "meta.sqlite-journal").stat().st_size
    with pytest.raises(DamagedError, match="unfinished"):
        Collection.open(path, read_only=True)
    assert (path / "meta.sqlite-journal").stat().st_size
    with Collection.open(path) as collection:
        _assert_consistent(path, collection)
        assert len(collection) == 14


# Inserts rows in one transaction with a one-page cache, so pages reach the file before the commit, then dies.
HALF_WRITTEN = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA cache_size = 1")
db.execute("BEGIN IMMEDIATE")
for n in range(3000):
    db.execute("INSERT INTO images (name, source, feature_row, added_at) VALUES (?, ?, ?, 0)",
               ("x" * 200, f"s{n}", 1000 + n))
os._exit(9)
"""
