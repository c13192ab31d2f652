"""The files of a collection directory, named once::

    C/
      collection.json    format version, n_bits, index kind, how the codes are made, created time
      hasher/            the saved ImageHasher (hasher.json names its type)
      meta.sqlite        one row per image: the journal and the truth
      features.f16       float16 features for re-ranking, one row per image, append-only
      index.faiss        the binary index of the codes (+ its .json sidecar): a cache. With the
                         ``milvus`` backend the codes live in a Milvus collection that
                         collection.json names (``index_options``), and this file only says how to
                         reconnect; the rest of the directory stays here
      index.state.json   which meta.sqlite state the index file reflects
      images/            stored copies of uploaded images, named by content hash
      slots/N/           another model's hasher/, features.f16 and collection.json: a reindex
                         being staged, or the previous model (``search.reindex``)
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import hashseek
from hashseek.core.atomic import atomic_write_json
from hashseek.core.errors import DamagedError, InvalidInputError, NotFoundError
from hashseek.core.hasher import ImageHasher

FORMAT_VERSION = 1
COLLECTION_JSON = "collection.json"
HASHER_DIR = "hasher"
META_DB = "meta.sqlite"
FEATURES_FILE = "features.f16"
INDEX_FILE = "index.faiss"
INDEX_STATE = "index.state.json"
IMAGES_DIR = "images"
SLOTS_DIR = "slots"        # slots/N: a model's hasher, features and collection.json beside the live ones
LOCK_FILE = ".lock"
MODEL_FILES = (FEATURES_FILE, HASHER_DIR, COLLECTION_JSON)   # what a reindex swaps, collection.json last


def read_config(path: Path) -> dict:
    """collection.json of the collection at ``path``, checked for its format version."""
    spec = path / COLLECTION_JSON
    if not spec.is_file():
        raise NotFoundError(f"{path} is not a hashseek collection ({COLLECTION_JSON} missing)")
    try:
        config = json.loads(spec.read_text())
    except ValueError as err:
        raise DamagedError(f"{spec} is not readable JSON ({err})") from None
    if config.get("version") != FORMAT_VERSION:
        raise InvalidInputError(f"{path}: unsupported collection version {config.get('version')!r}")
    return config


def write_config(path: Path, config: dict) -> None:
    atomic_write_json(path / COLLECTION_JSON, config)


def make_collection(path: Path, image_hasher: ImageHasher, index: str, index_options: dict) -> None:
    """The files of a new, empty collection; collection.json is written last: it marks a whole one."""
    path.mkdir(parents=True, exist_ok=True)
    (path / IMAGES_DIR).mkdir(exist_ok=True)
    image_hasher.save(path / HASHER_DIR)
    write_config(path, {"format": "hashseek-collection", "version": FORMAT_VERSION, "n_bits": image_hasher.n_bits,
                        "feature_dim": image_hasher.feature_dim, "index": index,
                        **({"index_options": index_options} if index_options else {}),
                        "made_with": image_hasher.describe(),
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "hashseek": hashseek.__version__})
