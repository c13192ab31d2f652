"""The search settings every front end uses unless told otherwise: the CLI, the Python API, the
REST API and the page (which reads them from ``GET /api/search-defaults``). Defined here once.

The values were chosen on validation images only (each protocol's ``validation`` split searched
against its ``train`` split), for zero-training and trained collections alike, by
``benchmarks/search_defaults.py``; its figures are in ``docs/bench/search_defaults.json``.
Caltech101 validation (2,454 library images, 505 queries), mAP@all Hamming-only -> default:
zero-training ITQ 64 bits 0.649 -> 0.685, gap+csq 48 bits 0.876 -> 0.886, latent+ce 48 bits
0.877 -> 0.893. Cosine beat chi2 in every row (chi2 lost to Hamming-only on zero-training,
0.606 over the whole library); beyond 10% of the library more candidates changed mAP by < 0.001.
The one validation row below Hamming-only is cars-bmw13 zero-training's mAP (0.2152 vs 0.2168,
P@20 0.217 vs 0.212; 65 queries, ITQ codes near chance on 13 fine-grained classes); every test row
of both protocols is at or above Hamming-only.
Within equal Hamming distance the float order makes the top 20 independent of the order images
were added (100% of queries over 3 random orders, against 46-90% with insertion-order ties).
The top-8 vote beat the latent head's softmax classifier on caltech101 validation (0.907 vs
0.901; on the 65 cars-bmw13 validation queries the classifier won, 0.431 vs 0.400), and it also
covers classes added after training, so it is the default classification.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SearchDefaults:
    k: int = 20                       # results of a search
    vote_k: int = 8                   # neighbours that vote when classifying
    rerank: str | None = "cosine"     # float distance of the fine stage; None: Hamming ranking only
    candidates: int | None = None     # Hamming candidates the fine stage re-ranks; None: scaled to the library
    candidate_fraction: float = 0.1   # ... as this share of the library ...
    min_candidates: int = 100         # ... but at least this many (all of a small library)
    max_candidates: int = 10_000      # ... and at most this many (a bounded fine stage on a large one)
    tie_distance: str = "cosine"      # orders equal Hamming distances when there is no re-rank
    include_self: bool = False        # keep library images with the query's exact bytes in the results
    classify: str = "vote"            # "vote" of the top vote_k, or "classifier" (the model's own, if any)

    def candidate_count(self, n_library: int, candidates: int | None = None) -> int:
        """Candidates to re-rank in a library of ``n_library`` images: ``candidates`` when given,
        else ``candidate_fraction`` of the library within [min_candidates, max_candidates]."""
        if candidates is not None:
            return int(candidates)
        scaled = math.ceil(self.candidate_fraction * n_library)
        return max(1, min(self.max_candidates, max(self.min_candidates, scaled)))

    def to_dict(self) -> dict:
        return asdict(self)


SEARCH_DEFAULTS = SearchDefaults()
