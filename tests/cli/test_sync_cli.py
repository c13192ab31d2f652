"""`hashseek sync` as a user runs it: what it prints, its exit codes, and `--watch` stopped by Ctrl-C."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hashseek.cli import main
from hashseek.search.collection import Collection

IMAGES = Path(__file__).resolve().parents[1] / "images"   # the shipped generated image set

HASHSEEK = "import sys; from hashseek.cli import main; sys.exit(main(sys.argv[1:]))"   # the installed command


@pytest.fixture
def setup(tmp_path):
    folder = tmp_path / "photos"
    for cls in ("triangles", "checks"):
        shutil.copytree(IMAGES / cls, folder / cls)
    Collection.create(tmp_path / "C").close()
    return tmp_path / "C", folder


def test_sync_prints_what_it_did_and_refuses_bad_input(setup, tmp_path, capsys):
    collection, folder = setup
    (folder / "notes.txt").write_text("not a photo")
    (folder / "checks/clip.MOV").write_bytes(b"\0" * 64)
    (folder / ".DS_Store").write_bytes(b"\0")          # hidden: no user's file, not counted
    assert main(["sync", str(collection), str(folder), "--labels-from-folders", "-q"]) == 0
    out = capsys.readouterr().out
    assert "added 16, removed 0, updated 0, unchanged 0, unreadable 0; 16 images" in out
    assert "2 file(s) not read, not images by their names (" in out and ".mov 1" in out and ".txt 1" in out
    (folder / "checks/checks_00.jpg").unlink()
    assert main(["sync", str(collection), str(folder), "--list", "-q"]) == 0
    out = capsys.readouterr().out
    assert "added 0, removed 1, updated 0, unchanged 15" in out and "removed: " in out and "checks_00.jpg" in out

    assert main(["sync", str(collection), str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["sync", str(collection), str(folder), "--debounce", "1"]) == 2
    assert "--debounce and --poll go with --watch" in capsys.readouterr().err
    shutil.rmtree(folder)
    folder.mkdir()
    assert main(["sync", str(collection), str(folder), "-q"]) == 2
    assert "holds no images" in capsys.readouterr().err
    with Collection.open(collection, read_only=True) as c:
        assert len(c) == 15 and c.info()["classes"] == {"triangles": 8, "checks": 7}
    assert main(["sync", str(collection), str(folder), "--allow-empty", "-q"]) == 0
    assert "removed 15" in capsys.readouterr().out


def test_watch_syncs_a_dropped_file_and_stops_on_ctrl_c(setup):
    collection, folder = setup
    assert main(["sync", str(collection), str(folder), "-q"]) == 0   # the watcher's first sync then finds nothing
    proc = subprocess.Popen([sys.executable, "-c", HASHSEEK, "sync", str(collection), str(folder), "--watch",
                             "--debounce", "0.3", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "added 0, removed 0, updated 0, unchanged 16" in line:
                time.sleep(0.5)
                shutil.copyfile(IMAGES / "circles/circles_00.jpg", folder / "new.jpg")
            if "added 1," in line:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines.append(out)
    assert proc.returncode == 0, err
    assert lines[0].startswith(f"watching {folder} (on file events)")
    assert any("added 1, removed 0, updated 0, unchanged 16, unreadable 0; 17 images" in line for line in lines)
    assert lines[-1].strip().endswith("stopped")
    with Collection.open(collection, read_only=True) as c:
        assert len(c) == 17 and c.check().ok
