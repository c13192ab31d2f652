"""Library records and search results as the API's JSON shapes, with the URLs that fetch their pictures."""
from __future__ import annotations

from hashseek.search.collection import Record
from hashseek.search.engine import SearchResult
from hashseek.service.library import Library
from hashseek.service.schemas import Hit, ImageOut, SearchResponse

# Paths that responses link to, formatted directly (``url_path_for`` costs 0.1 ms a call, 20+ calls a search).
THUMBNAIL_PATH = "/api/collections/{name}/images/{image_id}/thumbnail"
FILE_PATH = "/api/collections/{name}/images/{image_id}/file"


def thumbnail_url(library: Library, image_id: int) -> str:
    return THUMBNAIL_PATH.format(name=library.url_name, image_id=image_id)


def image_out(library: Library, record: Record) -> ImageOut:
    return ImageOut(id=record.id, name=record.name, label=record.label, added_at=record.added_at,
                    thumbnail_url=thumbnail_url(library, record.id),
                    image_url=FILE_PATH.format(name=library.url_name, image_id=record.id))


def upload_query(result: SearchResult, name: str | None) -> dict:
    """How an upload query is described: its file name, and the library images with its exact bytes."""
    return {"upload": name, **{key: value for key, value in result.query.items() if key != "image"}}


def search_response(library: Library, result: SearchResult, query: dict | None = None,
                    decode_s: float = 0.0) -> SearchResponse:
    """Hits with their thumbnail URLs; the server time, the upload's decoding included."""
    timings = dict(result.timings)
    if decode_s:
        timings = {"decode": decode_s, **timings, "total": timings["total"] + decode_s}
    hits = [Hit(id=h.id, name=h.name, label=h.label, hamming=h.hamming, distance=h.distance,
                thumbnail_url=thumbnail_url(library, h.id)) for h in result.hits]
    return SearchResponse(query=query or result.query, mode=result.mode, n_candidates=result.n_candidates,
                          took_ms=1000 * timings["total"], timings_ms={k: 1000 * v for k, v in timings.items()},
                          hits=hits)
