"""What the service benchmarks share: the Caltech101 collection and a 100k-image variant (the server
process: ``_server.serve_process``)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from collection_speed import build  # noqa: E402

from hashseek.data.named import load_dataset  # noqa: E402
from hashseek.search.collection import COLLECTION_JSON, Collection  # noqa: E402

SYNTHETIC_LABEL = "synthetic"


def caltech_collection(work: Path) -> tuple[Path, dict]:
    """All 8,677 Caltech101 images (EfficientNet-Lite0 + ITQ 64 bits), built once under ``work``
    (the same collection ``collection_speed.py`` uses); returns its path and how long building took."""
    path = work / "caltech101-efficientnet_lite0-itq64"
    return path, build(path, load_dataset("caltech101"), 64, "efficientnet_lite0")


def synthetic_collection(source: Path, path: Path, size: int, seed: int = 0) -> Path:
    """A copy of ``source`` grown to ``size`` images with synthetic rows, built once.

    Each synthetic feature is a real one plus Gaussian noise (0.5 x the per-dimension spread,
    clipped at 0 like the pooled ReLU features), hashed by the collection's own fitted hasher,
    so codes and re-rank distances are spread like real ones. They enter through
    ``Collection.add_features``, the step every ``add_*`` ends in: features appended and
    fsynced, then one SQLite transaction per block.
    Synthetic rows have no image file (their thumbnails answer 404) and the label ``synthetic``.
    """
    if (path / COLLECTION_JSON).is_file():
        return path
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    rng = np.random.default_rng(seed)
    with Collection.open(tmp) as collection:
        ids = np.array([record.id for record in collection.list(limit=len(collection))])
        real = collection.features_of(ids).astype(np.float32)
        spread = real.std(axis=0)
        for start in range(len(collection), size, 8192):
            n = min(8192, size - start)
            base = real[rng.integers(len(real), size=n)]
            features = np.maximum(base + 0.5 * spread * rng.standard_normal(base.shape, np.float32), 0)
            features = features.astype(np.float16)
            codes = collection.image_hasher.codes_from_features(features)
            collection.add_features(features, codes, [f"synthetic:{start + i}" for i in range(n)],
                                    [f"synthetic/{start + i:06d}" for i in range(n)], [SYNTHETIC_LABEL] * n)
        assert len(collection) == size
    tmp.rename(path)
    return path
