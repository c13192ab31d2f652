"""AlexNet, im_alexnet, VGG16/19: torchvision layouts, map and vector sizes, weight files."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from hashseek.core.errors import InvalidInputError
from hashseek.data.images import load_image, resize_square, to_normalized_array
from hashseek.models.backbones import Backbone, create_backbone, list_backbones

NAMES = ["alexnet", "im_alexnet", "vgg16", "vgg19"]
# (C, h, w) of the last conv map (before pool5) at 224 px, and the fc7 length.
MAP_224 = {"alexnet": (256, 13, 13), "im_alexnet": (256, 13, 13), "vgg16": (512, 14, 14), "vgg19": (512, 14, 14)}
POOLED = {"alexnet": 4096, "im_alexnet": 1024, "vgg16": 4096, "vgg19": 4096}
# Totals torchvision reports, classifier.6 included; im_alexnet's counted by hand from its layout.
PARAMS = {"alexnet": 61_100_840, "im_alexnet": 14_218_920, "vgg16": 138_357_544, "vgg19": 143_667_240}
# Indices of the parameterised layers in torchvision's `features` / `classifier`.
TORCHVISION_LAYERS = {
    "alexnet": ([0, 3, 6, 8, 10], [1, 4, 6]),
    "vgg16": ([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], [0, 3, 6]),
    "vgg19": ([0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34], [0, 3, 6]),
}


@pytest.fixture(scope="module")
def built() -> Callable[[str], Backbone]:
    """Each backbone built once per module (seeded random init, eval mode): VGG takes seconds."""
    cache: dict[str, Backbone] = {}

    def get(name: str) -> Backbone:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = create_backbone(name, pretrained=False).eval()
        return cache[name]

    return get


@pytest.fixture(params=NAMES)
def model(request, built) -> Backbone:
    return built(request.param)


@pytest.fixture(scope="module")
def picture(image_set) -> Image.Image:
    """One shipped test image: the round trip needs real pixels, not a real photograph."""
    dataset, ids = image_set
    return load_image(dataset.read_bytes(ids[0]))


def normalised(image: Image.Image, backbone: Backbone) -> torch.Tensor:
    pixels = to_normalized_array(resize_square(image, backbone.input_size), backbone.mean, backbone.std)
    return torch.from_numpy(pixels).unsqueeze(0)


def test_all_registered():
    assert set(NAMES) <= set(list_backbones())


def test_map_and_pooled_sizes_at_224(model):
    name = model.name
    assert model.feature_channels == MAP_224[name][0]
    assert model.pooled_dim == POOLED[name]
    assert model.preprocessing() == {"input_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    with torch.no_grad():
        feature_map = model.forward_features(torch.randn(1, 3, 224, 224))
        vector = model.pool(feature_map)
    assert feature_map.shape == (1, *MAP_224[name])
    assert vector.shape == (1, POOLED[name])
    assert vector.min() >= 0 and vector.max() > 0  # fc7 after its ReLU, not all dead


def test_pool_is_fc7_and_skips_imagenet_classifier(model):
    """pool = pool5 -> avgpool -> fc6 -> ReLU -> fc7 -> ReLU; classifier.6 has no say."""
    fc6, fc7, imagenet = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert imagenet.out_features == 1000
    feature_map = torch.rand(1, *MAP_224[model.name])
    with torch.no_grad():
        x = torch.flatten(model.avgpool(model.features[-1](feature_map)), 1)
        expected = torch.relu(fc7(torch.relu(fc6(x))))
        assert torch.allclose(model.pool(feature_map), expected, atol=1e-6)
        imagenet.weight.neg_()
        assert torch.allclose(model.pool(feature_map), expected, atol=1e-6)
        imagenet.weight.neg_()


@pytest.mark.parametrize("name", ["alexnet", "im_alexnet"])
def test_alexnet_reduced_resolution(name, built):
    backbone = built(name)
    assert backbone.feature_map_shape(112) == (256, 6, 6)
    with torch.no_grad():
        assert backbone(torch.randn(1, 3, 112, 112)).shape == (1, POOLED[name])


def test_parameter_counts_and_torchvision_keys(model):
    assert sum(p.numel() for p in model.parameters()) == PARAMS[model.name]
    if model.name not in TORCHVISION_LAYERS:
        return  # im_alexnet has no torchvision counterpart
    features, classifier = TORCHVISION_LAYERS[model.name]
    expected = {
        f"{part}.{i}.{kind}"
        for part, indices in (("features", features), ("classifier", classifier))
        for i in indices
        for kind in ("weight", "bias")
    }
    state = model.state_dict()
    assert set(state) == expected
    assert state["classifier.6.weight"].shape == (1000, 4096)


def test_im_alexnet_layout(built):
    backbone = built("im_alexnet")
    convs = [m for m in backbone.features if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [5, 1, 5, 1, 3, 1, 3, 1, 3]
    assert convs[0].stride == (4, 4) and convs[0].padding == (2, 2)
    for conv in convs[1::2]:  # the 1x1 in front of conv2..conv5 keeps the channel count
        assert conv.in_channels == conv.out_channels
    layers = list(backbone.features)
    for conv in convs[1:]:
        assert isinstance(layers[layers.index(conv) + 1], nn.ReLU)
    linears = [m for m in backbone.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256 * 6 * 6, 1024), (1024, 1024), (1024, 1000)]


def test_random_init_is_seeded_and_scaled():
    torch.manual_seed(3)
    a = create_backbone("im_alexnet", pretrained=False)
    torch.manual_seed(3)
    b = create_backbone("im_alexnet", pretrained=False)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
        if key.endswith("bias"):
            assert not value.any(), key
    fc6 = a.classifier[1]
    assert abs(fc6.weight.std().item() - 0.01) < 1e-3
    conv2 = a.features[5]  # Kaiming normal, fan_out mode: std = sqrt(2 / (out * k * k))
    assert abs(conv2.weight.std().item() / (2 / (192 * 25)) ** 0.5 - 1) < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_pretrained_without_weights_refuses(name):
    with pytest.raises(InvalidInputError, match="no bundled weights.*--backbone-weights FILE.*--random-init"):
        create_backbone(name)


@pytest.mark.parametrize(
    "name, suffix", [("alexnet", ".pth"), ("im_alexnet", ".pt"), ("im_alexnet", ".safetensors")]
)
def test_weights_file_round_trip(name, suffix, tmp_path, picture, built):
    original = built(name)
    path = tmp_path / f"{name}{suffix}"
    state = original.state_dict()
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    loaded = create_backbone(name, weights=path).eval()
    x = normalised(picture, original)
    with torch.no_grad():
        want = original(x)
        assert torch.equal(loaded(x), want)
        assert torch.equal(loaded.forward_features(x), original.forward_features(x))
        assert want.abs().sum() > 0


def test_weights_of_another_layout_fail_strictly(tmp_path, built):
    path = tmp_path / "im_alexnet.pt"
    torch.save(built("im_alexnet").state_dict(), path)
    with pytest.raises(InvalidInputError, match="does not fit AlexNet.*expected keys like"):
        create_backbone("alexnet", weights=path)
