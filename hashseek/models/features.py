"""Backbone features for any list of images, batched, on all cores, cached on disk.

Two kinds: the pooled vector (kNN, shallow hashers, re-ranking) and the last conv
map (training spatial heads such as gap, bilinear and spp_pmt on frozen features).
The cache key is the dataset's fingerprint (source + exact id list), the backbone, a
hash of its weights, the input size and the kind: a second run with the same inputs
loads the ``.npz`` instead of running the network.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hashseek.data.datasets import ImageDataset
from hashseek.data.loader import Preprocess, iter_batches
from hashseek.models.backbones import Backbone, create_backbone
from hashseek.models.runtime import InferenceRunner, weights_digest
from hashseek.paths import cache_root

FEATURE_KINDS = ("pooled", "map")

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    ids: list[str]
    labels: np.ndarray            # (n,) int64, -1 = unlabelled
    features: np.ndarray          # (n, d) pooled or (n, C, h, w) maps, float16
    meta: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Atomic write: a temporary file renamed into place."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz.part", delete=False) as tmp:
            np.savez(tmp, ids=np.array(self.ids), labels=self.labels, features=self.features,
                     meta=np.array(json.dumps(self.meta)))
        os.replace(tmp.name, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["ids"].tolist(), z["labels"], z["features"], json.loads(str(z["meta"])))

    def select(self, ids: Sequence[str]) -> "FeatureSet":
        """Rows for ``ids`` in that order (ids that failed to decode are dropped)."""
        position = {i: n for n, i in enumerate(self.ids)}
        rows = [position[i] for i in ids if i in position]
        return FeatureSet([self.ids[r] for r in rows], self.labels[rows], self.features[rows], self.meta)


class _FeatureMap(torch.nn.Module):
    """Exports a backbone's last conv map instead of its pooled vector."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)


class BackboneEncoder:
    """A backbone + its preprocessing: image sources -> pooled vectors or conv maps."""

    def __init__(self, backbone: Backbone | str = "efficientnet_lite0", kind: str = "pooled",
                 runtime: str = "onnx", pretrained: bool = True, weights: str | None = None,
                 threads: int | None = None):
        if kind not in FEATURE_KINDS:
            raise ValueError(f"kind must be one of {FEATURE_KINDS}, got {kind!r}")
        if isinstance(backbone, str):
            backbone = create_backbone(backbone, pretrained=pretrained, weights=weights)
        self.backbone = backbone
        self.kind = kind
        self.preprocess = Preprocess(backbone.input_size, tuple(backbone.mean), tuple(backbone.std))
        module = backbone if kind == "pooled" else _FeatureMap(backbone)
        self.runner = InferenceRunner(module, backbone.input_size, runtime, threads, tag=f"{backbone.name}-{kind}")
        self.weights_digest = weights_digest(backbone)

    def encode_arrays(self, inputs: np.ndarray) -> np.ndarray:
        return self.runner(inputs)

    def encode(self, sources: Sequence, batch_size: int = 32) -> np.ndarray:
        """Paths, bytes or file objects -> float32 features; an unreadable image raises ImageDecodeError."""
        out = [self.runner(np.stack([self.preprocess(s) for s in sources[i:i + batch_size]]))
               for i in range(0, len(sources), batch_size)]
        return np.concatenate(out)

    def describe(self) -> dict:
        return {"backbone": self.backbone.name, "weights_digest": self.weights_digest, "kind": self.kind,
                **self.backbone.preprocessing()}


def extract_features(
    dataset: ImageDataset,
    ids: Sequence[str] | None = None,
    encoder: BackboneEncoder | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> FeatureSet:
    """Features of ``ids`` (default: the whole dataset); unreadable images are skipped and counted."""
    encoder = encoder or BackboneEncoder()
    ids = list(dataset.ids if ids is None else ids)
    key = f"{dataset.name}-{dataset.fingerprint(ids)}-{encoder.backbone.name}-{encoder.weights_digest}-{encoder.backbone.input_size}-{encoder.kind}"
    path = cache_root() / "features" / f"{key}.npz"
    if cache and path.is_file():
        log.info("feature cache hit: %s", path)
        return FeatureSet.load(path)

    done_ids, chunks, failed = [], [], []
    bar = tqdm(total=len(ids), desc=f"features {dataset.name}/{encoder.backbone.name}",
               unit="img", disable=not progress)
    for batch in iter_batches(ids, dataset.read_bytes, encoder.preprocess, batch_size, workers):
        if batch.ids:
            chunks.append(encoder.encode_arrays(batch.inputs).astype(np.float16))
            done_ids += batch.ids
        failed += batch.failed
        bar.update(len(batch.ids) + len(batch.failed))
    bar.close()
    if failed:
        log.warning("skipped %d unreadable images, e.g. %s: %s", len(failed), *failed[0])
    if not chunks:
        raise ValueError(f"none of the {len(ids)} images could be decoded, e.g. {failed[0] if failed else None}")
    features = np.concatenate(chunks)
    result = FeatureSet(
        done_ids, dataset.labels(done_ids), features,
        meta={"dataset": dataset.name, "fingerprint": dataset.fingerprint(ids), **encoder.describe(),
              "n_requested": len(ids), "n_failed": len(failed), "failed": failed[:100]},
    )
    if cache:
        result.save(path)
    return result
