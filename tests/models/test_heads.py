"""Hash heads: shapes on any map, code ranges/thresholds, and each family's own mechanics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hashseek.models.heads import HeadOutput, create_head, list_heads

HEADS = ["bilinear", "fc", "gap", "latent", "netvlad", "spp_pmt"]
TANH = {"bilinear", "fc", "gap", "netvlad"}
C, K, N_CLASSES = 16, 12, 5


def small_head(name: str, n_classes: int | None = N_CLASSES, **kw):
    if name in ("fc", "spp_pmt"):
        kw.setdefault("hidden", 32)
    return create_head(name, C, K, n_classes, **kw)


def test_all_families_registered():
    assert list_heads() == HEADS
    with pytest.raises(KeyError, match="unknown head"):
        create_head("nope", C, K)


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("size", [7, 1])
def test_output_shapes(name, size):
    torch.manual_seed(0)
    head = small_head(name).eval()
    out = head(torch.rand(3, C, size, size))
    assert isinstance(out, HeadOutput)
    assert out.codes.shape == (3, K)
    assert out.logits.shape == (3, N_CLASSES)
    assert out.embedding.shape == (3, head.embedding_dim)
    assert torch.isfinite(out.codes).all() and torch.isfinite(out.embedding).all()


@pytest.mark.parametrize("name", HEADS)
def test_range_threshold_and_bits(name):
    torch.manual_seed(0)
    head = small_head(name).eval()
    out = head(torch.randn(4, C, 5, 5) * 3)
    if name in TANH:
        assert (out.code_range, out.code_threshold) == ("tanh", 0.0)
        assert out.codes.min() > -1 and out.codes.max() < 1
    else:
        assert (out.code_range, out.code_threshold) == ("sigmoid", 0.5)
        assert out.codes.min() > 0 and out.codes.max() < 1
    assert torch.equal(out.bits(), (out.codes >= head.code_threshold).to(torch.uint8))
    signed = out.signed_codes()
    assert signed.min() >= -1 and signed.max() <= 1
    assert torch.equal(signed >= 0, out.bits().bool())


@pytest.mark.parametrize("name", HEADS)
def test_logits_only_with_classes_and_bad_maps_rejected(name):
    head = small_head(name, n_classes=None)
    assert head(torch.rand(2, C, 3, 3)).logits is None
    with pytest.raises(ValueError, match="expects"):
        head(torch.rand(2, C + 1, 3, 3))
    # an (N, C) pooled vector is read as an (N, C, 1, 1) map
    head.eval()
    x = torch.rand(2, C)
    assert torch.allclose(head(x).codes, head(x[:, :, None, None]).codes)


@pytest.mark.parametrize("name", sorted(TANH))
def test_beta_sharpens_codes_without_flipping_bits(name):
    torch.manual_seed(0)
    head = small_head(name).eval()
    x = torch.rand(4, C, 5, 5)
    soft = head(x)
    head.beta = 10.0
    sharp = head(x)
    assert torch.equal(soft.bits(), sharp.bits())
    assert (sharp.codes.abs() > soft.codes.abs()).all()


def test_gap_max_pools_then_averages_and_skips_pool_on_small_maps():
    head = create_head("gap", C, K)
    x = torch.randn(2, C, 7, 7)
    assert torch.allclose(head(x).embedding, F.max_pool2d(x, 2, 2).mean(dim=(2, 3)))
    one = torch.randn(2, C, 1, 1)
    assert torch.allclose(head(one).embedding, one.flatten(1))


def test_bilinear_reduction_default_unit_norm_feature_and_compact_embedding():
    wide = create_head("bilinear", 512, K, N_CLASSES)
    assert wide.reduction is not None and wide.bilinear_dim == 256**2 and wide.embedding_dim == 256
    narrow = create_head("bilinear", C, K, N_CLASSES)
    assert narrow.reduction is None and narrow.bilinear_dim == C**2
    forced = create_head("bilinear", C, K, reduced_channels=8)
    assert forced.bilinear_dim == 64 and forced.embedding_dim == 8
    x = torch.rand(3, C, 4, 4)
    feature = narrow.bilinear_feature(narrow.reduce(x))
    assert torch.allclose(feature.norm(dim=1), torch.ones(3), atol=1e-5)
    # symmetric pooling: the d x d feature equals its transpose
    square = feature.view(3, C, C)
    assert torch.allclose(square, square.transpose(1, 2), atol=1e-6)
    # the stored re-rank feature is the channel average, not the d^2 feature
    assert torch.allclose(narrow(x).embedding, x.mean(dim=(2, 3)), atol=1e-6)


def test_bilinear_stage_parameters_split_the_head():
    head = create_head("bilinear", 32, K, N_CLASSES, reduced_channels=8)
    ids = {stage: {id(p) for p in head.stage_parameters(stage)} for stage in (1, 2, 3)}
    assert ids[1] == {id(p) for p in head.classifier.parameters()}
    assert ids[1] < ids[2]                      # stage 2 adds the reduction
    assert not ids[2] & ids[3]
    assert ids[2] | ids[3] == {id(p) for p in head.parameters()}
    with pytest.raises(ValueError, match="stages"):
        head.stage_parameters(4)
    with pytest.raises(ValueError, match="n_classes"):
        create_head("bilinear", 32, K).stage_parameters(1)


def test_spp_pmt_b_stays_positive_when_pushed_negative():
    head = small_head("spp_pmt")
    opt = torch.optim.SGD([head.b_raw], lr=100.0)
    for _ in range(3):
        opt.zero_grad()
        head.b.sum().backward()                 # minimising b drives the raw value far below 0
        opt.step()
    assert head.b_raw.item() < -50
    assert head.b.item() > 0
    out = head(torch.zeros(2, C, 7, 7))         # all-zero ReLU map: ln(0 + b) must stay finite
    assert torch.isfinite(out.codes).all() and torch.isfinite(out.embedding).all()


@pytest.mark.parametrize("size", [7, 5, 3, 1])
def test_spp_grid_pooling_equals_adaptive_max_pooling(size):
    from hashseek.models.heads.spp_pmt import PYRAMID, grid_max_pool

    x = torch.randn(2, C, size, size)
    for grid in PYRAMID:
        torch.testing.assert_close(grid_max_pool(x, grid), F.adaptive_max_pool2d(x, grid).flatten(1))


@pytest.mark.parametrize("name", HEADS)
def test_every_head_exports_to_onnx_and_matches_torch(name):
    """Trained models encode through ONNX Runtime, so every head must export (spp_pmt once did not)."""
    from hashseek.models.hash_model import HashModel

    torch.manual_seed(0)
    model = HashModel.build("efficientnet_lite0", name, 16, N_CLASSES, input_size=96).eval()
    images = torch.rand(3, 3, 96, 96)
    codes, feats, probabilities = model.infer_arrays(images.numpy())
    with torch.inference_mode():
        out = model(images)
    torch.testing.assert_close(torch.from_numpy(feats), model.rerank_output(out), rtol=1e-4, atol=1e-4)
    assert (codes == model.codes_from_output(out.codes.numpy())).mean() > 0.99  # a bit exactly at 0 may flip
    if out.logits is not None:  # the classifier's softmax comes out of the same exported graph
        torch.testing.assert_close(torch.from_numpy(probabilities), out.logits.softmax(1), rtol=1e-4, atol=1e-5)
    else:
        assert probabilities is None


def test_mirror_average_codes_ignore_which_way_the_image_faces(tmp_path):
    from hashseek.models.hash_model import HashModel, load_model

    torch.manual_seed(0)
    model = HashModel.build("efficientnet_lite0", "gap", 32, N_CLASSES, input_size=96, mode="finetune").eval()
    images = torch.rand(4, 3, 96, 96)
    plain_codes, plain_feats = model.encode_arrays(images.numpy())
    plain_mirror_codes, _ = model.encode_arrays(images.flip(-1).numpy())
    assert (plain_codes != plain_mirror_codes).any()  # the plain encoder sees the difference
    model.set_mirror_average(True)
    codes, feats = model.encode_arrays(images.numpy())
    mirror_codes, mirror_feats = model.encode_arrays(images.flip(-1).numpy())
    np.testing.assert_array_equal(codes, mirror_codes)
    np.testing.assert_allclose(feats, mirror_feats, rtol=1e-4, atol=1e-5)
    with torch.inference_mode():
        expected = (model.rerank_output(model(images)) + model.rerank_output(model(images.flip(-1)))) / 2
    np.testing.assert_allclose(feats, expected.numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="mirror"):
        model.encode_maps(np.zeros((1, 1280, 3, 3), np.float32))
    assert load_model(model.save(tmp_path / "m")).mirror_average  # the checkpoint keeps the choice
