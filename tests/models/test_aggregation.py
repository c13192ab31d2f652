"""Conv-map aggregation: hand-checked small maps, and every method's ONNX export matches torch."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hashseek.models.aggregation import POOLINGS, create_pooling, list_poolings
from hashseek.models.aggregation.rmac import rmac_regions


def test_mac_of_a_known_map_is_each_channel_maximum():
    maps = torch.zeros(1, 3, 4, 4)
    maps[0, 0, 1, 2], maps[0, 1, 3, 3], maps[0, 2, 0, 0] = 3.0, 4.0, 0.0
    np.testing.assert_allclose(create_pooling("mac", 3)(maps).numpy(), [[0.6, 0.8, 0.0]], atol=1e-6)


def test_gem_at_p1_is_average_pooling_and_grows_towards_max():
    maps = torch.rand(2, 5, 6, 6)
    average = torch.nn.functional.normalize(maps.mean(dim=(2, 3)), dim=1)
    torch.testing.assert_close(create_pooling("gem", 5, p=1.0)(maps), average, atol=1e-5, rtol=1e-5)
    mac = create_pooling("mac", 5)(maps)
    far = create_pooling("gem", 5, p=60.0)(maps)
    assert torch.nn.functional.cosine_similarity(far, mac).min() > 0.99
    assert POOLINGS.metadata("gem")["trainable"] and not POOLINGS.metadata("mac")["trainable"]


def test_rmac_regions_on_a_known_grid():
    """Square 7x7 map, 3 levels: 1 whole-map region, 2x2 of side 5, 3x3 of side 4 (the paper's layout)."""
    regions = rmac_regions(7, 7, levels=3)
    assert regions[0] == (0, 0, 7, 7)
    assert sorted(r for r in regions if r[2] == 5) == [(0, 0, 5, 5), (0, 2, 5, 5), (2, 0, 5, 5), (2, 2, 5, 5)]
    assert len([r for r in regions if r[2] == 4]) == 9
    assert all(top + side <= 7 and left + side <= 7 for top, left, side, _ in regions)
    wide = rmac_regions(7, 10, levels=1)   # a wider map gets one more region along its width
    assert wide == [(0, 0, 7, 7), (0, 3, 7, 7)]


def test_rmac_with_one_level_and_no_whitening_is_mac_of_the_square():
    maps = torch.rand(2, 4, 5, 5)
    torch.testing.assert_close(create_pooling("rmac", 4, levels=1)(maps), create_pooling("mac", 4)(maps))


def test_rmac_whitening_decorrelates_the_region_vectors():
    pooling = create_pooling("rmac", 6).fit_whitening(torch.rand(80, 6, 7, 7))
    vectors = torch.cat(pooling.regions(torch.rand(80, 6, 7, 7)))
    white = ((vectors - pooling.mean) @ pooling.whitening).numpy()
    off = np.cov(white, rowvar=False) - np.diag(np.diag(np.cov(white, rowvar=False)))
    assert np.abs(off).max() < 0.3


def test_spoc_centre_prior_weights_the_centre_most():
    maps = torch.zeros(1, 2, 5, 5)
    maps[0, 0, 2, 2] = 1.0   # centre
    maps[0, 1, 0, 0] = 1.0   # corner
    pooled = create_pooling("spoc", 2)(maps)[0]
    assert pooled[0] > 5 * pooled[1]
    torch.testing.assert_close(create_pooling("spoc", 2, centre_prior=False)(maps)[0], torch.tensor([0.7071, 0.7071]),
                               atol=1e-4, rtol=0)


def test_crow_weights_sparse_channels_up():
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0] = 1.0            # active everywhere: low idf weight
    maps[0, 1, 1, 1] = 1.0      # active at one position: high idf weight
    pooled = create_pooling("crow", 2)(maps)[0]
    assert pooled[1] > 0 and pooled[0] >= 0


def test_netvlad_init_from_kmeans_and_output_size():
    pooling = create_pooling("netvlad", 8, clusters=4)
    descriptors = np.concatenate([np.eye(8)[i] + 0.01 * np.random.default_rng(i).random((50, 8)) for i in range(4)])
    pooling.init_from(descriptors)
    centres = torch.nn.functional.normalize(pooling.centres.data, dim=1).numpy()
    assert sorted(np.argmax(centres, axis=1).tolist()) == [0, 1, 2, 3]
    out = pooling(torch.rand(3, 8, 5, 5))
    assert out.shape == (3, 32) and torch.allclose(out.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("name", list_poolings())
def test_every_pooling_exports_to_onnx_and_matches_torch(tmp_path, name):
    pooling = create_pooling(name, 16).eval()
    maps = torch.rand(3, 16, 7, 7)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's notes on shapes read as constants
        torch.onnx.export(pooling, (maps,), str(path), input_names=["maps"], output_names=["vector"],
                          dynamic_axes={"maps": {0: "n"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"maps": maps.numpy()})[0]
    expected = pooling(maps).detach().numpy()
    cosine = (exported * expected).sum(1) / np.linalg.norm(exported, axis=1) / np.linalg.norm(expected, axis=1)
    assert exported.shape == (3, pooling.output_dim) and cosine.min() > 0.999
