"""What every backbone declares, so heads, preprocessing and exporters need no special cases."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hashseek.core.errors import InvalidInputError, NotFoundError


class Backbone(nn.Module):
    """A CNN trunk exposing its last convolutional feature map and a pooled vector.

    Subclasses set the class attributes and implement ``forward_features``; they
    override ``pool`` when the pooled vector is not a global average of the map
    (AlexNet/VGG return their fc7 activations).
    """

    name: str = ""
    input_size: int = 224                      # square side, pixels
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    feature_channels: int = 0                  # channels of the last conv map
    pooled_dim: int = 0                        # length of the pooled vector

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, feature_channels, h, w)."""
        raise NotImplementedError

    def pool(self, feature_map: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, pooled_dim); global average pooling by default."""
        return feature_map.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))

    def feature_map_shape(self, input_size: int | None = None) -> tuple[int, int, int]:
        """(C, h, w) of the last conv map for a square input of ``input_size``."""
        size = input_size or self.input_size
        was_training = self.training
        self.eval()
        with torch.no_grad():
            shape = self.forward_features(torch.zeros(1, 3, size, size)).shape[1:]
        self.train(was_training)
        return tuple(shape)

    def stages(self) -> list[nn.Module]:
        """The trunk's layers from the input on, in groups of one width or resolution; fine-tuning can keep
        the first few at their pretrained weights (``TrainConfig.frozen_stages``)."""
        raise InvalidInputError(f"backbone {self.name!r} does not list its stages, so none can be frozen")

    def tuned_parameters(self, frozen_stages: int = 0) -> list[nn.Parameter]:
        """What fine-tuning moves: every parameter but those of the first ``frozen_stages`` stages. Nothing
        before the first tuned layer needs a gradient, so its backward pass is skipped too."""
        if not frozen_stages:
            return list(self.parameters())
        stages = self.stages()
        if not 0 < frozen_stages < len(stages):
            raise InvalidInputError(f"frozen_stages must be in 0..{len(stages) - 1}: {self.name} has {len(stages)} "
                                    f"stages, got {frozen_stages}")
        frozen = {id(p) for stage in stages[:frozen_stages] for p in stage.parameters()}
        return [p for p in self.parameters() if id(p) not in frozen]

    def preprocessing(self) -> dict:
        """Everything needed to turn a decoded RGB image into this backbone's input."""
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}


def runs_of(blocks: list[nn.Module], key) -> list[nn.ModuleList]:
    """Consecutive ``blocks`` with the same ``key(block)`` (their output width), one group per run."""
    groups: list[list[nn.Module]] = []
    for block in blocks:
        if groups and key(groups[-1][-1]) == key(block):
            groups[-1].append(block)
        else:
            groups.append([block])
    return [nn.ModuleList(group) for group in groups]


def load_state_dict_file(module: nn.Module, path: str | Path, strict: bool = True, strip: tuple[str, ...] = (),
                         prefix: str = "") -> None:
    """Load weights from a local ``.safetensors``, ``.pt`` or ``.pth`` file (never a URL).

    The file holds the module's own state-dict keys, or with ``prefix`` those of its inner network
    (a file whose keys all lack the prefix gets it); keys starting with one of ``strip`` (a layer the
    trunk drops, e.g. an ImageNet classifier) are ignored. A file that does not fit says which keys.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:   # pickle, zip and safetensors each raise their own kinds
        raise InvalidInputError(f"{path} is not a readable state dict ({type(err).__name__}: {err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InvalidInputError(f"{path} holds a {type(state).__name__}, not a state dict")
    if prefix and not any(k.startswith(prefix) for k in state):
        state = {prefix + k: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(strip)} if strip else state
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        expected = list(module.state_dict())[:3]
        raise InvalidInputError(f"{path} does not fit {type(module).__name__} (expected keys like {expected}): "
                                f"{str(err).splitlines()[0]}") from err
