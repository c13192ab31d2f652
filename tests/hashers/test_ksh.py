"""KSH: supervised kernel hashing beats unsupervised ITQ on labelled features, and round-trips."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hashseek.core.bits import hamming_distances
from hashseek.core.metrics import mean_average_precision
from hashseek.hashers import HASHERS, create_hasher, load_hasher

sys.path.insert(0, str(Path(__file__).parent))
from test_hashers import make_features  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return make_features(600, 120, dim=128, seed=3)


def _map(hasher, X, y, Q, yq) -> float:
    return mean_average_precision(hamming_distances(hasher.transform(Q), hasher.transform(X)), yq, y)


def test_ksh_beats_itq_on_labelled_features(data):
    X, y, Q, yq = data
    ksh = create_hasher("ksh", 16, n_anchors=100, n_labelled=400, n_steps=30).fit(X, y)
    itq = create_hasher("itq", 16).fit(X)
    assert _map(ksh, X, y, Q, yq) > _map(itq, X, y, Q, yq) + 0.05
    assert HASHERS.metadata("ksh")["supervised"]


def test_ksh_fits_the_pairwise_objective_better_than_its_spectral_start(data):
    """Each bit keeps the better of the spectral start and the refined projection, so more steps never hurt."""
    X, y, _, _ = data
    codes = [create_hasher("ksh", 8, n_anchors=60, n_labelled=300, n_steps=steps).fit(X, y).project(X[:300])
             for steps in (0, 40)]
    same = (y[:300, None] == y[None, :300]) * 2.0 - 1
    score = [float(np.sum(np.sign(c) @ np.sign(c).T * same)) for c in codes]
    assert score[1] >= score[0]


def test_ksh_round_trip_and_labels(data, tmp_path):
    X, y, Q, _ = data
    hasher = create_hasher("ksh", 16, seed=2, n_anchors=50, n_labelled=200, n_steps=5).fit(X, y)
    hasher.save(tmp_path / "ksh.npz")
    np.testing.assert_array_equal(load_hasher(tmp_path / "ksh.npz").transform(Q), hasher.transform(Q))
    with pytest.raises(ValueError, match="ksh is supervised"):
        create_hasher("ksh", 16).fit(X)
    multi_hot = np.eye(20)[y]
    multi_hot[:10, 0] = 1
    assert create_hasher("ksh", 8, n_anchors=40, n_labelled=100, n_steps=5).fit(X, multi_hot).transform(Q).shape == (120, 1)


def test_ksh_normalises_features_and_saves_the_choice(data, tmp_path):
    """The kernel sees L2-normalised features: a rescaled query set gets the same codes, and the
    setting survives a save (a raw-feature fit does not share that invariance)."""
    X, y, Q, _ = data
    hasher = create_hasher("ksh", 16, n_anchors=50, n_labelled=300, n_steps=10).fit(X, y)
    np.testing.assert_array_equal(hasher.transform(3 * Q), hasher.transform(Q))
    hasher.save(tmp_path / "ksh.npz")
    assert load_hasher(tmp_path / "ksh.npz").config()["normalize"] is True
    raw = create_hasher("ksh", 16, n_anchors=50, n_labelled=300, n_steps=10, normalize=False).fit(X, y)
    assert not np.array_equal(raw.transform(3 * Q), raw.transform(Q))
