"""The JSON shapes of the REST API: what the page and any other client can rely on."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hashseek.search.defaults import SEARCH_DEFAULTS
from hashseek.search.distances import list_distances
from hashseek.search.querying import CLASSIFY_METHODS
from hashseek.service.dependencies import Digits

NO_RERANK = ("", "none")   # an explicit "Hamming order only", when the default re-ranks


class SearchParams(BaseModel):
    """Query parameters of every search: how many results, the Hamming ball and the re-rank stage.
    A parameter not given takes its value from ``GET /api/search-defaults``."""

    k: Digits | None = Field(None, ge=1, le=1000, description=f"results to return (default {SEARCH_DEFAULTS.k})")
    radius: Digits | None = Field(None, ge=0, le=4096, description="Hamming radius: only results within it")
    candidates: Digits | None = Field(None, ge=1, le=100_000, description="top Hamming candidates to re-rank "
                                      "(without radius; default: the collection's rule, see /api/search-defaults)")
    rerank: str | None = Field(None, description="re-rank distance between float features: "
                               + ", ".join(list_distances()) + f"; 'none' for Hamming order only "
                               f"(default {SEARCH_DEFAULTS.rerank or 'none'})")
    include_self: bool | None = Field(None, description="keep library images with the query's exact bytes (a "
                                      "library query's own image) in the results; they are always named in "
                                      f"query.self_match (default {str(SEARCH_DEFAULTS.include_self).lower()})")

    @field_validator("rerank")
    @classmethod
    def _known_distance(cls, value: str | None) -> str | None:
        if value is not None and value not in NO_RERANK and value not in list_distances():
            raise ValueError(f"unknown distance {value!r}; choose from none, {', '.join(list_distances())}")
        return value

    def _default_k(self) -> int:
        return SEARCH_DEFAULTS.k

    def resolved(self) -> dict:
        """Keyword arguments of ``Collection.search``: what was given, ``k`` and ``rerank`` from the defaults
        otherwise; the others not given are left to the collection (its candidate rule, ``SEARCH_DEFAULTS``)."""
        rerank = SEARCH_DEFAULTS.rerank if self.rerank is None else (None if self.rerank in NO_RERANK else self.rerank)
        given = {"radius": self.radius, "candidates": self.candidates, "include_self": self.include_self}
        return {"k": self._default_k() if self.k is None else self.k, "rerank": rerank,
                **{key: value for key, value in given.items() if value is not None}}


class ClassifyParams(SearchParams):
    k: Digits | None = Field(None, ge=1, le=1000,
                             description=f"neighbours that vote (default {SEARCH_DEFAULTS.vote_k})")
    method: Literal[CLASSIFY_METHODS] | None = Field(
        None, description="whose prediction is the label: the neighbours' vote, or the model's own classifier "
                          f"(if it has one; default {SEARCH_DEFAULTS.classify})")

    def resolved(self) -> dict:
        return {**super().resolved(), **({} if self.method is None else {"method": self.method})}

    def _default_k(self) -> int:
        return SEARCH_DEFAULTS.vote_k


class Hit(BaseModel):
    id: int
    name: str
    label: str | None
    hamming: int = Field(description="Hamming distance between the codes")
    distance: float | None = Field(description="float distance between the features: the re-rank distance, or in "
                                               "a Hamming search the one that orders ties (None without one)")
    thumbnail_url: str


class SearchResponse(BaseModel):
    query: dict = Field(description='what was asked: {"id": n}, {"random": seed, "id": n} or {"upload": name}, '
                                    'with "self_match": the library images with the query\'s exact bytes')
    mode: str = Field(description='"knn", "radius" or "rerank:<distance>"')
    n_candidates: int
    took_ms: float = Field(description="time the search took on the server, decoding an upload included")
    timings_ms: dict[str, float] = Field(description="per stage: decode, encode, coarse, rerank, total")
    hits: list[Hit]


class ClassifyResponse(BaseModel):
    label: str | None = Field(description="the predicted label (of the method used)")
    distribution: dict[str, float] = Field(description="share per class of the method used, largest first")
    method: str = Field(description='"vote" (the k nearest labelled images) or "classifier" (the model\'s softmax)')
    vote: dict[str, float] = Field(description="vote share per class, largest first")
    classifier: dict[str, float] | None = Field(description="the model's softmax per class, its temperature fitted on "
                                                            "validation images (None without a classifier)")
    neighbours: SearchResponse


class ImageOut(BaseModel):
    id: int
    name: str
    label: str | None
    added_at: float = Field(description="unix time")
    thumbnail_url: str
    image_url: str


class ImagePage(BaseModel):
    offset: int
    limit: int
    has_more: bool = Field(description="whether images follow this page")
    items: list[ImageOut]


class AddResponse(BaseModel):
    ids: list[int] = Field(description="ids of the added (or restored) images")
    skipped: int = Field(description="images already in the library")
    restored: int = Field(description="removed images added again")
    failed: list[str] = Field(description="why an image could not be added")
    images: int = Field(description="library size afterwards")


class RemoveResponse(BaseModel):
    removed: int
    images: int = Field(description="library size afterwards")


MAX_LABEL = 200
Label = Annotated[str | None, Field(max_length=MAX_LABEL, description="a label; empty or null: unlabelled")]


class IdsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]] = Field(
        min_length=1, max_length=10_000, description="library image ids")


class RelabelRequest(IdsRequest):
    label: Label

    @field_validator("label")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return clean_label(value)


class RelabelResponse(BaseModel):
    relabelled: int
    classes: dict[str, int] = Field(description="images per label afterwards")


def clean_label(value: str | None) -> str | None:
    """Labels are trimmed; a blank one is no label."""
    value = None if value is None else value.strip()
    return value or None


class CollectionSummary(BaseModel):
    name: str
    images: int
    n_bits: int
    writable: bool = Field(description="whether add and remove are allowed (with the API key if one is set)")
    needs_api_key: bool


class CollectionInfo(BaseModel):
    name: str
    images: int
    removed: int
    not_searchable: int
    unlabelled: int
    classes: dict[str, int] = Field(description="images per label")
    untrained_classes: dict[str, int] = Field({}, description="images per label the collection's trained model had "
                                                              "no training images of (empty: zero training)")
    n_bits: int
    feature_dim: int
    index: str
    bytes_on_disk: int
    hasher: dict = Field(description="how the codes are made")
    fit: dict | None = Field(None, description="a zero-training hasher's fit: when, on how many images, the refit "
                                               "policy and when it refits next (None: a trained model)")
    previous_hasher: dict | None = Field(None, description="the model the last reindex replaced (restorable)")
    created: str


class Health(BaseModel):
    status: str
    collections: dict[str, int] = Field(description="images per collection")


class Error(BaseModel):
    detail: str


# What the routes document besides their 200 answer (every error body is an ``Error``).
NOT_FOUND = {404: {"model": Error, "description": "no such collection or image"}}
BAD_IMAGE = {413: {"model": Error, "description": "request body over the upload limit"},
             422: {"model": Error, "description": "not a usable image (corrupt, truncated, empty, too many pixels)"}}
WRITE = {401: {"model": Error, "description": "missing or wrong X-API-Key"},
         403: {"model": Error, "description": "writes are disabled on this address, or came from another site"}}
