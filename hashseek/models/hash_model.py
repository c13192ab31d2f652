"""``HashModel`` = backbone + hash head: images -> packed binary codes + float features.

A checkpoint is a folder: ``model.safetensors`` (weights), ``config.json`` (backbone,
head, loss, bits, classes, preprocessing and how it was trained) and ``hasher.json``
(so a collection can load it as its image hasher). A model trained on frozen features
stores only its head and the digest of the backbone's bundled weights, which is checked
when it is loaded.

What a trained model stores for re-ranking (``rerank_feature`` in its config): ``codes``, the
relaxed codes before binarisation in [-1, 1] (tanh outputs, or 2*sigmoid - 1), which carry what
training learned; or ``embedding``, the head's float input. The head's embedding of the ``gap``
and ``latent`` heads is the pretrained backbone's pooled vector, which frozen training never
changes: re-ranking a trained model's Hamming candidates by it undid the training (cars-bmw13,
gap+csq 48 bits, validation mAP 0.54 -> 0.20). ``codes`` measured best on the validation splits
of cars-bmw13 and caltech101 (benchmarks/search_defaults.py) and is the default.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hashseek.data.loader import Preprocess
from hashseek.core.bits import pack_bits
from hashseek.core.calibration import softmax
from hashseek.models.backbones import Backbone, create_backbone
from hashseek.models.heads import HashHead, HeadOutput, create_head
from hashseek.models.heads.centres import CentreClassifier, hash_centres
from hashseek.models.runtime import InferenceRunner, weights_digest
from hashseek.core.atomic import atomic_path, atomic_write_json
from hashseek.core.errors import InvalidInputError
from hashseek.core.hasher import IMAGE_HASHER_LOADERS

CHECKPOINT_FORMAT = "hashseek-model/1"
RERANK_FEATURES = ("codes", "embedding")
DEFAULT_RERANK_FEATURE = "codes"
CENTRES_KEY = "head.centre_classifier.centres"


class HashModel(nn.Module):
    is_fitted = True    # a trained model codes images as it is ...
    can_refit = False   # ... and is never refitted by a collection
    def __init__(self, backbone: Backbone, head: HashHead, config: dict):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = config
        self.input_size = int(config.get("input_size") or backbone.input_size)
        self._runner: InferenceRunner | None = None

    @classmethod
    def build(cls, backbone: str, head: str, bits: int, n_classes: int | None = None,
              pretrained: bool = True, weights: str | None = None, head_kwargs: dict | None = None,
              **config) -> "HashModel":
        trunk = create_backbone(backbone, pretrained=pretrained, weights=weights)
        hash_head = create_head(head, trunk.feature_channels, bits, n_classes, **(head_kwargs or {}))
        config.setdefault("rerank_feature", DEFAULT_RERANK_FEATURE)
        return cls(trunk, hash_head, {"backbone": backbone, "head": head, "bits": bits, "n_classes": n_classes,
                                      "pretrained": pretrained, "weights_file": str(weights) if weights else None,
                                      "head_kwargs": head_kwargs or {}, **config})

    # -- forward ---------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> HeadOutput:
        return self.head(self.backbone.forward_features(images))

    @property
    def n_bits(self) -> int:
        return self.head.n_bits

    @property
    def rerank_feature(self) -> str:
        """Which float feature encoding returns (see the module docstring); stored in the config."""
        name = self.config.get("rerank_feature") or DEFAULT_RERANK_FEATURE
        if name not in RERANK_FEATURES:
            raise InvalidInputError(f"rerank_feature must be one of {RERANK_FEATURES}, got {name!r}")
        return name

    def set_rerank_feature(self, name: str) -> "HashModel":
        self.config["rerank_feature"] = name
        self.rerank_feature  # checks the name
        self._runner = None  # the exported graph changes
        return self

    @property
    def feature_dim(self) -> int:
        return self.n_bits if self.rerank_feature == "codes" else self.head.embedding_dim

    @property
    def has_classifier(self) -> bool:
        return getattr(self.head, "classifier", None) is not None or self.head.centre_classifier is not None

    def attach_centres(self, centres: torch.Tensor) -> "HashModel":
        """Make the hash centres the codes were trained towards the classifier of a head that has none
        (``heads.centres``); saved with the weights."""
        if getattr(self.head, "classifier", None) is None:
            self.head.centre_classifier = CentreClassifier(centres, self.head.code_range)
            self._runner = None   # the exported graph gains the logits
        return self

    @property
    def classifier_temperature(self) -> float:
        """What the classifier's logits are divided by before the softmax, fitted on validation after training
        (``core.calibration``); 1 for a model saved before, or one without a classifier."""
        return float(self.config.get("classifier_temperature", 1.0))

    def set_classifier_temperature(self, temperature: float) -> "HashModel":
        if not temperature > 0:
            raise InvalidInputError(f"a classifier temperature must be positive, got {temperature}")
        self.config["classifier_temperature"] = float(temperature)
        return self

    def class_logits(self, logits) -> np.ndarray | None:
        """The classifier's logits as the model reports them: divided by its temperature."""
        return None if logits is None else np.asarray(logits, np.float32) / np.float32(self.classifier_temperature)

    @property
    def classes(self) -> list[str]:
        return list(self.config.get("classes", []))

    @property
    def trained_classes(self) -> list[str]:
        """The classes it had training images of (a model saved before they were recorded: all its classes)."""
        return list(self.config.get("trained_classes", self.classes))

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(self.input_size, tuple(self.backbone.mean), tuple(self.backbone.std))

    @property
    def mirror_average(self) -> bool:
        """Encode an image as the mean of its own and its left-right mirror's relaxed codes and
        features, binarised after: codes that do not depend on which way a car faces, for
        twice the forward time. Stored in the checkpoint's config."""
        return bool(self.config.get("mirror_average", False))

    def set_mirror_average(self, on: bool) -> "HashModel":
        self.config["mirror_average"] = bool(on)
        self._runner = None  # the exported graph changes
        return self

    def codes_from_output(self, codes: np.ndarray) -> np.ndarray:
        """Relaxed codes -> packed bits (sign for tanh heads, >= 0.5 for sigmoid heads)."""
        return pack_bits(np.asarray(codes) >= self.head.code_threshold)

    def rerank_output(self, out: HeadOutput) -> torch.Tensor:
        """The float feature a collection stores for re-ranking, from one forward pass."""
        return out.signed_codes() if self.rerank_feature == "codes" else out.embedding

    def encode_maps(self, maps: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Cached backbone maps -> (packed codes, float features), head only."""
        codes, feats, _ = self.infer_maps(maps, batch_size)
        return codes, feats

    @torch.no_grad()
    def infer_maps(self, maps: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Cached backbone maps -> (packed codes, float features, classifier logits (``class_logits``) or None),
        head only."""
        if self.mirror_average:
            raise InvalidInputError("mirror averaging needs the mirrored images' maps: encode the images instead")
        self.head.eval()
        codes, feats, logits = [], [], []
        for i in range(0, len(maps), batch_size):
            out = self.head(torch.from_numpy(np.asarray(maps[i:i + batch_size], np.float32)))
            codes.append(out.codes.numpy())
            feats.append(self.rerank_output(out).numpy())
            if out.logits is not None:
                logits.append(out.logits.numpy())
        return (self.codes_from_output(np.concatenate(codes)), np.concatenate(feats).astype(np.float32),
                self.class_logits(np.concatenate(logits)) if logits else None)

    # -- the ImageHasher protocol -------------------------------------------------------
    def infer_arrays(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(n, 3, s, s) preprocessed images -> (packed codes, float32 features, class probabilities
        (n, n_classes) or None without a classifier), one pass through ONNX Runtime."""
        codes, features, logits = self.infer_logits(inputs)
        return codes, features, None if logits is None else softmax(logits)

    def infer_logits(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``infer_arrays`` with the classifier's logits (``class_logits``) for its probabilities: what
        evaluation and calibration read."""
        if self._runner is None:
            self._runner = self._export()
        return self._outputs(self._runner(inputs))

    def snapshot(self, directory: Path):
        """``infer_logits`` of the weights as they are now, exported once into ``directory`` rather than the
        shared cache: training validates each epoch's weights this way (the caller removes the folder)."""
        runner = self._export(directory)
        return lambda inputs: self._outputs(runner(inputs))

    def _export(self, directory: Path | None = None) -> InferenceRunner:
        self.eval()
        beta = f"-beta{self.head.beta:g}" if hasattr(self.head, "beta") else ""   # not among the weights
        tag = (f"hashmodel-{self.config['head']}-{self.rerank_feature}{beta}"
               f"{'-mirror' if self.mirror_average else ''}{'-logits' if self.has_classifier else ''}")
        names = ("codes", "feature", "logits") if self.has_classifier else ("codes", "feature")
        return InferenceRunner(_EncodeGraph(self), self.input_size, "onnx", tag=tag, output_names=names,
                               directory=directory)

    def _outputs(self, outputs: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        codes, feature, *logits = outputs
        return (self.codes_from_output(codes), feature.astype(np.float32),
                self.class_logits(logits[0]) if logits else None)

    def encode_arrays(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3, s, s) preprocessed images -> (packed codes, float32 features), through ONNX Runtime."""
        codes, features, _ = self.infer_arrays(inputs)
        return codes, features

    def classify_arrays(self, inputs: np.ndarray) -> np.ndarray:
        """(n, 3, s, s) preprocessed images -> (n, n_classes) softmax of the model's classifier."""
        if not self.has_classifier:
            raise InvalidInputError(f"this {self.config['head']} model was trained without a classifier")
        return self.infer_arrays(inputs)[2]

    def encode(self, sources, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Image paths, bytes or PIL images -> (packed codes, float features)."""
        pre = self.preprocess
        parts = [self.encode_arrays(np.stack([pre(s) for s in sources[i:i + batch_size]]))
                 for i in range(0, len(sources), batch_size)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def describe(self) -> dict:
        weights = weights_digest(self)
        keys = ("backbone", "head", "loss", "bits", "mode", "dataset_name", "protocol", "trained_at")
        return {"type": "hash_model", **{k: self.config.get(k) for k in keys},
                "rerank_feature": self.rerank_feature, "classifier": self.has_classifier,
                "classifier_temperature": self.classifier_temperature if self.has_classifier else None,
                "input_size": self.input_size, "weights_digest": weights, "codes_digest": self.codes_digest(weights)}

    def codes_digest(self, weights: str | None = None) -> str:
        """What the codes and re-rank features depend on, hashed: the weights and how images enter and leave
        the graph. Two models with the same digest encode a library alike, so a reindex keeps its codes
        (``search.reindex``); the classifier's temperature and the description do not enter."""
        made = {"weights": weights or weights_digest(self), "input_size": self.input_size, "mirror": self.mirror_average,
                "rerank_feature": self.rerank_feature, "beta": getattr(self.head, "beta", None),
                "preprocessing": self.backbone.preprocessing(), "bits": self.n_bits}
        return hashlib.sha256(json.dumps(made, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def train(self, mode: bool = True):
        self._runner = None  # weights may change: export again on the next encode
        return super().train(mode)

    # -- checkpoints ------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # a frozen run's trunk is reloaded from where it came from: the bundled weights or the user's file
        frozen = self.config.get("mode") == "frozen"
        source = ("file" if frozen and self.config.get("weights_file") else
                  "bundled" if frozen and self.config.get("pretrained", True) else "in checkpoint")
        external = source != "in checkpoint"
        state = {k: v.contiguous() for k, v in self.state_dict().items() if not (external and k.startswith("backbone."))}
        config = {**self.config, "format": CHECKPOINT_FORMAT, "input_size": self.input_size,
                  "preprocessing": {**self.backbone.preprocessing(), "input_size": self.input_size},
                  "backbone_weights": source,
                  "backbone_digest": weights_digest(self.backbone)}
        if hasattr(self.head, "beta"):   # tanh heads: the continuation's sharpness shapes the relaxed codes
            config["head_beta"] = float(self.head.beta)
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        atomic_write_json(directory / "config.json", config)
        atomic_write_json(directory / "hasher.json", {"type": "hash_model"})
        return directory


class _EncodeGraph(nn.Module):
    """The exported inference graph: images -> (relaxed codes, re-rank feature[, logits])."""

    def __init__(self, model: HashModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        outputs = [self._parts(self.model(images))]
        if self.model.mirror_average:
            outputs.append(self._parts(self.model(images.flip(-1))))
        return tuple(sum(parts) / len(parts) for parts in zip(*outputs))

    def _parts(self, out: HeadOutput) -> tuple[torch.Tensor, ...]:
        parts = (out.codes, self.model.rerank_output(out))
        return parts + (out.logits,) if self.model.has_classifier else parts


def load_model(directory: str | Path) -> HashModel:
    """Rebuild a trained model from its checkpoint folder."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no hashseek model at {directory} (config.json missing)")
    config = json.loads(config_path.read_text())
    if config.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{directory}: unknown checkpoint format {config.get('format')!r}")
    source = config.get("backbone_weights")
    frozen = source in ("bundled", "file")
    model = HashModel.build(config["backbone"], config["head"], config["bits"], config.get("n_classes"),
                            pretrained=source == "bundled", head_kwargs=config.get("head_kwargs"),
                            weights=config.get("weights_file") if source == "file" else None,
                            **{k: v for k, v in config.items()
                               if k not in ("backbone", "head", "bits", "n_classes", "pretrained", "head_kwargs",
                                            "weights_file", "head_beta")})
    state = load_file(str(directory / "model.safetensors"))
    if CENTRES_KEY in state:
        model.attach_centres(state[CENTRES_KEY])
    elif config.get("loss") == "csq" and model.classes:   # saved before the centres were kept with the weights
        loss_seed = (config.get("train") or {}).get("loss_kwargs", {}).get("seed", 0)
        model.attach_centres(hash_centres(len(model.classes), model.n_bits, loss_seed))
        state.update({k: v for k, v in model.state_dict().items() if k == CENTRES_KEY})   # none with a classifier
    model.load_state_dict(state, strict=not frozen)
    if config.get("head_beta") is not None:
        model.head.beta = float(config["head_beta"])
    if frozen and weights_digest(model.backbone) != config["backbone_digest"]:
        raise ValueError(f"{directory}: the installed {config['backbone']} weights differ from the ones it was trained on")
    return model.eval()


IMAGE_HASHER_LOADERS.register("hash_model")(load_model)
