"""The float vectors of a protocol's parts for the runner's float and shallow rows.

Without a pooling, the backbone's own pooled vector (one extraction over query, database and
training images). With a pooling (``float:gem``, ``itq:rmac``, ...), each part's last conv maps,
cached under the id lists the trainer and evaluator use (so a protocol whose maps were extracted
once, e.g. by ``benchmarks/protocol_maps.py``, never runs the backbone again), aggregated by the
registered pooling; R-MAC's whitening and NetVLAD's centres are fitted on (up to ``FIT_MAPS``)
training maps, never on queries.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hashseek.data.datasets import ImageDataset
from hashseek.data.protocols import Protocol
from hashseek.eval.cost import parameter_count
from hashseek.models.aggregation.fitting import fit_pooling, needs_fit, pool_maps
from hashseek.models.features import BackboneEncoder, FeatureSet, extract_features

FIT_MAPS = 2000


@dataclass
class PooledParts:
    query: FeatureSet
    database: FeatureSet
    train: FeatureSet | None          # None for a float row whose pooling fits nothing
    dropped: list[list[str]]          # (id, reason) of the images that could not be read
    source: str                       # where the vectors came from, as the record says
    parameters: int                   # the backbone's and the pooling's


@lru_cache(maxsize=4)
def pooled_encoder(backbone: str, pooling: str | None = None) -> BackboneEncoder:
    """One ONNX session per backbone (and pooling) for the whole process (building it costs seconds)."""
    return BackboneEncoder(backbone, kind="pooled", pooling=pooling)


@lru_cache(maxsize=2)
def _map_encoder(backbone: str) -> BackboneEncoder:
    return BackboneEncoder(backbone, kind="map")


def protocol_vectors(dataset: ImageDataset, protocol: Protocol, backbone: str, pooling: str | None,
                     need_train: bool, seed: int = 0, progress: bool = True) -> PooledParts:
    """Float32 vectors of the query, database and (when ``need_train``, or to fit the pooling) training images."""
    parts = {"query": protocol.query, "database": protocol.database}
    if need_train or pooling is None or needs_fit(pooling):   # pooled: one cache entry for float and hashers
        parts["train"] = protocol.train
    if pooling is None:
        encoder = pooled_encoder(backbone)
        needed = sorted(set().union(*parts.values()))
        pooled = extract_features(dataset, needed, encoder=encoder, progress=progress)
        vectors = {part: _float32(pooled.select(ids)) for part, ids in parts.items()}
        return PooledParts(vectors["query"], vectors["database"], vectors["train"] if need_train else None,
                           _unreadable(pooled, needed),
                           "cached pooled backbone features", parameter_count(encoder.backbone))
    encoder = _map_encoder(backbone)
    maps = {part: extract_features(dataset, ids, encoder=encoder, progress=progress) for part, ids in parts.items()}
    fit = maps.get("train")
    rows = slice(None)
    if fit is not None and len(fit.ids) > FIT_MAPS:
        rows = np.sort(np.random.default_rng(seed).choice(len(fit.ids), FIT_MAPS, replace=False))
    module = fit_pooling(pooling, fit.features[rows] if fit is not None else maps["query"].features[:1], seed)
    vectors = {part: FeatureSet(m.ids, m.labels, pool_maps(module, m.features).astype(np.float32), m.meta)
               for part, m in maps.items()}
    dropped = [row for part, m in maps.items() for row in _unreadable(m, parts[part])]
    fitted = f", fitted on {len(fit.features[rows])} training maps" if needs_fit(pooling) else ""
    return PooledParts(vectors["query"], vectors["database"], vectors.get("train") if need_train else None, dropped,
                       f"cached backbone maps, {pooling} pooling{fitted}",
                       parameter_count(encoder.backbone) + parameter_count(module))


def _float32(part: FeatureSet) -> FeatureSet:
    return FeatureSet(part.ids, part.labels, part.features.astype(np.float32), part.meta)


def _unreadable(features: FeatureSet, ids: list[str]) -> list[list[str]]:
    """(id, reason) of the images feature extraction could not read: recorded, never dropped silently."""
    reasons = dict(features.meta.get("failed", []))
    kept = set(features.ids)
    return [[i, reasons.get(i, "could not be read")] for i in ids if i not in kept]
