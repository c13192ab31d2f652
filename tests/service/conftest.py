"""A real uvicorn server on 127.0.0.1 over a small real collection, Debian's Chromium for Playwright,
and the test images: real Caltech101 photos outside the served slice, odd but valid files, broken ones."""
from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from hashseek.search.collection import Collection
from hashseek.service import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _server import serve_process  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "service"


@contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))   # the server takes this socket: no race for the port
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="session")
def slice_collection(tmp_path_factory, caltech_slice) -> Path:
    """The Caltech101 slice (5 classes x 10 images) as a collection, built once and never served itself:
    each server gets a copy, since one process may hold a collection open only once."""
    dataset, ids = caltech_slice
    path = tmp_path_factory.mktemp("service") / "caltech"
    with Collection.create(path) as collection:
        collection.add_dataset(dataset, ids, progress=False)
    return path


@pytest.fixture(scope="session")
def classifier_collection(tmp_path_factory, caltech_slice) -> Path:
    """The slice indexed with a gap+csq model trained on 6 of each class's 10 images (calibrated on 2 more): a
    collection whose model has a classifier of its own (its hash centres)."""
    from hashseek.train import TrainConfig, Trainer

    dataset, ids = caltech_slice
    train = [i for n, i in enumerate(ids) if n % 10 < 6]
    val = [i for n, i in enumerate(ids) if n % 10 in (6, 7)]
    config = TrainConfig(head="gap", loss="csq", bits=16, epochs=6, batch_size=16, seed=0)
    model = Trainer(config, progress=False).fit(dataset, train, validation_ids=val).model
    path = tmp_path_factory.mktemp("service-classifier") / "caltech"
    with Collection.create(path, image_hasher=model) as collection:
        collection.add_dataset(dataset, ids, progress=False)
    return path


@pytest.fixture(scope="session")
def collection_copy(slice_collection, tmp_path_factory):
    """A factory of private copies of the slice collection (folder name ``caltech``)."""
    def make() -> Path:
        target = tmp_path_factory.mktemp("copy") / "caltech"
        shutil.copytree(slice_collection, target)
        return target
    return make


@pytest.fixture(scope="session")
def serve_app():
    """``serve`` for tests that need a server of their own (writes, other settings)."""
    return serve


@pytest.fixture(scope="session")
def serve_cli():
    """``serve_process`` for tests that need the server in a process of its own (memory, kill -9)."""
    return serve_process


@pytest.fixture(scope="session")
def served_path(collection_copy) -> Path:
    return collection_copy()


@pytest.fixture(scope="session")
def server(served_path) -> Iterator[str]:
    """The read-only server most tests share: nothing may add to or remove from it."""
    with serve(create_app(served_path)) as url:
        yield url


@pytest.fixture(scope="session")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium through its executable path (never a browser that Playwright downloads)."""
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: run scripts/setup-tests.sh (it installs Debian's "
                           "chromium package) or set CHROMIUM_PATH")
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots of the browser tests, kept for people to look at (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------------------------- test images
SLICE_PER_CLASS = 10   # tests/conftest.py's caltech_slice takes each class's first 10 images


def _unseen(dataset, cls: str) -> tuple[str, bytes]:
    """A real photo of ``cls`` that is not in the served collection: (id, JPEG bytes)."""
    image_id = [i for i in dataset.ids if i.startswith(cls + "/")][SLICE_PER_CLASS]
    return image_id, dataset.read_bytes(image_id)


@pytest.fixture(scope="session")
def unseen_photos(caltech_slice) -> list[tuple[str, bytes]]:
    """60 real photos of the slice's classes that are not in the served collection: (id, JPEG bytes)."""
    dataset, ids = caltech_slice
    classes = sorted({i.split("/")[0] for i in ids})
    extra = [i for cls in classes for i in [j for j in dataset.ids if j.startswith(cls + "/")][SLICE_PER_CLASS + 1:
                                                                                             SLICE_PER_CLASS + 13]]
    return [(i, dataset.read_bytes(i)) for i in extra]


@pytest.fixture(scope="session")
def photo(caltech_slice) -> tuple[str, bytes]:
    """A Motorbikes photo that is not in the served collection."""
    return _unseen(caltech_slice[0], "Motorbikes")


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="session")
def odd_images(photo) -> dict[str, bytes]:
    """Files a camera roll or the web hands over that must be searched like any photo."""
    rgb = Image.open(io.BytesIO(photo[1])).convert("RGB")
    grey16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    frames = [rgb, rgb.rotate(90), rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    return {
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG"),
        "grey16.png": _save(Image.fromarray(grey16), "PNG"),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "transparent.png": _save(rgba, "PNG"),
        "palette.png": _save(rgb.convert("P"), "PNG"),
        "grey.jpg": _save(rgb.convert("L"), "JPEG"),
        "photo.webp": _save(rgb, "WEBP"),
        "photo.tiff": _save(rgb, "TIFF"),
    }


@pytest.fixture(scope="session")
def broken_images(photo) -> dict[str, bytes]:
    """Files that are not usable images: each must get a clear 4xx, never a crash."""
    gif_header = b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"\x3b"
    jpeg, rng = photo[1], np.random.default_rng(0)
    return {
        "empty.jpg": b"",
        "notes.txt": b"hello, this is not an image\n",
        "page.html": b"<html><script>alert(1)</script></html>",
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "corrupt.jpg": jpeg[:20] + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        "bomb.png": _save(Image.new("1", (12_000, 12_000)), "PNG"),          # 144 Mpx in a few kB
        "huge-header.gif": gif_header,                                         # claims 65535 x 65535
    }
