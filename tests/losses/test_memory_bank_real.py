"""The classic pairwise losses on a real slice: 8 look-alike Caltech101 classes (crocodile / crocodile_head,
cougar_body / cougar_face, flamingo / flamingo_head, emu, ibis) on frozen EfficientNet-Lite0 maps.
Each of gap+dpsh and gap+dsh (their references' unweighted in-batch pairs, and class-balanced) and
fc+hashnet (against the bank at RMSprop), in the forms selected on caltech101's validation split by
benchmarks/classic_losses.py, retrieves at least 0.10 mAP better than ITQ; and the trainer feeds
the bank (a bank loss refuses a batch without dataset positions). With 8 classes 1 pair in 8 is
similar; with caltech101's 101 the unweighted DSH stays at ITQ's level and DPSH below ITQ + 0.10
(the benchmark)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hashseek.core.bits import hamming_distances
from hashseek.core.metrics import mean_average_precision
from hashseek.hashers import create_hasher
from hashseek.losses import LOSSES, create_loss, hashnet_beta_schedule
from hashseek.models.features import BackboneEncoder, extract_features
from hashseek.models.heads import create_head
from hashseek.train import TrainConfig, Trainer

CLASSES = ["crocodile", "crocodile_head", "cougar_body", "cougar_face", "flamingo", "flamingo_head", "emu", "ibis"]
BITS = 16


@pytest.fixture(scope="module")
def look_alike(caltech101):
    """Training (database) and query maps, pooled as each head pools them: 10 + 5 images per class."""
    train, query = [], []
    for cls in CLASSES:
        ids = [i for i in caltech101.ids if i.startswith(cls + "/")][:15]
        train += ids[:10]
        query += ids[10:]
    encoder = BackboneEncoder("efficientnet_lite0", kind="map")
    parts = {}
    for name, ids in [("train", train), ("query", query)]:
        maps = extract_features(caltech101, ids, encoder=encoder, progress=False)
        x = torch.from_numpy(np.asarray(maps.features, dtype=np.float32))
        parts[name] = {"ids": maps.ids, "labels": maps.labels, "fc": x.mean(dim=(2, 3)),
                       "gap": F.max_pool2d(x, 2, 2).mean(dim=(2, 3))}
    return caltech101, parts


def map_all(query_codes, db_codes, query_labels, db_labels) -> float:
    return float(mean_average_precision(hamming_distances(query_codes, db_codes), query_labels, db_labels))


@pytest.fixture(scope="module")
def itq_map(look_alike):
    _, parts = look_alike
    itq = create_hasher("itq", BITS, seed=0).fit(parts["train"]["fc"].numpy())
    return map_all(itq.transform(parts["query"]["fc"].numpy()), itq.transform(parts["train"]["fc"].numpy()),
                   parts["query"]["labels"], parts["train"]["labels"])


# (method, optimizer, rate, loss options): the forms selected on caltech101 validation (their epochs aside)
SELECTED = [("gap+dpsh", "adam", 3e-3, {"eta": 1.0}), ("gap+dsh", "adam", 1e-3, {}),
            ("fc+hashnet", "rmsprop", 1e-4, {"bank": True}),
            ("gap+dpsh", "adam", 1e-3, {"balance": True, "eta": 1.0}), ("gap+dsh", "adam", 1e-3, {"balance": True})]


@pytest.mark.parametrize("method, optimizer, lr, options", SELECTED,
                         ids=[m + (":balanced" if o.get("balance") else "") for m, _, _, o in SELECTED])
def test_classic_loss_beats_itq_by_a_tenth_on_look_alike_classes(look_alike, itq_map, method, optimizer, lr, options):
    """The heads' own loop on their pooled maps (the trainer's frozen mode, without its model plumbing)."""
    _, parts = look_alike
    head_name, loss_name = method.split("+")
    x, y = parts["train"][head_name], torch.from_numpy(parts["train"]["labels"]).long()
    torch.manual_seed(0)
    head = create_head(head_name, x.shape[1], BITS)
    loss_fn = create_loss(loss_name, BITS, len(CLASSES), **options)
    continuation = LOSSES.metadata(loss_name)["continuation"]
    opt = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[optimizer](head.parameters(), lr=lr)
    epochs, step = 40, 0
    for epoch in range(epochs):
        head.train()
        for index in torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch)).split(16):
            head.beta = hashnet_beta_schedule(step) if continuation else 1.0
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / (epochs * 5)))
            out = head(x[index])
            loss = loss_fn(out, y[index], index=index) if loss_fn.needs_index else loss_fn(out, y[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    assert len(loss_fn.bank) == (len(x) if loss_fn.needs_index else 0)
    head.eval()
    with torch.no_grad():
        q_codes = np.packbits(head(parts["query"][head_name]).bits().numpy(), axis=1)
        db_codes = np.packbits(head(x).bits().numpy(), axis=1)
    value = map_all(q_codes, db_codes, parts["query"]["labels"], parts["train"]["labels"])
    assert value >= itq_map + 0.10, f"{method} {options}: mAP {value:.3f} < ITQ {itq_map:.3f} + 0.10"


def test_trainer_passes_dataset_positions_to_a_bank_loss(look_alike):
    dataset, parts = look_alike
    config = TrainConfig(head="gap", loss="dpsh", bits=BITS, epochs=2, batch_size=16, loss_kwargs={"bank": True})
    result = Trainer(config, progress=False).fit(dataset, parts["train"]["ids"])
    assert all(math.isfinite(h["loss"]) for h in result.history)
    with pytest.raises(ValueError, match="index"):
        create_loss("dpsh", BITS, bank=True)(result.model.head(parts["train"]["gap"][:4]),
                                             torch.from_numpy(parts["train"]["labels"][:4]))
