"""Atomic writes leave the file readable as a plain write would: the umask decides a new file's mode (also
for writers that make their own file 0600, like safetensors), an existing file keeps its mode. So does the
feature file a collection appends to (a group sharing a collection can read and extend all of it)."""
from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from hashseek.core.atomic import atomic_path, atomic_write_json, atomic_write_text
from hashseek.search.feature_store import FeatureStore


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_new_files_get_the_umask_mode(tmp_path, umask):
    (tmp_path / "plain.txt").write_text("a plain write")
    expected = _mode(tmp_path / "plain.txt")
    assert expected == 0o666 & ~umask
    atomic_write_json(tmp_path / "collection.json", {"n_bits": 64})
    with atomic_path(tmp_path / "model.safetensors") as tmp:   # safetensors alone writes 0600
        save_file({"weight": torch.zeros(4)}, str(tmp))
    FeatureStore(tmp_path / "features.f16", 4).close()
    for name in ("collection.json", "model.safetensors", "features.f16"):
        assert _mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collection.json", "features.f16", "model.safetensors",
                                                          "plain.txt"]


def test_an_existing_file_keeps_its_mode_and_a_failed_write_leaves_nothing(tmp_path, umask):
    target = tmp_path / "config.json"
    target.write_text("{}")
    target.chmod(0o640)
    atomic_write_text(target, '{"a": 1}')
    assert _mode(target) == 0o640 and target.read_text() == '{"a": 1}'
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
