"""Reaching a Milvus deployment and checking what is sent to it: the client import, connections
(a server URI or a milvus-lite file), the server's failures as typed errors, names, labels and
index settings."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
import time
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from hashseek.core.errors import InvalidInputError, UnavailableError

TOKEN_ENV = "HASHSEEK_MILVUS_TOKEN"
INSTALL_HINT = "pip install 'hashseek[milvus]'"
INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")
CONSISTENCY_LEVELS = ("Session", "Strong", "Bounded")   # of searches; counts and listings are Strong
LABEL_BYTES = 1024
NAME_BYTES = 4096
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_PKG_RESOURCES_WARNING = "pkg_resources is deprecated"  # emitted by milvus-lite 2.5.1 on import

def import_pymilvus() -> Any:
    """Import pymilvus on first use: hashseek works without it unless this backend is chosen."""
    try:
        import pymilvus
    except ImportError as err:
        raise ImportError(f"the 'milvus' index needs pymilvus (and milvus-lite for .db files): "
                          f"{INSTALL_HINT}") from err
    return pymilvus


def is_lite(uri: str) -> bool:
    """pymilvus runs milvus-lite, in-process, for a URI naming a ``.db`` file."""
    return uri.endswith(".db")


LITE_START_S = 30.0   # milvus-lite starts its embedded server at the first connect to a file, and pymilvus fails
                      # at once (no wait for the socket) while it is not up: on a busy machine that took seconds


def connect(uri: str, token: str | None) -> "RemoteClient":
    pymilvus = import_pymilvus()
    deadline = time.monotonic() + LITE_START_S
    while True:
        try:
            return _client(pymilvus, uri, token)
        except pymilvus.exceptions.MilvusException as err:
            if not is_lite(uri) or "fail connecting" not in str(err).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _client(pymilvus: Any, uri: str, token: str | None) -> "RemoteClient":
    try:
        with warnings.catch_warnings(), remote_errors(uri):
            warnings.filterwarnings("ignore", message=_PKG_RESOURCES_WARNING)
            return RemoteClient(pymilvus.MilvusClient(uri=uri, token=token or "", timeout=CONNECT_TIMEOUT_S), uri)
    except pymilvus.exceptions.ConnectionConfigException as err:
        if not is_lite(uri):
            raise
        if importlib.util.find_spec("milvus_lite") is None:
            reason = f"milvus-lite is not installed: {INSTALL_HINT}"
        elif importlib.util.find_spec("pkg_resources") is None:
            reason = "milvus-lite 2.5.1 imports pkg_resources, gone from setuptools 82: pip install 'setuptools<82'"
        else:
            reason = "milvus-lite opens a file from one process at a time; is another process using it?"
        raise RuntimeError(f"cannot open the milvus-lite file {uri}: {reason}") from err


CONNECT_TIMEOUT_S = 10.0   # a server that does not answer a connect in this long is down
_DOWN_WORDS = ("fail connecting", "unavailable", "not ready", "not healthy", "deadline", "connection refused",
               "connect failed", "server is closed", "channel closed", "node not found", "no available")
_NOT_LOADED = 101           # Milvus's "collection not loaded", e.g. a server restarted after a crash


def _is_down(err: BaseException) -> bool:
    """A failure of the server or the network (retrying later may work), not of the request."""
    pymilvus = import_pymilvus()
    if isinstance(err, (pymilvus.exceptions.MilvusUnavailableException, ConnectionError, TimeoutError)):
        return True
    if type(err).__module__.startswith("grpc"):
        return True
    message = str(getattr(err, "message", "") or err).lower()
    return isinstance(err, pymilvus.exceptions.MilvusException) and any(w in message for w in _DOWN_WORDS)


@contextmanager
def remote_errors(uri: str) -> Iterator[None]:
    """The server's (or the network's) failures as UnavailableError (the service answers 503)."""
    try:
        yield
    except UnavailableError:
        raise
    except Exception as err:
        if is_lite(uri) or not _is_down(err):
            raise
        raise UnavailableError(f"the Milvus server at {uri} does not answer ({getattr(err, 'message', err)}); "
                               f"retry when it is back") from err


class RemoteClient:
    """A ``pymilvus.MilvusClient`` whose calls raise UnavailableError while the server is down, and
    that loads a collection a restarted server forgot to load, then asks once more."""

    def __init__(self, client: Any, uri: str):
        self.raw, self.uri = client, uri

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.raw, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with remote_errors(self.uri):
                try:
                    with quiet_pymilvus():
                        return method(*args, **kwargs)
                except import_pymilvus().exceptions.MilvusException as err:
                    if err.code != _NOT_LOADED or not args or name == "load_collection":
                        raise
                self.raw.load_collection(args[0])
                return method(*args, **kwargs)
        return call


@contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """Hide pymilvus's ERROR log and traceback for a call whose failure is expected and handled."""
    logger = logging.getLogger("pymilvus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_label(label: str) -> str:
    """Labels end up inside filter expressions, which have no escape for line breaks or other controls."""
    if not isinstance(label, str):
        raise InvalidInputError(f"labels must be strings or None, got {type(label).__name__}")
    if any(ord(c) < 32 for c in label):
        raise InvalidInputError(f"label {label!r} contains a control character, which a Milvus filter cannot express")
    if len(label.encode()) > LABEL_BYTES:
        raise InvalidInputError(f"label longer than {LABEL_BYTES} bytes: {label[:40]!r}...")
    return label


def check_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(f"names must be strings or None, got {type(name).__name__}")
    if len(name.encode()) > NAME_BYTES:
        raise InvalidInputError(f"name longer than {NAME_BYTES} bytes: {name[:40]!r}...")
    return name


def label_filter(label: str) -> str:
    """Milvus filter keeping one label: a double-quoted literal with backslash and quote escaped."""
    if check_label(label) == "":
        raise InvalidInputError("label must be non-empty ('' marks unlabelled items)")
    literal = label.replace("\\", "\\\\").replace('"', '\\"')
    return f'label == "{literal}"'


def text_column(values: Sequence[str | None] | None, n: int, what: str, check: Callable[[str], str]) -> list[str]:
    if values is None:
        return [""] * n
    values = list(values)
    if len(values) != n:
        raise InvalidInputError(f"got {n} codes but {len(values)} {what}")
    return ["" if v is None else check(v) for v in values]


def check_settings(uri: str, collection_name: str, index_type: str = "BIN_FLAT", nlist: int = 1024,
                   nprobe: int = 16, consistency: str = "Session") -> None:
    """Refuse settings Milvus would refuse later, without touching any server."""
    if not (is_lite(uri) or uri.startswith(("http://", "https://", "tcp://", "unix:"))):
        raise InvalidInputError(f"uri must be a Milvus server (http[s]://host:19530, tcp://, unix:) or a milvus-lite "
                         f"file ending in .db, got {uri!r}")
    if not isinstance(collection_name, str) or not _COLLECTION_NAME.fullmatch(collection_name):
        raise InvalidInputError(f"collection_name must be letters, digits and _ (not first), "
                         f"at most 255, got {collection_name!r}")
    if index_type not in INDEX_TYPES:
        raise InvalidInputError(f"index_type must be one of {INDEX_TYPES}, got {index_type!r}")
    if not (isinstance(nlist, int) and 1 <= nlist <= 65536 and isinstance(nprobe, int) and nprobe >= 1):
        raise InvalidInputError(f"need 1 <= nlist <= 65536 and nprobe >= 1, got {nlist!r}, {nprobe!r}")
    if consistency not in CONSISTENCY_LEVELS:
        raise InvalidInputError(f"consistency must be one of {CONSISTENCY_LEVELS}, got {consistency!r}")
