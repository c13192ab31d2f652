"""Folder sync on the shipped test images: exact changes, idempotence, vanishing files, bad input, a real
``kill -9`` mid-sync, and the watch loop."""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from hashseek.core.errors import ConflictError, InvalidInputError, NotFoundError, ReadOnlyError
from hashseek.search import file_stats, sync as syncing
from hashseek.search.collection import Collection
from hashseek.search.watch import watch
from killed_runs import run_until_killed

IMAGES = Path(__file__).resolve().parents[1] / "images"   # the shipped generated image set


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A folder of circles + stripes (16 files) and a collection synced from it, built once, closed.
    Each test gets both back as they were: the folder at the same path (sources are absolute paths)."""
    root = tmp_path_factory.mktemp("sync")
    folder = root / "photos"
    for cls in ("circles", "stripes"):
        shutil.copytree(IMAGES / cls, folder / cls)
    with Collection.create(root / "C", batch_size=8) as collection:
        report = collection.sync(folder, progress=False)
    assert len(report.added) == 16 and not (report.removed or report.updated or report.unreadable)
    shutil.copytree(folder, root / "pristine-photos")
    return folder.resolve(), root / "C", root / "pristine-photos"


@pytest.fixture
def synced(pristine, tmp_path):
    """(the folder, the collection synced from it, open), fresh for each test."""
    folder, path, photos = pristine
    shutil.rmtree(folder)
    shutil.copytree(photos, folder)
    shutil.copytree(path, tmp_path / "C")
    collection = Collection.open(tmp_path / "C", batch_size=8)
    yield folder, collection
    collection.close()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sources(collection) -> dict[str, str]:
    """source -> content hash of the library rows, read from SQLite."""
    return dict(collection._meta.query("SELECT source, content_hash FROM images WHERE in_library"))


def test_changes_are_found_exactly_and_a_second_sync_does_nothing(synced, monkeypatch):
    folder, collection = synced
    monkeypatch.setattr(file_stats, "RACY_NS", 0)   # record the stats of files written a moment ago
    assert not collection.sync(folder, progress=False).changed and collection.image_hasher.is_fitted
    deleted = [folder / "circles/circles_00.jpg", folder / "stripes/stripes_07.jpg"]
    for path in deleted:
        path.unlink()
    added = [folder / "triangles_00.jpg", folder / "deep/er/checks_03.jpg"]
    shutil.copyfile(IMAGES / "triangles/triangles_00.jpg", added[0])
    added[1].parent.mkdir(parents=True)
    shutil.copyfile(IMAGES / "checks/checks_03.jpg", added[1])
    rewritten = folder / "circles/circles_01.jpg"
    shutil.copyfile(IMAGES / "triangles/triangles_05.jpg", rewritten)
    same_size = folder / "stripes/stripes_02.jpg"   # new bytes, same size, mtime put back: ctime tells
    before = same_size.stat()
    data = bytearray(same_size.read_bytes())
    data[len(data) // 2] ^= 0xFF
    same_size.write_bytes(bytes(data))
    os.utime(same_size, ns=(before.st_atime_ns, before.st_mtime_ns))
    moved = folder / "circles/circles_02.jpg"
    moved.rename(folder / "renamed.jpg")
    collection.relabel(next(r.id for r in collection.list() if r.name == "circles/circles_02.jpg"), "round")

    report = collection.sync(folder, progress=False)
    assert sorted(report.added) == sorted(map(str, added + [folder / "renamed.jpg"]))
    assert sorted(report.removed) == sorted(map(str, deleted + [moved]))
    assert sorted(report.updated) == sorted([str(rewritten), str(same_size)])
    assert report.unchanged == 16 - 3 - 2 and not report.unreadable and not report.vanished
    assert report.copied == 1                              # the renamed file kept its stored features
    assert {r.name: r.label for r in collection.list()}["renamed.jpg"] == "round"   # and its label
    sources = _sources(collection)
    assert len(collection) == 16 - 3 + 3 and sources == {
        str(p): _sha(p) for p in folder.rglob("*.jpg")}
    hit = collection.search(str(rewritten), 1, include_self=True).hits[0]
    assert hit.name == "circles/circles_01.jpg" and hit.hamming == 0
    assert collection.check().ok
    again = collection.sync(folder, progress=False)
    assert not again.changed and again.unchanged == 16 and again.copied == 0


def test_labels_from_folders_label_and_relabel(synced):
    folder, collection = synced
    assert {r.label for r in collection.list()} == {None}
    report = collection.sync(folder, labels_from_folders=True, progress=False)
    assert len(report.relabelled) == 16 and not (report.added or report.updated or report.removed)
    assert collection.info()["classes"] == {"circles": 8, "stripes": 8}
    (folder / "stripes/stripes_03.jpg").rename(folder / "circles/was_stripes.jpg")
    shutil.copyfile(IMAGES / "checks/checks_01.jpg", folder / "new.jpg")
    for junk in (".thumbnails", "@eaDir", "other.hs/thumbnails"):   # no photos, and no classes: never synced
        (folder / "circles" / junk).mkdir(parents=True)
        shutil.copyfile(IMAGES / "checks/checks_02.jpg", folder / "circles" / junk / "t.jpg")
    (folder / "circles/other.hs/collection.json").write_text("{}")
    bad = os.fsencode(folder / "circles") + b"/caf\xe9.jpg"   # a Latin-1 name: not storable, reported (it crashed)
    shutil.copyfile(IMAGES / "checks/checks_02.jpg", bad)
    report = collection.sync(folder, labels_from_folders=True, progress=False)
    assert len(report.added) == 2 and len(report.removed) == 1 and not report.relabelled
    assert [(path.rsplit("/", 1)[1], "not UTF-8" in why) for path, why in report.unreadable] == [("caf\\xe9.jpg", True)]
    assert collection.add_folder(folder, progress=False).failed == [("circles/caf\\xe9.jpg", report.unreadable[0][1])]
    labels = {r.name: r.label for r in collection.list()}
    assert labels["circles/was_stripes.jpg"] == "circles" and labels["new.jpg"] is None


def test_files_vanishing_mid_sync_are_reported(synced, monkeypatch):
    folder, collection = synced
    library_file, new_file, late_file = (folder / "circles/circles_04.jpg", folder / "a.jpg", folder / "b.jpg")
    shutil.copyfile(IMAGES / "checks/checks_00.jpg", new_file)
    shutil.copyfile(IMAGES / "checks/checks_01.jpg", late_file)
    real_walk, real_hash = syncing.walk, syncing.hash_changed

    def walk_then_delete(*args):   # the walk saw them; they are gone before they are read
        plan = real_walk(*args)
        library_file.unlink()
        new_file.unlink()
        return plan

    def hash_then_delete(*args):   # hashed, then gone before it is decoded
        unchanged = real_hash(*args)
        late_file.unlink()
        return unchanged

    monkeypatch.setattr(syncing, "walk", walk_then_delete)
    monkeypatch.setattr(syncing, "hash_changed", hash_then_delete)
    report = collection.sync(folder, progress=False)
    assert sorted(report.vanished) == sorted(map(str, (library_file, new_file, late_file)))
    assert report.removed == [str(library_file)] and not report.added and not report.unreadable
    assert len(collection) == 15 and collection.check().ok


def test_bad_folders_are_typed_errors_and_change_nothing(synced, tmp_path):
    folder, collection = synced
    with pytest.raises(NotFoundError, match="no such folder"):
        collection.sync(tmp_path / "missing", progress=False)
    with pytest.raises(InvalidInputError, match="not a folder"):
        collection.sync(folder / "circles/circles_05.jpg", progress=False)
    (tmp_path / "unrelated").mkdir()
    assert not collection.sync(tmp_path / "unrelated", progress=False).changed   # nothing of it in the library
    for path in folder.rglob("*.jpg"):
        path.unlink()
    with pytest.raises(ConflictError, match="holds no images.*allow_empty"):
        collection.sync(folder, progress=False)
    assert len(collection) == 16
    report = collection.sync(folder, allow_empty=True, progress=False)
    assert len(report.removed) == 16 and len(collection) == 0


def test_read_only_collection_is_refused(synced):
    folder, collection = synced
    shutil.copyfile(IMAGES / "checks/checks_02.jpg", folder / "new.jpg")
    path = collection.path
    collection.close()
    with Collection.open(path, read_only=True) as reader:
        with pytest.raises(ReadOnlyError):
            reader.sync(folder, progress=False)
        assert len(reader) == 16


# Syncs with batches of 4 and prints after each committed batch (the store's own commit, wrapped).
SYNCER = """
import sys
from hashseek.search.collection import Collection
from hashseek.search.store import LibraryStore
commit = LibraryStore.commit
def reported(self, rows, *args, **kwargs):
    ids = commit(self, rows, *args, **kwargs)
    print("COMMITTED", len(ids), flush=True)
    return ids
LibraryStore.commit = reported
with Collection.open(sys.argv[1], batch_size=4, workers=1) as collection:
    collection.sync(sys.argv[2], progress=False)
print("FINISHED", flush=True)
"""


def test_kill_mid_sync_then_sync_converges(synced):
    folder, collection = synced
    path = collection.path
    collection.close()
    for cls in ("triangles", "checks"):
        shutil.copytree(IMAGES / cls, folder / cls)
    (folder / "circles/circles_06.jpg").unlink()
    shutil.copyfile(IMAGES / "triangles/triangles_01.jpg", folder / "stripes/stripes_05.jpg")  # bytes also added
    data = (folder / "stripes/stripes_06.jpg").read_bytes()
    (folder / "stripes/stripes_06.jpg").write_bytes(data[:-2] + b"\x00\x00" + data[-2:])        # new bytes

    run_until_killed(SYNCER, [str(path), str(folder)], what="the sync",
                     stop=lambda lines: sum(line.startswith("COMMITTED") for line in lines) == 2)

    with Collection.open(path, batch_size=8) as collection:
        assert collection.check().ok
        report = collection.sync(folder, progress=False)
        assert report.removed == [str(folder / "circles/circles_06.jpg")]   # removals come last
        assert len(report.added) + len(report.updated) < 16 + 2                # two batches were kept
        assert _sources(collection) == {str(p): _sha(p) for p in folder.rglob("*.jpg")}
        assert len(collection) == 31 and collection.check().ok
        assert not collection.sync(folder, progress=False).changed


def _wait(reports: list, n: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while len(reports) < n and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("how", [{"debounce_s": 0.3}, {"polling": True, "poll_s": 0.2}], ids=["events", "polling"])
def test_watch_picks_up_changes(synced, how):
    folder, collection = synced
    reports, stop = [], threading.Event()
    thread = threading.Thread(target=watch, args=(collection, folder),
                              kwargs={**how, "on_sync": reports.append, "stop": stop}, daemon=True)
    thread.start()
    try:
        _wait(reports, 1)
        assert reports and not reports[0].changed                       # the first sync: nothing new
        shutil.copyfile(IMAGES / "checks/checks_04.jpg", folder / "dropped.jpg")
        _wait(reports, 2)
        (folder / "circles/circles_07.jpg").unlink()
        _wait(reports, 3)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert [(r.added, r.removed) for r in reports[1:]] == [([str(folder / "dropped.jpg")], []),
                                                          ([], [str(folder / "circles/circles_07.jpg")])]
    assert len(collection) == 16


def test_watch_says_a_refused_sync_once_and_goes_on_polling(synced):
    folder, collection = synced
    reports, errors, stop = [], [], threading.Event()
    thread = threading.Thread(target=watch, args=(collection, folder), daemon=True,
                              kwargs={"debounce_s": 0.2, "poll_s": 0.2, "on_sync": reports.append,
                                      "on_error": errors.append, "stop": stop})
    thread.start()
    try:
        _wait(reports, 1)
        shutil.move(folder / "circles", folder.parent / "unmounted")     # the folder looks empty
        shutil.move(folder / "stripes", folder.parent / "unmounted-too")
        _wait(errors, 1)
        time.sleep(1)                                                    # several polls meet the same refusal
        shutil.copyfile(IMAGES / "checks/checks_05.jpg", folder / "back.jpg")
        _wait(reports, 2)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(errors) == 1 and isinstance(errors[0], ConflictError)
    assert reports[1].added == [str(folder / "back.jpg")] and len(reports[1].removed) == 16
    assert len(collection) == 1
