"""What the service benchmarks share: the Caltech101 collection, a 100k-image variant, a server process."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
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


@contextmanager
def server(collections: list[Path], *options: str) -> Iterator[str]:
    """``hashseek serve`` (with ``options``) in its own process on a free loopback port; yields the base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = "import sys; from hashseek.cli import main; sys.exit(main())"
    process = subprocess.Popen([sys.executable, "-c", command, "serve", *map(str, collections), "--port", str(port),
                                *options])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(f"{url}/health", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(60)
