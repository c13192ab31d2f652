"""The search settings every front end uses unless told otherwise: the CLI, the Python API, the
REST API and the page (which reads them from ``GET /api/search-defaults``). Defined here once."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SearchDefaults:
    k: int = 20                  # results of a search
    vote_k: int = 8              # neighbours that vote when classifying
    rerank: str | None = None    # float distance of the fine stage; None: Hamming ranking only
    candidates: int = 1000       # Hamming candidates the fine stage re-ranks

    def to_dict(self) -> dict:
        return asdict(self)


SEARCH_DEFAULTS = SearchDefaults()
