"""Shared fixtures: small real slices of the shared datasets, and a private cache folder."""
from __future__ import annotations

import os
import warnings

import pytest

from hashseek.core.paths import data_root


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


def _archive(name: str):
    path = data_root() / name
    if not path.is_file():
        pytest.skip(f"{path} not available (set HASHSEEK_DATA)")
    return path


@pytest.fixture(scope="session")
def caltech101():
    from hashseek.data.named import load_dataset

    _archive("caltech101.tar")
    return load_dataset("caltech101")


@pytest.fixture(scope="session")
def cars_bmw13():
    from hashseek.data.named import load_dataset

    _archive("cars-bmw13.tar.gz")
    return load_dataset("cars-bmw13")


@pytest.fixture(scope="session")
def caltech_slice(caltech101):
    """5 classes x 10 images of Caltech101: (dataset, ids)."""
    classes = ["airplanes", "Faces_easy", "Motorbikes", "watch", "sunflower"]
    ids = []
    for cls in classes:
        ids += [i for i in caltech101.ids if i.startswith(cls + "/")][:10]
    return caltech101, ids
