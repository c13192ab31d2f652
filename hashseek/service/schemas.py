"""The JSON shapes of the REST API: what the page and any other client can rely on."""
from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from hashseek.search.distances import list_distances
from hashseek.search.engine import DEFAULT_CANDIDATES


class SearchParams(BaseModel):
    """Query parameters of every search: how many results, the Hamming ball and the re-rank stage."""

    k: int = Field(20, ge=1, le=1000, description="results to return")
    radius: int | None = Field(None, ge=0, le=4096, description="Hamming radius: only results within it")
    candidates: int = Field(DEFAULT_CANDIDATES, ge=1, le=100_000,
                            description="top Hamming candidates to re-rank (without radius)")
    rerank: str | None = Field(None, description="re-rank distance between float features: "
                               + ", ".join(list_distances()))

    @field_validator("rerank")
    @classmethod
    def _known_distance(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value not in list_distances():
            raise ValueError(f"unknown distance {value!r}; choose from {', '.join(list_distances())}")
        return value


class ClassifyParams(SearchParams):
    k: int = Field(8, ge=1, le=1000, description="neighbours that vote")


class Hit(BaseModel):
    id: int
    name: str
    label: str | None
    hamming: int = Field(description="Hamming distance between the codes")
    distance: float | None = Field(description="re-rank distance (None without re-ranking)")
    thumbnail_url: str


class SearchResponse(BaseModel):
    query: dict = Field(description='what was asked: {"id": n}, {"random": seed} or {"upload": name}')
    mode: str = Field(description='"knn", "radius" or "rerank:<distance>"')
    n_candidates: int
    took_ms: float = Field(description="time the search took on the server, decoding an upload included")
    timings_ms: dict[str, float] = Field(description="per stage: decode, encode, coarse, rerank, total")
    hits: list[Hit]


class ClassifyResponse(BaseModel):
    label: str | None = Field(description="the majority label of the k nearest labelled images")
    distribution: dict[str, float] = Field(description="vote share per class, largest first")
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
    n_bits: int
    feature_dim: int
    index: str
    bytes_on_disk: int
    hasher: dict = Field(description="how the codes are made")
    created: str


class Health(BaseModel):
    status: str
    collections: dict[str, int] = Field(description="images per collection")


class Error(BaseModel):
    detail: str
