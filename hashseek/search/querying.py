"""What a collection does with a query: resolve it to a code and a float feature, find images with the
query's exact bytes (self-matches), run the engine with ``SEARCH_DEFAULTS``, and classify.

A query's content is identified by the sha256 of its bytes, the ``content_hash`` a collection keeps
for each image: a path or an upload already in the library (a copy from another folder included)
is reported in ``SearchResult.query["self_match"]`` and left out of the results unless
``include_self``; so is a library id's own image. A decoded PIL image has no bytes: a caller that
decoded it (the service) passes the hash of the bytes it read. The functions take the
``Collection`` whose methods call them (this module imports nothing of it).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Iterable

import numpy as np
from PIL import Image

from hashseek.core.errors import InvalidInputError, NotFoundError
from hashseek.core.ranking import vote
from hashseek.search.defaults import SEARCH_DEFAULTS
from hashseek.search.distances import warm_up
from hashseek.search.engine import Classification, SearchHit, SearchResult, rank

CLASSIFY_METHODS = ("vote", "classifier")


@dataclass
class Resolved:
    code: np.ndarray
    feature: np.ndarray
    described: dict                      # becomes SearchResult.query
    self_ids: list[int]                   # library images with the query's bytes (an id query: itself first)
    probabilities: np.ndarray | None      # the model's classifier softmax, when it has one and encoded the query
    encode_seconds: float = 0.0


def resolve(collection, query, content_hash: str | None = None) -> Resolved:
    """An image (path, bytes, PIL image) or a library id (int) -> its code, feature and self-matches."""
    collection._require_searchable()
    if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
        return _resolve_id(collection, int(query))
    if isinstance(query, (str, Path)):
        path = Path(query).expanduser()
        if not path.is_file():
            raise NotFoundError(f"no such image file: {path}")
        source, described = path.read_bytes(), {"image": str(query)}
    elif isinstance(query, (bytes, bytearray, memoryview)):
        source, described = bytes(query), {"image": "<bytes>"}
    elif isinstance(query, Image.Image):
        source, described = query, {"image": "<Image>"}
    else:
        raise InvalidInputError("a query is an image (path, bytes, PIL image) or a library id, "
                                f"got {type(query).__name__}")
    if isinstance(source, bytes):
        content_hash = hashlib.sha256(source).hexdigest()
    warm_up(background=True)   # numba's set-up overlaps the model's encoding instead of following it
    start = perf_counter()
    hasher = collection.image_hasher
    inputs = hasher.preprocess(source)[None]
    if hasattr(hasher, "infer_arrays"):
        codes, features, probabilities = hasher.infer_arrays(inputs)
    else:
        (codes, features), probabilities = hasher.encode_arrays(inputs), None
    self_ids = collection.content_ids(content_hash) if content_hash else []
    return Resolved(codes[0], features[0], described, self_ids, None if probabilities is None else probabilities[0],
                    perf_counter() - start)


def _resolve_id(collection, image_id: int) -> Resolved:
    record = collection.get(image_id)
    if not record.in_library:
        raise NotFoundError(f"image {image_id} was removed from the collection")
    feature = collection.features_of(np.array([image_id]))[0].astype(np.float32)
    content_hash = collection._meta.content_hash_of(image_id)
    same = collection.content_ids(content_hash) if content_hash else []
    return Resolved(np.frombuffer(record.code, np.uint8), feature, {"id": image_id},
                    [image_id] + [i for i in same if i != image_id], None)


def run(collection, resolved: Resolved, k: int | None, rerank: str | None, radius: int | None,
        candidates: int | None, exclude: Iterable[int], include_self: bool | None, start: float) -> SearchResult:
    """The engine over the collection's index and feature store, with ``SEARCH_DEFAULTS`` for what is None."""
    d = SEARCH_DEFAULTS
    k = d.k if k is None else k
    include_self = d.include_self if include_self is None else include_self
    exclude = list(exclude) + ([] if include_self else resolved.self_ids)
    described = dict(resolved.described)
    if "vector" not in described:
        described["self_match"] = resolved.self_ids
    ranking = rank(collection._searchable_index(), resolved.code, k, radius=radius,
                   candidates=d.candidate_count(len(collection), candidates), rerank=rerank,
                   feature=resolved.feature, features_of=collection._store.feature_table, exclude=exclude,
                   tie_distance=d.tie_distance)
    named = collection._meta.names_and_labels(ranking.ids.tolist())
    hits = [SearchHit(image_id, *named[image_id], int(ranking.hamming[n]),
                      None if ranking.distances is None else float(ranking.distances[n]))
            for n, image_id in enumerate(ranking.ids.tolist())]
    timings = {"encode": resolved.encode_seconds, **ranking.timings, "total": perf_counter() - start}
    mode = f"rerank:{rerank}" if rerank else ("radius" if radius is not None else "knn")
    return SearchResult(hits, described, mode, ranking.n_candidates, timings, ranking.linear)


def classify(collection, resolved: Resolved, neighbours: SearchResult, k: int,
             method: str | None) -> Classification:
    """The top-``k`` vote of ``neighbours`` and, when the model has a classifier, its softmax; the label is
    ``method``'s (default ``SEARCH_DEFAULTS.classify``, the vote for a model without a classifier)."""
    if method is not None and method not in CLASSIFY_METHODS:
        raise InvalidInputError(f"method must be one of {CLASSIFY_METHODS}, got {method!r}")
    label, shares = vote([hit.label for hit in neighbours.hits], k)
    probabilities = _probabilities(collection, resolved)
    classifier = None
    if probabilities is not None:
        classes = list(getattr(collection.image_hasher, "classes", [])) or [str(n) for n in range(len(probabilities))]
        order = np.argsort(-probabilities, kind="stable")
        classifier = {classes[c]: float(probabilities[c]) for c in order}
    if method == "classifier" and classifier is None:
        raise InvalidInputError("this collection's model has no classifier (its head was trained without "
                                "one): classify by the neighbours' vote (method vote, the default)")
    chosen = method or SEARCH_DEFAULTS.classify
    if chosen == "classifier" and classifier is not None:
        return Classification(next(iter(classifier)), classifier, neighbours, "classifier", shares, classifier)
    return Classification(label, shares, neighbours, "vote", shares, classifier)


def _probabilities(collection, resolved: Resolved) -> np.ndarray | None:
    """The classifier's softmax of the query: from its encoding, or for a library id from its image."""
    hasher = collection.image_hasher
    if resolved.probabilities is not None or not getattr(hasher, "has_classifier", False):
        return resolved.probabilities
    if "id" not in resolved.described:
        return None
    try:
        data = collection.image_bytes(resolved.described["id"])
    except (OSError, KeyError):
        return None  # a row added as features, or a source moved away: no image to classify
    return hasher.classify_arrays(hasher.preprocess(data)[None])[0]
