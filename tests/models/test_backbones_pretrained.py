import numpy as np
import pytest
import torch

from hashseek.models.backbones import create_backbone, list_backbones


def test_every_family_is_registered():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2",
            "alexnet", "vgg16", "vgg19", "im_alexnet"} <= set(list_backbones())


@pytest.mark.parametrize("name,size,grid", [("efficientnet_lite0", 224, 7), ("efficientnet_lite1", 240, 8),
                                            ("efficientnet_lite2", 260, 9), ("mobilenet_v2", 224, 7)])
def test_bundled_backbones_declare_their_shapes(name, size, grid):
    b = create_backbone(name)
    assert b.input_size == size
    assert b.feature_map_shape() == (1280, grid, grid)
    with torch.no_grad():
        assert b(torch.zeros(2, 3, size, size)).shape == (2, 1280)
    assert b.preprocessing()["input_size"] == size


def test_pretrained_weights_differ_from_random_and_are_deterministic():
    a, b = create_backbone("efficientnet_lite0"), create_backbone("efficientnet_lite0")
    torch.manual_seed(0)
    r = create_backbone("efficientnet_lite0", pretrained=False)
    sa, sb, sr = a.state_dict(), b.state_dict(), r.state_dict()
    key = "net._conv_stem.weight"
    assert torch.equal(sa[key], sb[key]) and not torch.equal(sa[key], sr[key])


def test_efficientnet_normalisation_is_half_half():
    b = create_backbone("efficientnet_lite0")
    assert b.mean == (0.5, 0.5, 0.5) and b.std == (0.5, 0.5, 0.5)


def test_user_weights_file_replaces_bundled(tmp_path):
    torch.manual_seed(1)
    r = create_backbone("efficientnet_lite0", pretrained=False)
    torch.save(r.state_dict(), tmp_path / "w.pt")
    loaded = create_backbone("efficientnet_lite0", weights=tmp_path / "w.pt")
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), r.eval()(x).numpy(), atol=1e-6)
