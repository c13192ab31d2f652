"""Hash heads: shapes on any map, code ranges/thresholds, and each family's own mechanics."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hashseek.models.heads import HeadOutput, create_head, list_heads

HEADS = ["bilinear", "fc", "gap", "latent", "spp_pmt"]
TANH = {"bilinear", "fc", "gap"}
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


def test_bilinear_reduction_default_and_unit_norm_feature():
    wide = create_head("bilinear", 512, K, N_CLASSES)
    assert wide.reduction is not None and wide.embedding_dim == 256**2
    narrow = create_head("bilinear", C, K, N_CLASSES)
    assert narrow.reduction is None and narrow.embedding_dim == C**2
    forced = create_head("bilinear", C, K, reduced_channels=8)
    assert forced.embedding_dim == 64
    out = narrow(torch.rand(3, C, 4, 4))
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(3), atol=1e-5)
    # symmetric pooling: the d x d feature equals its transpose
    square = out.embedding.view(3, C, C)
    assert torch.allclose(square, square.transpose(1, 2), atol=1e-6)


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
    codes, feats = model.encode_arrays(images.numpy())
    with torch.inference_mode():
        out = model(images)
    torch.testing.assert_close(torch.from_numpy(feats), out.embedding, rtol=1e-4, atol=1e-4)
    assert (codes == model.codes_from_output(out.codes.numpy())).mean() > 0.99  # a bit exactly at 0 may flip
