"""Shared fixtures: the small image set shipped with the tests, small real slices of the shared
datasets, and a private cache folder.

Two kinds of test data (CONTRIBUTING.md, "Test data"):
- ``image_set``: 4 generated classes x 8 JPEGs under tests/images/, always present. Logic tests that
  need pictures but not real photographs (decoding, collections, round trips) use it.
- the shared archives under ``HASHSEEK_DATA`` (default ../shared/datasets): tests that need real
  photographs or the named datasets. Without them a test is skipped with the reason on a developer
  machine, and FAILS under ``CI=true``: a CI run that silently tested nothing must not pass.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from hashseek.core.paths import data_root
from milvus_server import milvus_server, milvus_server_process  # noqa: F401  (a real Milvus server process)

IMAGES = Path(__file__).resolve().parent / "images"
NAMED_ARCHIVES = ("caltech101.tar", "cars-bmw13.tar.gz", "cifar10-jpg.tar.gz")


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def pytest_report_header(config):
    root = data_root()
    found = [name for name in NAMED_ARCHIVES if (root / name).is_file()]
    missing = "" if len(found) == len(NAMED_ARCHIVES) else \
        " - tests that need the missing ones " + ("FAIL (CI=true)" if in_ci() else "are skipped")
    return f"hashseek test data: {root} ({len(found)} of {len(NAMED_ARCHIVES)} archives){missing}"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Feature caches and ONNX exports of the test run go to a fresh folder, shared by all tests."""
    old = os.environ.get("HASHSEEK_CACHE")
    os.environ["HASHSEEK_CACHE"] = str(tmp_path_factory.mktemp("hashseek-cache"))
    yield
    if old is None:
        os.environ.pop("HASHSEEK_CACHE", None)
    else:
        os.environ["HASHSEEK_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_library():
    """On 2 shared cores, tiny torch/BLAS ops run 10-20x slower with spinning worker threads."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``milvus`` need pymilvus + milvus-lite: skipped without them, a failure in CI."""
    marked = [item for item in items if item.get_closest_marker("milvus")]
    if not marked:
        return
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as err:
        if os.environ.get("CI") == "true":
            raise
        skip = pytest.mark.skip(reason=f"pymilvus / milvus-lite not installed ({err}): pip install 'hashseek[milvus]'")
        for item in marked:
            item.add_marker(skip)


def require_archive(name: str) -> Path:
    """The shared archive ``name``; a missing one skips the test, or fails it under ``CI=true``."""
    path = data_root() / name
    if not path.is_file():
        message = (f"test data missing: {path} does not exist. Put the shared datasets there or point "
                   "HASHSEEK_DATA at the folder that holds caltech101.tar, cars-bmw13.tar.gz, cifar10-jpg.tar.gz")
        if in_ci():
            pytest.fail(f"{message} (CI=true: real-data tests fail instead of skipping)", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def archive():
    """``archive(name)``: the path of a shared archive, with the skip-or-fail rule of ``require_archive``."""
    return require_archive


@pytest.fixture(scope="session")
def image_set():
    """The shipped generated images: (dataset, ids), 8 ids per class, classes in sorted order."""
    from hashseek.data.datasets import FolderDataset

    dataset = FolderDataset(IMAGES)
    if len(dataset) != 32 or len(dataset.classes) != 4:
        pytest.fail(f"{IMAGES} should hold 4 classes x 8 images; regenerate with tests/images/make_images.py")
    return dataset, list(dataset.ids)


@pytest.fixture(scope="session")
def caltech101():
    from hashseek.data.named import load_dataset

    require_archive("caltech101.tar")
    return load_dataset("caltech101")


@pytest.fixture(scope="session")
def cars_bmw13():
    from hashseek.data.named import load_dataset

    require_archive("cars-bmw13.tar.gz")
    return load_dataset("cars-bmw13")


@pytest.fixture(scope="session")
def caltech_slice(caltech101):
    """5 classes x 10 images of Caltech101: (dataset, ids)."""
    classes = ["airplanes", "Faces_easy", "Motorbikes", "watch", "sunflower"]
    ids = []
    for cls in classes:
        ids += [i for i in caltech101.ids if i.startswith(cls + "/")][:10]
    return caltech101, ids
