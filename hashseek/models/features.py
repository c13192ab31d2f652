"""Backbone features for any list of images, batched, on all cores, cached on disk.

Two kinds: the pooled vector (kNN, shallow hashers, re-ranking) and the last conv
map (training spatial heads such as gap, bilinear and spp_pmt on frozen features).
The cache key is the dataset's fingerprint (source + exact id list), the backbone, a
hash of its weights, the input size and the kind: a second run with the same inputs
loads the ``.npz`` instead of running the network. The features are streamed to disk as
they are computed and read back memory-mapped: CIFAR-10's 60,000 maps are 6.9 GB of
float16, which neither extraction nor a later run holds in memory at once.
"""
from __future__ import annotations

import io
import json
import logging
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hashseek.data.datasets import ImageDataset
from hashseek.data.loader import Preprocess, iter_batches
from hashseek.core.atomic import atomic_path
from hashseek.core.errors import InvalidInputError
from hashseek.models.aggregation import create_pooling
from hashseek.models.backbones import Backbone, create_backbone
from hashseek.models.runtime import InferenceRunner, weights_digest
from hashseek.core.paths import cache_root

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
        rows = max(1, (64 << 20) // max(1, self.features[:1].nbytes))   # ~64 MB at a time, never a whole copy
        blocks = (np.ascontiguousarray(self.features[i:i + rows]).tobytes() for i in range(0, len(self.features), rows))
        return _write_npz(path, self.ids, self.labels, self.meta, blocks, self.features.dtype, self.features.shape)

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> "FeatureSet":
        """With ``mmap`` the features stay on disk (read-only, paged in as rows are used)."""
        with np.load(path, allow_pickle=False) as z:
            ids, labels, meta = z["ids"].tolist(), z["labels"], json.loads(str(z["meta"]))
            features = _memmap_member(path, "features.npy") if mmap else None
            return cls(ids, labels, z["features"] if features is None else features, meta)

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


class _AggregatedMap(torch.nn.Module):
    """Exports a backbone's last conv map aggregated by a registered pooling (GeM, R-MAC, ...)."""

    def __init__(self, backbone: Backbone, pooling: torch.nn.Module):
        super().__init__()
        self.backbone, self.pooling = backbone, pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooling(self.backbone.forward_features(x))


class BackboneEncoder:
    """A backbone + its preprocessing: image sources -> pooled vectors or conv maps.

    ``pooling`` names an aggregation of the conv map (``hashseek.models.aggregation``) that replaces
    the backbone's own pooled vector (a global average, or fc7 for AlexNet/VGG)."""

    def __init__(self, backbone: Backbone | str = "efficientnet_lite0", kind: str = "pooled",
                 runtime: str = "onnx", pretrained: bool = True, weights: str | None = None,
                 threads: int | None = None, pooling: str | None = None):
        if kind not in FEATURE_KINDS:
            raise InvalidInputError(f"kind must be one of {FEATURE_KINDS}, got {kind!r}")
        if pooling is not None and kind != "pooled":
            raise InvalidInputError("a pooling applies to pooled features, not to conv maps")
        if isinstance(backbone, str):
            backbone = create_backbone(backbone, pretrained=pretrained, weights=weights)
        self.backbone = backbone
        self.kind, self.pooling = kind, pooling
        self.preprocess = Preprocess(backbone.input_size, tuple(backbone.mean), tuple(backbone.std))
        if kind == "map":
            module = _FeatureMap(backbone)
        elif pooling is None:
            module = backbone
        else:
            module = _AggregatedMap(backbone, create_pooling(pooling, backbone.feature_channels).eval())
        self.dim = module.pooling.output_dim if pooling is not None else backbone.pooled_dim
        tag = f"{backbone.name}-{kind}" + (f"-{pooling}" if pooling else "")
        self.runner = InferenceRunner(module, backbone.input_size, runtime, threads, tag=tag)
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
                **({"pooling": self.pooling} if self.pooling else {}), **self.backbone.preprocessing()}


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
    key += f"-{encoder.pooling}" if encoder.pooling else ""
    path = cache_root() / "features" / f"{key}.npz"
    if cache and path.is_file():
        log.info("feature cache hit: %s", path)
        return FeatureSet.load(path)

    done_ids, failed, row_shape = [], [], None
    bar = tqdm(total=len(ids), desc=f"features {dataset.name}/{encoder.backbone.name}",
               unit="img", disable=not progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    # rows go to a raw file as they come (no list of chunks, no concatenated copy)
    with tempfile.TemporaryFile(dir=path.parent) as raw:
        for batch in iter_batches(ids, dataset.read_bytes, encoder.preprocess, batch_size, workers):
            if batch.ids:
                rows = encoder.encode_arrays(batch.inputs).astype(np.float16)
                row_shape = rows.shape[1:]
                raw.write(np.ascontiguousarray(rows).tobytes())
                done_ids += batch.ids
            failed += batch.failed
            bar.update(len(batch.ids) + len(batch.failed))
        bar.close()
        if failed:
            log.warning("skipped %d unreadable images, e.g. %s: %s", len(failed), *failed[0])
        if not done_ids:
            raise ValueError(f"none of the {len(ids)} images could be decoded, e.g. {failed[0] if failed else None}")
        meta = {"dataset": dataset.name, "fingerprint": dataset.fingerprint(ids), **encoder.describe(),
                "n_requested": len(ids), "n_failed": len(failed), "failed": failed[:100]}
        raw.seek(0)
        shape, labels = (len(done_ids), *row_shape), dataset.labels(done_ids)
        if not cache:
            return FeatureSet(done_ids, labels, np.fromfile(raw, np.float16).reshape(shape), meta)
        _write_npz(path, done_ids, labels, meta, iter(lambda: raw.read(64 << 20), b""), np.dtype(np.float16), shape)
    return FeatureSet.load(path)


def _write_npz(path: str | Path, ids: Sequence[str], labels: np.ndarray, meta: dict, feature_blocks: Iterable[bytes],
               dtype: np.dtype, shape: tuple[int, ...]) -> Path:
    """An ``np.load``-able .npz, written atomically, its features from blocks of C-ordered rows'
    bytes; members are stored uncompressed, so the features can be memory-mapped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in (("ids", np.array(list(ids))), ("labels", np.asarray(labels)),
                                ("meta", np.array(json.dumps(meta)))):
                member = io.BytesIO()
                np.save(member, array, allow_pickle=False)
                zf.writestr(f"{name}.npy", member.getvalue())
            with zf.open("features.npy", "w", force_zip64=True) as member:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                          "shape": tuple(int(n) for n in shape)}
                np.lib.format.write_array_header_2_0(member, header)
                for block in feature_blocks:
                    member.write(block)
    return path


def _memmap_member(path: str | Path, name: str) -> np.memmap | None:
    """A read-only memmap of an uncompressed .npy member of a zip (None if it is compressed)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(f))
        if read_header is None:
            return None
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject or 0 in shape:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
