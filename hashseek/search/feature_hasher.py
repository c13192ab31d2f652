"""The zero-training ``ImageHasher``: pretrained pooled features + a shallow hasher fitted on the collection.

A new collection needs no training run: a pretrained backbone (through ONNX Runtime)
gives float features, and ITQ (or any registered shallow hasher) fitted on the
collection's own features turns them into codes. Codes are always computed from the
float16-rounded features, the precision the collection stores, so every code can be
recomputed from the feature store (refits, crash recovery, ``check``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from hashseek.data.loader import Preprocess
from hashseek.hashers import Hasher, create_hasher, load_hasher
from hashseek.models.features import BackboneEncoder
from hashseek.core.atomic import atomic_path
from hashseek.core.hasher import HASHER_JSON, IMAGE_HASHER_LOADERS

_SHALLOW_NPZ = "shallow-{digest}.npz"


class FeatureHasher:
    """Pretrained backbone -> float16-rounded pooled features -> shallow hasher -> packed codes.

    ``fit`` draws at most ``fit_samples`` rows (seeded) so fitting stays cheap on large collections.
    A loaded hasher builds its backbone only when it first encodes an image, so opening a
    collection to search by id or read its info costs no model start-up.
    """

    type = "pretrained+shallow"
    can_refit = True   # codes are fitted on the collection's own stored features

    def __init__(self, backbone: str | BackboneEncoder | None = "efficientnet_lite0", n_bits: int = 64,
                 method: str = "itq", seed: int = 0, fit_samples: int = 20_000, runtime: str = "onnx",
                 threads: int | None = None, pooling: str | None = None):
        """``backbone``: a name, or a built pooled ``BackboneEncoder`` to share; None only for ``load``.
        ``pooling``: with a backbone name, an aggregation of its conv map (``gem``, ``rmac``, ...)."""
        if fit_samples < 2:
            raise ValueError(f"fit_samples must be at least 2, got {fit_samples}")
        self.hasher: Hasher = create_hasher(method, n_bits, seed)
        self.n_bits = self.hasher.n_bits
        self.method, self.seed, self.fit_samples = method, int(seed), int(fit_samples)
        self.runtime, self.threads = runtime, threads
        self.n_fit: int | None = None
        self._encoder: BackboneEncoder | None = None
        self._info: dict = {}
        if backbone is not None:
            if isinstance(backbone, str):
                backbone = BackboneEncoder(backbone, runtime=runtime, threads=threads, pooling=pooling)
            elif backbone.kind != "pooled":
                raise ValueError(f"a FeatureHasher needs pooled features, got a {backbone.kind!r} encoder")
            self._encoder = backbone
            self._info = {**backbone.describe(), "feature_dim": backbone.dim}

    # -- ImageHasher ---------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return int(self._info["feature_dim"])

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.from_config(self._info)

    @property
    def encoder(self) -> BackboneEncoder:
        if self._encoder is None:
            encoder = BackboneEncoder(self._info["backbone"], runtime=self.runtime, threads=self.threads,
                                      pooling=self._info.get("pooling"))
            if encoder.weights_digest != self._info["weights_digest"]:
                raise ValueError(
                    f"backbone {self._info['backbone']} now has weights {encoder.weights_digest}, but the codes "
                    f"were made with {self._info['weights_digest']}; rebuild the collection")
            self._encoder = encoder
        return self._encoder

    def encode_arrays(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = self.features(inputs)
        return self.codes_from_features(features), features

    def describe(self) -> dict:
        return {"type": self.type, **self._info, "hasher": self.hasher.config(), "fit_samples": self.fit_samples,
                "fitted": self.is_fitted, "n_fit": self.n_fit, "fit_digest": self.fit_digest}

    def save(self, directory: str | Path) -> None:
        """``hasher.json`` plus the fitted arrays in a file named by their digest; json last, both atomic."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"backbone": self._info["backbone"], "n_bits": self.n_bits, "method": self.method,
                  "seed": self.seed, "fit_samples": self.fit_samples, "runtime": self.runtime}
        payload = {"type": self.type, "config": config, "encoder": self._info, "n_fit": self.n_fit,
                   "fit_digest": self.fit_digest}
        self.save_fit(directory)
        with atomic_path(directory / HASHER_JSON) as tmp:
            tmp.write_text(json.dumps(payload, indent=2))
        keep = _SHALLOW_NPZ.format(digest=self.fit_digest)
        for old in directory.glob(_SHALLOW_NPZ.format(digest="*")):
            if old.name != keep:
                old.unlink()

    def save_fit(self, directory: str | Path) -> None:
        """The fitted arrays alone, in their digest-named file beside those of the live fit: ``hasher.json``
        still names the old fit, so a refit can commit its codes before it points there."""
        target = Path(directory) / _SHALLOW_NPZ.format(digest=self.fit_digest)
        if self.is_fitted and not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                self.hasher.save(tmp)

    def use_fit(self, directory: str | Path, digest: str | None, n_fit: int | None) -> None:
        """Switch to the fit saved under ``digest`` in ``directory`` (None: unfitted), e.g. the fit a
        collection's codes were committed with when a crash came before ``hasher.json`` followed."""
        if digest is None:
            self.hasher, self.n_fit = create_hasher(self.method, self.n_bits, self.seed), None
            return
        self.hasher, self.n_fit = load_hasher(Path(directory) / _SHALLOW_NPZ.format(digest=digest)), n_fit
        if self.fit_digest != digest:
            raise ValueError(f"{directory}: the saved hasher does not match its digest {digest}")

    def has_fit(self, directory: str | Path, digest: str) -> bool:
        """Whether the arrays of the fit ``digest`` are saved in ``directory``."""
        return (Path(directory) / _SHALLOW_NPZ.format(digest=digest)).is_file()

    # -- fitting -------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.hasher.n_features_in_ is not None

    @property
    def fit_digest(self) -> str | None:
        """Identifies the fitted state, so a collection can tell which fit its stored codes came from."""
        if not self.is_fitted:
            return None
        h = hashlib.sha256()
        for key, value in sorted(self.hasher.state_dict().items()):
            h.update(key.encode() + np.ascontiguousarray(value).tobytes())
        return h.hexdigest()[:16]

    def fit_sample(self, n: int) -> np.ndarray:
        """Which of ``n`` rows ``fit`` uses: all, or a seeded sorted sample of ``fit_samples``
        (so a caller holding features on disk reads only those)."""
        if n <= self.fit_samples:
            return np.arange(n)
        return np.sort(np.random.default_rng(self.seed).choice(n, self.fit_samples, replace=False))

    def fit(self, features: np.ndarray) -> "FeatureHasher":
        """Fit the shallow hasher on the collection's own features (at most ``fit_samples`` of them)."""
        rows = self.fit_sample(len(features))
        self.hasher.fit(_rounded(np.asarray(features)[rows]))
        self.n_fit = len(rows)
        return self

    def features(self, inputs: np.ndarray) -> np.ndarray:
        """(n, 3, s, s) preprocessed images -> (n, d) float32 pooled features, rounded to float16."""
        return _rounded(self.encoder.encode_arrays(inputs))

    def codes_from_features(self, features: np.ndarray) -> np.ndarray:
        """(n, d) features -> packed codes; rounding to float16 first makes codes a function of stored features."""
        return self.hasher.transform(_rounded(features))

    @classmethod
    def load(cls, directory: str | Path, threads: int | None = None) -> "FeatureHasher":
        directory = Path(directory)
        payload = json.loads((directory / HASHER_JSON).read_text())
        config = payload["config"]
        out = cls(backbone=None, n_bits=config["n_bits"], method=config["method"], seed=config["seed"],
                  fit_samples=config["fit_samples"], runtime=config["runtime"], threads=threads)
        out._info = payload["encoder"]
        if payload["fit_digest"]:
            out.use_fit(directory, payload["fit_digest"], payload["n_fit"])
        return out

    def __repr__(self) -> str:
        return (f"FeatureHasher(backbone={self._info.get('backbone')!r}, n_bits={self.n_bits}, "
                f"method={self.method!r}, fitted={self.is_fitted})")


def _rounded(features: np.ndarray) -> np.ndarray:
    return np.asarray(features, dtype=np.float16).astype(np.float32)


IMAGE_HASHER_LOADERS.register(FeatureHasher.type)(FeatureHasher.load)
