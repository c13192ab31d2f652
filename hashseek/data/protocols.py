"""Named, seeded evaluation protocols, saved as explicit id lists so every result can be reproduced.

A protocol splits a dataset into queries, a database searched by them and training
images. The files for seed 0 ship in ``hashseek/data/protocol_files``; other seeds are
drawn on demand by the same code.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hashseek.data.datasets import ImageDataset
from hashseek.core.registry import Registry

PROTOCOL_DIR = Path(__file__).with_name("protocol_files")


@dataclass
class Protocol:
    name: str
    dataset: str
    seed: int
    description: str
    query: list[str]
    database: list[str]
    train: list[str]
    unseen_classes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"query": len(self.query), "database": len(self.database), "train": len(self.train)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
            f.write(json.dumps(asdict(self)).encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Protocol":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return cls(**json.load(f))

    def check(self, dataset: ImageDataset) -> None:
        """Every id must exist in the dataset; queries must not be in the database."""
        missing = [i for part in (self.query, self.database, self.train) for i in part if i not in dataset]
        if missing:
            raise ValueError(f"protocol {self.name}: {len(missing)} ids not in dataset, e.g. {missing[:3]}")
        if set(self.query) & set(self.database):
            raise ValueError(f"protocol {self.name}: queries overlap the database")


Splitter = Callable[[ImageDataset, int], Protocol]
PROTOCOLS: Registry[Splitter] = Registry("protocol")


def _by_class(dataset: ImageDataset, rng: np.random.Generator) -> dict[int, list[str]]:
    """Each class's ids in a seeded random order (classes in label order)."""
    groups: dict[int, list[str]] = {}
    for record in dataset.records:
        if record.label >= 0:
            groups.setdefault(record.label, []).append(record.id)
    return {label: [ids[i] for i in rng.permutation(len(ids))] for label, ids in sorted(groups.items())}


def _ordered(ids: list[str], dataset: ImageDataset) -> list[str]:
    """Dataset order, so the database order (and hence the tie rule) does not depend on the seed."""
    chosen = set(ids)
    return [i for i in dataset.ids if i in chosen]


@PROTOCOLS.register("caltech101")
def caltech101_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """CBIR thesis library search: 10 queries per class (half of a tiny class), the rest is the
    database; up to 30 training images per class drawn from the database."""
    rng = np.random.default_rng(seed)
    query, database, train = [], [], []
    for ids in _by_class(dataset, rng).values():
        n_query = min(10, len(ids) // 2)
        query += ids[:n_query]
        database += ids[n_query:]
        train += ids[n_query:n_query + 30]
    return Protocol("caltech101", dataset.name, seed, caltech101_protocol.__doc__.strip(),
                    _ordered(query, dataset), _ordered(database, dataset), _ordered(train, dataset))


@PROTOCOLS.register("cifar10")
def cifar10_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """Deep-hashing standard: 100 queries and 500 training images per class drawn from all
    60,000 images; the database is the other 54,000 (mAP@all)."""
    rng = np.random.default_rng(seed)
    query, database, train = [], [], []
    for ids in _by_class(dataset, rng).values():
        query += ids[:100]
        train += ids[100:600]
        database += ids[600:]
    return Protocol("cifar10", dataset.name, seed, cifar10_protocol.__doc__.strip(),
                    _ordered(query, dataset), _ordered(database, dataset), _ordered(train, dataset))


@PROTOCOLS.register("cars-bmw13")
def cars_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """Vehicle paper (CompCars-mini setting): 25 training images per model form the database;
    the rest of each model are queries."""
    rng = np.random.default_rng(seed)
    query, train = [], []
    for ids in _by_class(dataset, rng).values():
        train += ids[:25]
        query += ids[25:]
    train = _ordered(train, dataset)
    return Protocol("cars-bmw13", dataset.name, seed, cars_protocol.__doc__.strip(),
                    _ordered(query, dataset), train, train)


@PROTOCOLS.register("cars-bmw13-unseen")
def cars_unseen_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """Unseen classes (Bilinear-HashNet): 4 models are never trained on; every model gives
    25 images to the database and the rest as queries; only the 9 seen models' database
    images are used for training."""
    rng = np.random.default_rng(seed)
    groups = _by_class(dataset, rng)
    unseen = set(rng.choice(sorted(groups), size=4, replace=False).tolist())
    query, database, train = [], [], []
    for label, ids in groups.items():
        database += ids[:25]
        query += ids[25:]
        if label not in unseen:
            train += ids[:25]
    return Protocol("cars-bmw13-unseen", dataset.name, seed, cars_unseen_protocol.__doc__.strip(),
                    _ordered(query, dataset), _ordered(database, dataset), _ordered(train, dataset),
                    unseen_classes=sorted(dataset.classes[u] for u in unseen))


def protocol_dataset(name: str) -> str:
    """The named dataset a protocol splits."""
    return "cars-bmw13" if name.startswith("cars-bmw13") else name


def shipped_protocol_path(name: str, seed: int) -> Path:
    return PROTOCOL_DIR / f"{name}-seed{seed}.json.gz"


def make_protocol(name: str, dataset: ImageDataset, seed: int = 0) -> Protocol:
    """Draw a protocol's split from the dataset."""
    return PROTOCOLS.get(name)(dataset, seed)


def get_protocol(name: str, dataset: ImageDataset | None = None, seed: int = 0) -> Protocol:
    """The shipped id lists when they exist, otherwise a fresh seeded split of ``dataset``."""
    shipped = shipped_protocol_path(name, seed)
    if shipped.is_file():
        protocol = Protocol.load(shipped)
    else:
        if dataset is None:
            from hashseek.data.named import load_dataset

            dataset = load_dataset(protocol_dataset(name))
        protocol = make_protocol(name, dataset, seed)
    if dataset is not None:
        protocol.check(dataset)
    return protocol
