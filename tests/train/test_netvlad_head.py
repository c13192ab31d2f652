"""The ``netvlad`` hash head: k-means-initialised centres, trained by the one trainer, exported to ONNX."""
import numpy as np
import torch

from hashseek.models.hash_model import HashModel
from hashseek.models.heads import HEADS, create_head
from hashseek.train import TrainConfig, Trainer


def test_kmeans_init_puts_the_centres_on_the_maps_clusters():
    """Map vectors drawn around 3 known directions: the 3 centres land on them (the random start does not)."""
    torch.manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    vectors = directions.repeat_interleave(100, dim=0) + 0.02 * torch.randn(300, 8)
    maps = vectors.reshape(12, 25, 8).permute(0, 2, 1).reshape(12, 8, 5, 5)
    head = create_head("netvlad", 8, 16, clusters=3)
    before = head.vlad.centres.detach().clone()
    head.init_from_maps(maps, seed=0)
    centres = torch.nn.functional.normalize(head.vlad.centres.detach(), dim=1)
    assert (centres @ directions.T).max(dim=0).values.min() > 0.99
    assert (torch.nn.functional.normalize(before, dim=1) @ directions.T).max(dim=0).values.min() < 0.99
    # the assignment convolution follows the centres: each vector's strongest cluster is its nearest centre
    soft = head.vlad.assign(torch.nn.functional.normalize(maps, dim=1)).argmax(dim=1).flatten()
    nearest = (torch.nn.functional.normalize(maps, dim=1).permute(0, 2, 3, 1).reshape(-1, 8) @ centres.T).argmax(1)
    assert torch.equal(soft, nearest)
    assert HEADS.metadata("netvlad")["map_init"] and not HEADS.metadata("gap")["map_init"]


def test_frozen_triplet_training_starts_from_kmeans_and_lowers_the_loss(caltech_slice):
    dataset, ids = caltech_slice
    train = [i for n, i in enumerate(ids) if n % 10 < 6]
    config = TrainConfig(head="netvlad", loss="triplet", bits=16, epochs=6, batch_size=16, lr=1e-3, seed=0,
                         head_kwargs={"clusters": 8})
    result = Trainer(config, progress=False).fit(dataset, train)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0], f"netvlad+triplet loss did not decrease: {losses[0]:.4f} -> {losses[-1]:.4f}"
    # k-means centres of unit vectors lie inside the unit ball; the random start (0.1 * N(0, 1) in 1280-d) has norm ~3.6
    norms = result.model.head.vlad.centres.detach().norm(dim=1)
    assert norms.max() < 1.1 and norms.min() > 0.1


def test_a_kmeans_initialised_head_exports_to_onnx_and_matches_torch():
    torch.manual_seed(0)
    model = HashModel.build("efficientnet_lite0", "netvlad", 16, None, input_size=96, head_kwargs={"clusters": 4}).eval()
    images = torch.rand(4, 3, 96, 96)
    with torch.no_grad():
        model.head.init_from_maps(model.backbone.forward_features(images), seed=0)
    with torch.inference_mode():
        out = model(images)
    codes, feats, _ = model.infer_arrays(images.numpy())
    cosine = torch.nn.functional.cosine_similarity(torch.from_numpy(feats), model.rerank_output(out))
    assert cosine.min() > 0.999
    assert (codes == model.codes_from_output(out.codes.numpy())).mean() > 0.99
    assert np.isfinite(feats).all()
