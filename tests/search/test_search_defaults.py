"""One set of search defaults for every front end, self-matches, and classification by vote or by
the model's classifier (issue #14), on the shipped image set."""
from __future__ import annotations

import hashlib
import inspect
import json
import shutil

import numpy as np
import pytest

from hashseek.cli import build_parser, main
from hashseek.core.errors import InvalidInputError, NotFoundError
from hashseek.search.collection import Collection
from hashseek.search.defaults import SEARCH_DEFAULTS, SearchDefaults


def test_candidate_count_scales_with_the_library():
    d = SearchDefaults(candidate_fraction=0.1, min_candidates=100, max_candidates=10_000)
    assert d.candidate_count(30) == 100                 # a small library: all of it (a linear search)
    assert d.candidate_count(5_000) == 500
    assert d.candidate_count(10_000_000) == 10_000
    assert d.candidate_count(5_000, candidates=7) == 7  # a given count wins


def test_front_ends_read_the_defaults():
    args = build_parser().parse_args(["search", "C", "img.jpg"])
    assert args.k is None and args.rerank is None and args.candidates is None and not args.include_self
    assert build_parser().parse_args(["classify", "C", "--random"]).method is None
    for method in (Collection.search, Collection.classify):
        assert inspect.signature(method).parameters["rerank"].default == SEARCH_DEFAULTS.rerank


@pytest.fixture(scope="module")
def library(image_set, tmp_path_factory):
    """A zero-training collection of the shipped images, plus a second copy of one image's bytes."""
    dataset, ids = image_set
    folder = tmp_path_factory.mktemp("photos")
    for image_id in ids:
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(dataset.read_bytes(image_id))
    (folder / "copies").mkdir()
    shutil.copy(folder / ids[3], folder / "copies" / "same.jpg")
    path = tmp_path_factory.mktemp("C") / "C"
    with Collection.create(path, n_bits=16) as collection:
        collection.add_folder(folder, progress=False)
    return path, folder, ids


def test_self_matches_are_reported_and_left_out(library):
    path, folder, ids = library
    with Collection.open(path) as c:
        twins = c.content_ids(hashlib.sha256((folder / ids[3]).read_bytes()).hexdigest())
        assert len(twins) == 2                                     # the image and its copy
        for query in (folder / ids[3], (folder / ids[3]).read_bytes(), twins[0]):
            result = c.search(query, k=len(c))
            assert sorted(result.query["self_match"]) == twins
            assert not set(twins) & set(result.ids) and len(result.ids) == len(c) - 2
            kept = c.search(query, k=len(c), include_self=True)
            assert set(kept.ids[:2]) == set(twins)                  # the same bytes: distance 0
        other = c.search(folder / ids[20], k=5)
        assert other.query["self_match"] and other.query["self_match"][0] not in other.ids
        with pytest.raises(NotFoundError, match="no such image"):
            c.search(folder / "missing.jpg")


def test_a_rerank_over_the_whole_library_says_it_is_linear(library):
    path, _, _ = library
    with Collection.open(path) as c:
        whole = c.search(1, rerank="chi2")                           # 33 images < min_candidates
        assert whole.linear and whole.mode == "rerank:chi2" and len(whole.hits) == SEARCH_DEFAULTS.k
        part = c.search(1, rerank="chi2", candidates=5)
        assert not part.linear and part.n_candidates >= 5
        assert not c.search(1, rerank=None).linear


def test_cli_search_and_classify_by_id_random_and_image(library, capsys):
    path, folder, ids = library
    assert main(["classify", str(path), "--random", "--seed", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "vote" and out["neighbours"]["query"]["random"] == 4
    assert out["label"] in {i.split("/")[0] for i in ids} and out["classifier"] is None
    assert len(out["neighbours"]["hits"]) == SEARCH_DEFAULTS.vote_k
    assert out["neighbours"]["query"]["id"] not in [h["id"] for h in out["neighbours"]["hits"]]
    assert main(["classify", str(path), "--id", "2", "-k", "3"]) == 0
    assert "predicted" in capsys.readouterr().out
    assert main(["search", str(path), str(folder / ids[3]), "--rerank", "none", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "knn" and len(out["query"]["self_match"]) == 2 and len(out["hits"]) == SEARCH_DEFAULTS.k
    assert main(["search", str(path), str(folder / ids[3]), "--include-self", "--json", "-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == f"rerank:{SEARCH_DEFAULTS.rerank}" and {h["id"] for h in out["hits"][:2]} == \
        set(out["query"]["self_match"])
    assert main(["search", str(path), "--id", "1", "--random"]) == 2
    assert "give one query" in capsys.readouterr().err
    assert main(["classify", str(path)]) == 2
    assert main(["classify", str(path), "--id", "1", "--method", "classifier"]) == 2
    assert "no classifier" in capsys.readouterr().err


def test_classification_reports_the_vote_and_the_models_classifier(image_set, tmp_path):
    from hashseek.train import TrainConfig, Trainer

    dataset, ids = image_set
    model = Trainer(TrainConfig(head="latent", loss="ce", bits=16, epochs=8, batch_size=16, seed=0),
                    progress=False).fit(dataset, ids[::2]).model
    assert model.has_classifier and model.describe()["classifier"] is True
    with Collection.create(tmp_path / "C", image_hasher=model) as c:
        added = c.add_dataset(dataset, ids[::2], progress=False).ids
        query = dataset.read_bytes(ids[1])                                  # not in the library
        result = c.classify(query)
        assert result.method == SEARCH_DEFAULTS.classify and set(result.classifier) == set(dataset.classes)
        assert sum(result.classifier.values()) == pytest.approx(1.0, abs=1e-4)
        assert sum(result.vote.values()) == pytest.approx(1.0)
        by_classifier = c.classify(query, method="classifier")
        assert by_classifier.label == next(iter(by_classifier.classifier)) and by_classifier.method == "classifier"
        probabilities = model.classify_arrays(model.preprocess(query)[None])[0]
        assert by_classifier.label == dataset.classes[int(np.argmax(probabilities))]
        by_id = c.classify(added[0], method="classifier")                   # a library id: its image is read
        assert by_id.classifier is not None and added[0] not in by_id.neighbours.ids
        with pytest.raises(InvalidInputError, match="method"):
            c.classify(query, method="oracle")
