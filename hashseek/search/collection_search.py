"""Searching a collection: by an image or a library id, at random, by a feature or code, and the top-k vote.

``SearchMethods`` is a part of ``Collection`` (its base class); the steps are ``search.querying``'s.
"""
from __future__ import annotations

from pathlib import Path
from time import perf_counter
from typing import Iterable

import numpy as np
from PIL import Image

from hashseek.core.errors import ConflictError, InvalidInputError
from hashseek.core.hasher import ImageHasher
from hashseek.index import BinaryIndex
from hashseek.search import querying
from hashseek.search.defaults import SEARCH_DEFAULTS
from hashseek.search.engine import Classification, SearchResult
from hashseek.search.store import LibraryStore

Query = int | str | Path | bytes | Image.Image   # a library id, or an image (path, bytes, decoded)


class SearchMethods:
    """Searches and classification (``Collection``'s; see its docstring for the threading rule)."""

    path: Path
    image_hasher: ImageHasher
    _store: LibraryStore

    def search(self, query: Query, k: int | None = None, *, rerank: str | None = SEARCH_DEFAULTS.rerank,
               radius: int | None = None, candidates: int | None = None, exclude: Iterable[int] = (),
               include_self: bool | None = None, content_hash: str | None = None) -> SearchResult:
        """Search by an image (path, bytes or PIL image) or by the id (an int) of a library image.

        ``rerank`` names a float distance for coarse-to-fine search over the ``radius`` ball or the top
        ``candidates`` by Hamming (None: Hamming order only); see ``hashseek.search.engine`` for modes and
        ties. Settings left None come from ``SEARCH_DEFAULTS``. Library images with the query's bytes
        (the id's own image) are reported as ``query["self_match"]`` and left out unless ``include_self``;
        ``content_hash`` is the sha256 of the bytes a PIL image was decoded from (see ``search.querying``).
        """
        start = perf_counter()
        resolved = querying.resolve(self, query, content_hash)
        return querying.run(self, resolved, k, rerank, radius, candidates, exclude, include_self, start)

    def random_id(self, seed: int = 0) -> int:
        """A library id drawn with ``seed`` (the ``random`` button)."""
        self._require_open()
        if not len(self):
            raise ConflictError("the collection is empty")
        return int(self._store.ids[np.random.default_rng(seed).integers(len(self))])

    def search_random(self, seed: int = 0, k: int | None = None, **kwargs) -> SearchResult:
        """Search by a library image drawn with ``seed``."""
        result = self.search(self.random_id(seed), k, **kwargs)
        result.query["random"] = seed
        return result

    def search_vector(self, feature: np.ndarray | None = None, code: np.ndarray | None = None, k: int | None = None,
                      *, rerank: str | None = SEARCH_DEFAULTS.rerank, radius: int | None = None,
                      candidates: int | None = None, exclude: Iterable[int] = ()) -> SearchResult:
        """Search by a float feature (hashed here when the hasher can) and/or a packed code; a code alone
        cannot be re-ranked (pass ``rerank=None``) and its Hamming ties keep insertion order."""
        start = perf_counter()
        if code is None:
            if feature is None or not self.image_hasher.can_refit:
                raise InvalidInputError("give a packed code, or a feature vector of a pretrained+shallow collection")
            self._require_searchable()
            code = self.image_hasher.codes_from_features(np.asarray(feature)[None])[0]
        code = np.asarray(code, dtype=np.uint8).reshape(-1)
        resolved = querying.Resolved(code, feature, {"vector": "feature" if feature is not None else "code"}, [], None)
        return querying.run(self, resolved, k, rerank, radius, candidates, exclude, True, start)

    def classify(self, query: Query, k: int | None = None, *, method: str | None = None,
                 rerank: str | None = SEARCH_DEFAULTS.rerank, **kwargs) -> Classification:
        """The top-``k`` vote of the query's neighbours and, when the model has a classifier, its softmax;
        the label is ``method``'s ("vote" or "classifier", default ``SEARCH_DEFAULTS.classify``).

        A new class needs no retraining for the vote: add its images with that label.
        """
        k = SEARCH_DEFAULTS.vote_k if k is None else k
        start = perf_counter()
        resolved = querying.resolve(self, query, kwargs.pop("content_hash", None))
        neighbours = querying.run(self, resolved, k, rerank, kwargs.pop("radius", None), kwargs.pop("candidates", None),
                                  kwargs.pop("exclude", ()), kwargs.pop("include_self", None), start)
        if kwargs:
            raise InvalidInputError(f"unknown classify settings: {', '.join(kwargs)}")
        return querying.classify(self, resolved, neighbours, k, method)

    def features_of(self, ids: np.ndarray) -> np.ndarray:
        """(n, d) float16 stored features of library ids."""
        return self._store.features.read(self._store.feature_rows(ids))

    def _searchable_index(self) -> BinaryIndex:
        """The in-memory index, rebuilt from the codes in SQLite when it is behind."""
        self._require_open()
        return self._store.index.current()

    def _require_searchable(self) -> None:
        self._require_open()
        if not self.image_hasher.is_fitted:
            raise ConflictError(f"collection {self.path} has no codes yet: add at least 2 images")
