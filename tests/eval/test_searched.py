"""The "as searched" figures rank each query exactly as a real collection's search does (issue #13: a
trained model must never be undone by the search defaults, and the report shows what a user gets)."""
from __future__ import annotations

import numpy as np
import pytest

from hashseek.core.metrics import retrieval_report
from hashseek.eval.searched import searched_figures, searched_positions
from hashseek.search import querying
from hashseek.search.collection import Collection
from hashseek.search.defaults import SearchDefaults
from hashseek.train.evaluator import Encoded

# 5 candidates of the 31 other images: the coarse cut, the re-rank and the Hamming tail all matter
FEW_CANDIDATES = SearchDefaults(candidate_fraction=0.0, min_candidates=5)


@pytest.fixture(scope="module")
def library(image_set, tmp_path_factory):
    """A zero-training 16-bit collection of the shipped images and its stored codes, features and labels."""
    dataset, ids = image_set
    path = tmp_path_factory.mktemp("searched") / "C"
    with Collection.create(path, n_bits=16) as collection:
        collection.add_dataset(dataset, ids, progress=False)
        records = collection.list(limit=len(collection))
        resolved = [querying.resolve(collection, r.id) for r in records]
    classes = sorted({r.label for r in records})
    encoded = Encoded([str(r.id) for r in records], np.stack([q.code for q in resolved]),
                      np.stack([q.feature for q in resolved]).astype(np.float32),
                      np.array([classes.index(r.label) for r in records]))
    return path, [r.id for r in records], encoded


@pytest.mark.parametrize("defaults", [FEW_CANDIDATES, SearchDefaults(), SearchDefaults(rerank=None)],
                         ids=["5 candidates", "the defaults", "hamming only"])
def test_each_query_is_ranked_as_the_collection_searches(library, defaults):
    path, ids, encoded = library
    own = np.arange(len(ids))     # every library image queries all the others (leave-one-out)
    positions = searched_positions(encoded, encoded, own, defaults)
    with Collection.open(path) as collection:
        for row, image_id in enumerate(ids):
            result = collection.search(image_id, k=len(ids) - 1, rerank=defaults.rerank,
                                       candidates=defaults.candidate_count(len(ids) - 1))
            expected = [ids[i] for i in np.argsort(positions[row])[:len(ids) - 1]]
            assert result.ids == expected, f"query {image_id}"


def test_the_figures_are_those_of_that_ranking(library):
    _, ids, encoded = library
    own = np.arange(len(ids))
    figures = searched_figures(encoded, encoded, own, FEW_CANDIDATES)
    expected = retrieval_report(searched_positions(encoded, encoded, own, FEW_CANDIDATES), encoded.labels,
                                encoded.labels, 20, 8, exclude=own)
    assert figures["map_all"] == pytest.approx(expected["map_all"])
    assert figures["vote_accuracy_top8"] == pytest.approx(expected["vote_accuracy_top8"])
    assert figures["candidates"] == 5 and "re-ranked by cosine" in figures["ranking"]
    hamming_only = searched_figures(encoded, encoded, own, SearchDefaults(rerank=None))
    assert "Hamming distance, ties by cosine" in hamming_only["ranking"]
