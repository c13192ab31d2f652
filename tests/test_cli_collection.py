"""`hashseek index / search / classify / remove / info / check` round trip through ``hashseek.cli.main``."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hashseek.cli import main


@pytest.fixture
def photos(tmp_path, image_set):
    """3 classes x 5 shipped test images in a folder, plus one broken file."""
    dataset, ids = image_set
    folder = tmp_path / "photos"
    for image_id in ids[0:5] + ids[8:13] + ids[16:21]:
        (folder / image_id.split("/")[0]).mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(dataset.read_bytes(image_id))
    (folder / "circles" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return folder


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_cli_round_trip(tmp_path, photos, capsys):
    c = str(tmp_path / "C")
    assert main(["index", str(photos), "--collection", c, "--bits", "32", "-q"]) == 0
    out = capsys.readouterr().out
    assert "added 15" in out and "unreadable 1" in out and "broken.jpg" in out
    assert main(["index", str(photos), "--collection", c, "-q"]) == 0
    assert "already present 15" in capsys.readouterr().out

    assert main(["info", c, "--json"]) == 0
    info = _json(capsys)
    assert info["images"] == 15 and info["n_bits"] == 32 and set(info["classes"]) == {"checks", "circles", "stripes"}

    query = next((photos / "stripes").iterdir())
    assert main(["search", c, str(query), "-k", "5", "--rerank", "chi2", "--json"]) == 0
    result = _json(capsys)
    assert len(result["hits"]) == 5 and result["hits"][0]["label"] == "stripes" and result["mode"] == "rerank:chi2"
    assert main(["search", c, "--id", "2", "-k", "3", "--json"]) == 0
    assert 2 not in [hit["id"] for hit in _json(capsys)["hits"]]
    assert main(["search", c, "--random", "--seed", "1", "--radius", "10", "--rerank", "none"]) == 0
    assert "radius" in capsys.readouterr().out            # the Hamming ball alone
    assert main(["search", c, "--random", "--seed", "1", "--radius", "10", "--json"]) == 0
    assert _json(capsys)["mode"] == "rerank:cosine"       # by default the ball is re-ranked (SEARCH_DEFAULTS)
    assert main(["classify", c, str(query), "-k", "4"]) == 0
    out = capsys.readouterr().out
    assert "predicted stripes (by vote)" in out and "'self_match': [" in out   # the query's own file is in the library

    draws = []   # --random without --seed: a fresh draw each time (as the page's button), named so it can be repeated
    for _ in range(2):
        assert main(["search", c, "--random", "-k", "1", "--json"]) == 0
        draws.append(_json(capsys)["query"])
    assert draws[0]["random"] != draws[1]["random"]
    assert main(["search", c, "--random", "--seed", str(draws[0]["random"]), "-k", "1", "--json"]) == 0
    assert _json(capsys)["query"]["id"] == draws[0]["id"]

    # a reader that stops early (`| head`): a quiet exit, no traceback
    reader_gone = subprocess.Popen([sys.executable, "-m", "hashseek", "search", c, "--id", "2", "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader_gone.stdout.close()
    assert reader_gone.wait(timeout=120) == 1 and b"Traceback" not in reader_gone.stderr.read()

    assert main(["remove", c, "1", "2"]) == 0
    assert "13 images left" in capsys.readouterr().out
    assert main(["check", c]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ok")


def test_cli_errors(tmp_path, photos, capsys):
    c = str(tmp_path / "C")
    model = tmp_path / "model"
    model.mkdir()
    assert main(["index", str(photos), "--collection", c, "--model", str(model)]) == 2
    assert "holds no saved model or hasher" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "nothing"), "--id", "1"]) == 2
    assert "not a hashseek collection" in capsys.readouterr().err

    assert main(["index", str(photos / "checks"), "--collection", c, "-q"]) == 0
    assert main(["index", str(photos), "--collection", c, "--bits", "32"]) == 2
    assert "drop --bits" in capsys.readouterr().err
    assert main(["search", c]) == 2
    assert main(["search", c, "--id", "99"]) == 2
    (tmp_path / "C" / "features.f16").write_bytes(b"")   # damage: every feature row gone
    assert main(["check", c]) == 1
    assert "PROBLEM" in capsys.readouterr().out


def test_cli_index_with_a_conv_map_pooling(tmp_path, photos, capsys):
    """--pooling gem: the collection's features are GeM vectors of the conv map (L2-normalised), recorded
    in its hasher, and the collection searches like any other."""
    import numpy as np

    from hashseek.search.collection import Collection

    c = str(tmp_path / "gem.hs")
    assert main(["index", str(photos), "--collection", c, "--bits", "16", "--pooling", "gem", "-q"]) == 0
    capsys.readouterr()
    with Collection.open(c, read_only=True) as collection:
        assert collection.info()["hasher"]["pooling"] == "gem"
        ids = [record.id for record in collection.list(limit=5)]
        norms = np.linalg.norm(collection.features_of(np.array(ids)).astype(np.float32), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=2e-3)
    query = next((photos / "stripes").iterdir())
    assert main(["search", c, str(query), "-k", "3", "--json"]) == 0
    assert _json(capsys)["hits"][0]["label"] == "stripes"
    assert main(["index", str(photos), "--collection", c, "--pooling", "mac"]) == 2   # settings are kept
