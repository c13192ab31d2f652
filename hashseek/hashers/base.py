"""What every shallow hasher shares: validation, packing, persistence and the PCA helpers.

A hasher maps float features (n, d) to real projections (n, n_bits) whose signs are the
bits; ``transform`` packs them (``hashseek.core.bits``) so codes leave here ready to index.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from hashseek.core.bits import binarize, pack_bits
from hashseek.core.registry import Registry

MIN_BITS, MAX_BITS = 8, 256
_CONFIG_KEY = "__config__"
_PROJECT_CHUNK = 8192  # rows per block in project(): bounds SDH's (rows, anchors) kernel matrix


class NotFittedError(ValueError, AttributeError):
    """A hasher was used before ``fit``; same bases as scikit-learn's, without importing scikit-learn (seconds)."""


class Hasher:
    """Base class: subclasses implement ``_fit`` and ``_project`` and list their fitted arrays.

    ``state_keys`` names the fitted attributes (arrays) saved by ``state_dict``;
    ``hyper_params`` names the constructor arguments beyond ``n_bits``/``seed`` that
    ``config`` records, so ``create_hasher(**config)`` rebuilds an identical estimator.
    """

    name: ClassVar[str] = ""
    state_keys: ClassVar[tuple[str, ...]] = ()
    hyper_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_bits: int, seed: int = 0):
        if not isinstance(n_bits, (int, np.integer)) or not MIN_BITS <= n_bits <= MAX_BITS:
            raise ValueError(f"n_bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {n_bits!r}")
        self.n_bits = int(n_bits)
        self.seed = int(seed)
        self.n_features_in_: int | None = None

    # -- estimator API -------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Hasher":
        X = _as_features(X)
        if X.shape[0] < 2:
            raise ValueError(f"{self.name} needs at least 2 samples to fit, got {X.shape[0]}")
        self._fit(X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def project(self, X: np.ndarray) -> np.ndarray:
        """(n, d) features -> (n, n_bits) real projections; bit = projection >= 0."""
        X = self._check_input(X)
        # float64 copies are made one block at a time, so float32 inputs are never duplicated whole.
        blocks = [self._project(_as_features(X[i:i + _PROJECT_CHUNK])) for i in range(0, len(X), _PROJECT_CHUNK)]
        return np.concatenate(blocks) if blocks else np.empty((0, self.n_bits))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(n, d) features -> (n, ceil(n_bits/8)) packed uint8 codes."""
        return pack_bits(binarize(self.project(X)))

    def fit_transform(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, y).transform(X)

    # -- persistence ---------------------------------------------------------------
    def config(self) -> dict:
        """Everything needed to rebuild the (unfitted) estimator: name, n_bits, seed, hyper-parameters."""
        cfg = {"name": self.name, "n_bits": self.n_bits, "seed": self.seed}
        cfg.update({key: getattr(self, key) for key in self.hyper_params})
        return cfg

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted arrays, including the centring/normalisation statistics."""
        self._check_fitted()
        state = {key: np.asarray(getattr(self, key)) for key in self.state_keys}
        state["n_features_in_"] = np.asarray(self.n_features_in_)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> "Hasher":
        missing = [key for key in (*self.state_keys, "n_features_in_") if key not in state]
        if missing:
            raise KeyError(f"{self.name} state is missing {', '.join(missing)}")
        for key in self.state_keys:
            setattr(self, key, np.asarray(state[key]))
        self.n_features_in_ = int(state["n_features_in_"])
        return self

    def save(self, path: str | Path) -> None:
        """One ``.npz`` holding the fitted arrays plus the config as JSON (written to ``path`` as given)."""
        payload = dict(self.state_dict())
        payload[_CONFIG_KEY] = np.asarray(json.dumps(self.config()))
        with open(path, "wb") as f:
            np.savez(f, **payload)

    # -- for subclasses ------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        raise NotImplementedError

    def _project(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if self.n_features_in_ is None:
            raise NotFittedError(f"{self.name} hasher is not fitted yet; call fit(X) first")

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted()
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-d feature array (n, d), got shape {X.shape}")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but this {self.name} hasher was fitted on {self.n_features_in_}"
            )
        return X

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


HASHERS: Registry[Hasher] = Registry("hasher", defaults={"supervised": False})   # supervised: fit needs labels


def create_hasher(name: str, n_bits: int, seed: int = 0, **kwargs) -> Hasher:
    """Build an unfitted hasher by registry name."""
    return HASHERS.create(name, n_bits=n_bits, seed=seed, **kwargs)


def load_hasher(path: str | Path) -> Hasher:
    """Rebuild a fitted hasher from the single ``.npz`` written by ``Hasher.save``."""
    with np.load(path, allow_pickle=False) as archive:
        if _CONFIG_KEY not in archive.files:
            raise ValueError(f"{path} is not a saved hasher (no {_CONFIG_KEY} entry)")
        config = json.loads(str(archive[_CONFIG_KEY]))
        state = {key: archive[key] for key in archive.files if key != _CONFIG_KEY}
    return create_hasher(**config).load_state_dict(state)


# -- shared helpers -------------------------------------------------------------------
def _as_features(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-d feature array (n, d), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or infinite values")
    return X


def fit_pca(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and (d, k) top-k principal directions, largest variance first.

    Each column's largest-magnitude entry is made positive, so codes do not depend on the
    eigen-solver's arbitrary sign and refits on any platform agree.
    """
    d = X.shape[1]
    if k > d:
        raise ValueError(f"cannot take {k} principal directions of {d}-d features; use n_bits <= {d}")
    mean = X.mean(axis=0)
    Xc = X - mean
    _, vecs = np.linalg.eigh(Xc.T @ Xc)
    top = vecs[:, ::-1][:, :k]
    signs = np.sign(top[np.argmax(np.abs(top), axis=0), np.arange(k)])
    return mean, top * np.where(signs == 0, 1.0, signs)
