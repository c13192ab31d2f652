"""Named, seeded evaluation protocols, saved as explicit id lists so every result can be reproduced.

A protocol splits a dataset into queries, a database searched by them, training images
and validation images. Validation images are held out of training and are what every
choice (epochs, checkpoint, settings) is made on; the queries are read only for the
final figures. The files for seed 0 ship in ``hashseek/data/protocol_files``; other
seeds are drawn on demand by the same code. A user's own source gets its split from
``hashseek.data.splits`` in the same form.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hashseek.core.atomic import atomic_write_bytes
from hashseek.core.errors import InvalidInputError, NotFoundError
from hashseek.core.registry import Registry
from hashseek.data.datasets import ImageDataset

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
    validation: list[str] = field(default_factory=list)   # held out of training; selection runs on these
    excluded: dict[str, str] = field(default_factory=dict)  # id -> why it is in no part (an unreadable file)
    leave_one_out: bool = False   # the queries are also in the database; each is left out of its own ranking
    folders: dict[str, list[str]] = field(default_factory=dict)   # part -> the source's folders that gave it

    def sizes(self) -> dict[str, int]:
        return {"query": len(self.query), "database": len(self.database), "train": len(self.train),
                "validation": len(self.validation)}

    def save(self, path: str | Path) -> Path:
        """Gzipped JSON, byte-stable (no time stamp in the header), written atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, gzip.compress(json.dumps(asdict(self)).encode("utf-8"), mtime=0))

    @classmethod
    def load(cls, path: str | Path) -> "Protocol":
        if not Path(path).is_file():
            raise NotFoundError(f"no split file at {path}")
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return cls(**json.load(f))
        except (OSError, EOFError, json.JSONDecodeError, TypeError) as err:
            raise InvalidInputError(f"{path} is not a split saved by hashseek ({err})") from None

    def drop_missing(self, dataset: ImageDataset) -> list[str]:
        """Leave out of every part the ids no longer in ``dataset`` (files deleted or moved since the split
        was drawn), recorded in ``excluded``; the ids dropped. Most of the split missing is an error: the
        split was drawn from another source."""
        parts = (self.query, self.database, self.train, self.validation)
        ids = {i for part in parts for i in part}
        missing = sorted(i for i in ids if i not in dataset)
        if len(missing) * 2 > len(ids):
            self.check(dataset)   # says which ids and asks about the source
        gone = set(missing)
        for part in parts:
            part[:] = [i for i in part if i not in gone]
        self.excluded.update({i: "no longer in the source (deleted or moved since the split was drawn)"
                              for i in missing})
        return missing

    def check(self, dataset: ImageDataset) -> None:
        """Every id must exist in the dataset; the queries are in neither training nor validation, and
        in the database only under leave-one-out; validation images are not trained on."""
        parts = (self.query, self.database, self.train, self.validation)
        missing = [i for part in parts for i in part if i not in dataset]
        if missing:
            raise InvalidInputError(f"protocol {self.name}: {len(missing)} ids are not in dataset {dataset.name!r}, "
                                    f"e.g. {missing[:3]}; was the split drawn from another source?")
        query = set(self.query)
        if query & (set(self.train) | set(self.validation)):
            raise InvalidInputError(f"protocol {self.name}: test queries are among the training or validation images")
        if not self.leave_one_out and query & set(self.database):
            raise InvalidInputError(f"protocol {self.name}: queries overlap the database")
        if set(self.validation) & set(self.train):
            raise InvalidInputError(f"protocol {self.name}: validation images are among the training images")


Splitter = Callable[[ImageDataset, int], Protocol]
PROTOCOLS: Registry[Splitter] = Registry("protocol")


def _by_class(dataset: ImageDataset, rng: np.random.Generator) -> dict[int, list[str]]:
    """Each class's ids in a seeded random order (classes in label order)."""
    groups: dict[int, list[str]] = {}
    for record in dataset.records:
        if record.label >= 0:
            groups.setdefault(record.label, []).append(record.id)
    return {label: [ids[i] for i in rng.permutation(len(ids))] for label, ids in sorted(groups.items())}


def _hold_out(train: list[str], n: int) -> tuple[list[str], list[str]]:
    """(training, validation): the first ``n`` of a class's shuffled training images validate, leaving
    at least one to train on."""
    n = min(n, len(train) - 1)
    return train[n:], train[:n]


def _ordered(ids: list[str], dataset: ImageDataset) -> list[str]:
    """Dataset order, so the database order (and hence the tie rule) does not depend on the seed."""
    chosen = set(ids)
    return [i for i in dataset.ids if i in chosen]


@PROTOCOLS.register("caltech101")
def caltech101_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """CBIR thesis library search: 10 queries per class (half of a tiny class), the rest is the
    database; up to 30 images per class drawn from the database for training, 5 of which are
    held out as validation."""
    rng = np.random.default_rng(seed)
    query, database, train, validation = [], [], [], []
    for ids in _by_class(dataset, rng).values():
        n_query = min(10, len(ids) // 2)
        query += ids[:n_query]
        database += ids[n_query:]
        fit, held = _hold_out(ids[n_query:n_query + 30], 5)
        train += fit
        validation += held
    return Protocol("caltech101", dataset.name, seed, caltech101_protocol.__doc__.strip(),
                    _ordered(query, dataset), _ordered(database, dataset), _ordered(train, dataset),
                    validation=_ordered(validation, dataset))


@PROTOCOLS.register("cifar10")
def cifar10_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """Deep-hashing standard: 100 queries and 500 labelled images per class drawn from all
    60,000 images; the database is the other 54,000 (mAP@all). Of each class's 500 labelled
    images 50 are held out as validation, 450 are trained on."""
    rng = np.random.default_rng(seed)
    query, database, train, validation = [], [], [], []
    for ids in _by_class(dataset, rng).values():
        query += ids[:100]
        fit, held = _hold_out(ids[100:600], 50)
        train += fit
        validation += held
        database += ids[600:]
    return Protocol("cifar10", dataset.name, seed, cifar10_protocol.__doc__.strip(),
                    _ordered(query, dataset), _ordered(database, dataset), _ordered(train, dataset),
                    validation=_ordered(validation, dataset))


@PROTOCOLS.register("cars-bmw13")
def cars_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """Vehicle paper (CompCars-mini setting): 25 labelled images per model form the database;
    the rest of each model are queries. Of the 25, 5 are held out as validation, 20 are
    trained on."""
    rng = np.random.default_rng(seed)
    query, database, train, validation = [], [], [], []
    for ids in _by_class(dataset, rng).values():
        database += ids[:25]
        fit, held = _hold_out(ids[:25], 5)
        train += fit
        validation += held
        query += ids[25:]
    return Protocol("cars-bmw13", dataset.name, seed, cars_protocol.__doc__.strip(),
                    _ordered(query, dataset), _ordered(database, dataset), _ordered(train, dataset),
                    validation=_ordered(validation, dataset))


@PROTOCOLS.register("cars-bmw13-unseen")
def cars_unseen_protocol(dataset: ImageDataset, seed: int = 0) -> Protocol:
    """Unseen classes (Bilinear-HashNet): 4 models are never trained on; every model gives
    25 images to the database and the rest as queries; only the 9 seen models' database
    images are labelled for training, 5 of each held out as validation."""
    rng = np.random.default_rng(seed)
    groups = _by_class(dataset, rng)
    unseen = set(rng.choice(sorted(groups), size=4, replace=False).tolist())
    query, database, train, validation = [], [], [], []
    for label, ids in groups.items():
        database += ids[:25]
        query += ids[25:]
        if label not in unseen:
            fit, held = _hold_out(ids[:25], 5)
            train += fit
            validation += held
    return Protocol("cars-bmw13-unseen", dataset.name, seed, cars_unseen_protocol.__doc__.strip(),
                    _ordered(query, dataset), _ordered(database, dataset), _ordered(train, dataset),
                    unseen_classes=sorted(dataset.classes[u] for u in unseen),
                    validation=_ordered(validation, dataset))


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
