"""CNNH: stage-1 target codes fit the class similarity; stage 2 pulls relaxed codes onto them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashseek.losses import LOSSES, create_loss
from hashseek.losses.cnnh import cnnh_target_codes
from hashseek.models.heads import HeadOutput


def test_target_codes_separate_the_classes_and_follow_the_seed():
    codes = cnnh_target_codes(6, 16, seed=1)
    assert codes.shape == (6, 16) and set(np.unique(codes)) == {-1.0, 1.0}
    inner = codes @ codes.T / 16
    assert np.allclose(np.diag(inner), 1) and inner[~np.eye(6, dtype=bool)].max() <= 0.5
    random = np.where(np.random.default_rng(1).standard_normal((6, 16)) >= 0, 1.0, -1.0)
    objective = lambda h: ((2 * np.eye(6) - 1 - h @ h.T / 16) ** 2).sum()  # noqa: E731
    assert objective(codes) < objective(random)
    np.testing.assert_array_equal(cnnh_target_codes(6, 16, seed=1), codes)


def test_stage_two_regresses_onto_the_class_codes():
    loss_fn = create_loss("cnnh", 16, n_classes=4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    raw = torch.zeros(6, 16, requires_grad=True)
    optimiser = torch.optim.Adam([raw], lr=0.1)
    for _ in range(100):
        codes = torch.tanh(raw)
        loss = loss_fn(HeadOutput(codes, None, codes, "tanh", 0.0), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert torch.equal(torch.tanh(raw).sign(), loss_fn.targets[labels])
    assert LOSSES.metadata("cnnh")["needs_classes"]
    with pytest.raises(ValueError, match="n_classes"):
        create_loss("cnnh", 16)
