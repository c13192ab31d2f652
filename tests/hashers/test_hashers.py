"""Shallow hashers on synthetic CNN-like features: 20 Gaussian classes in 256-d with anisotropic noise."""
from __future__ import annotations

import numpy as np
import pytest

from hashseek.core.metrics import mean_average_precision
from hashseek.hashers import HASHERS, ITQHasher, NotFittedError, create_hasher, list_hashers, load_hasher
from hashseek.core.bits import hamming_distances, unpack_bits

NAMES = ["lsh", "pcah", "itq", "sdh"]


def make_features(n: int, n_queries: int, dim: int = 256, n_classes: int = 20, seed: int = 0):
    """Random class means (they span a 19-d subspace); noise std falls from 0.9 to 0.3 along a random basis.

    The positive offset mimics pooled ReLU features, which are far from zero-mean.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)) * np.sqrt(n_classes / dim)
    noise_basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    noise_std = np.linspace(0.9, 0.3, dim)

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, n_classes, m)
        X = 1.0 + centres[y] + (rng.standard_normal((m, dim)) * noise_std) @ noise_basis.T
        return X.astype(np.float32), y

    return *draw(n), *draw(n_queries)


def fit(name: str, n_bits: int, X: np.ndarray, y: np.ndarray, seed: int = 0):
    """SDH gets fewer anchors than its default 1000 to keep the suite fast."""
    kwargs = {"n_anchors": 200} if name == "sdh" else {}
    return create_hasher(name, n_bits, seed=seed, **kwargs).fit(X, y)


@pytest.fixture(scope="module")
def small():
    X, y, Q, _ = make_features(400, 50, dim=64, seed=1)
    return X, y, Q


@pytest.fixture(scope="module")
def retrieval():
    return make_features(1500, 200, seed=0)


def test_registry_lists_every_hasher():
    assert list_hashers() == sorted([*NAMES, "ksh"])   # ksh has its own tests (test_ksh.py): it needs labels
    assert all(name in HASHERS for name in NAMES)
    with pytest.raises(KeyError, match="unknown hasher"):
        create_hasher("nope", 16)
    assert isinstance(create_hasher("itq", 8), ITQHasher)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_bits", [8, 16, 48, 64])
def test_packed_codes_shape_dtype_and_bit_order(small, name, n_bits):
    X, y, Q = small
    hasher = fit(name, n_bits, X, y)
    codes = hasher.transform(Q)
    assert codes.shape == (len(Q), (n_bits + 7) // 8) and codes.dtype == np.uint8
    projections = hasher.project(Q)
    assert projections.shape == (len(Q), n_bits)
    np.testing.assert_array_equal(unpack_bits(codes, n_bits), projections >= 0)
    # Codes carry information: no bit is constant over the training set.
    train_bits = unpack_bits(hasher.transform(X), n_bits)
    assert (train_bits.min(axis=0) == 0).all() and (train_bits.max(axis=0) == 1).all()


def test_fit_transform_equals_fit_then_transform(small):
    X, y, _ = small
    np.testing.assert_array_equal(fit("itq", 32, X, y).transform(X), create_hasher("itq", 32).fit_transform(X))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_codes_other_seed_other_codes(small, name):
    X, y, Q = small
    first, again, other = (fit(name, 32, X, y, seed=s).transform(Q) for s in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    if name == "pcah":  # PCA is deterministic: the seed must not matter
        np.testing.assert_array_equal(first, other)
    else:
        assert not np.array_equal(first, other)


def test_itq_quantisation_loss_decreases(retrieval):
    X, y, _, _ = retrieval
    hasher = create_hasher("itq", 32, seed=3).fit(X)
    loss = hasher.loss_history_
    assert len(loss) == 50
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])
    assert loss[-1] < 0.95 * loss[0]
    # loss_history_[t] is measured before the t-th update, so the kept rotation is no worse than the last entry.
    V = (X - hasher.mean_) @ hasher.components_ @ hasher.rotation_
    assert np.sum((np.where(V >= 0, 1.0, -1.0) - V) ** 2) <= loss[-1] * (1 + 1e-9)


def test_map_ordering_at_32_bits(retrieval):
    X, y, Q, yq = retrieval
    scores = {}
    for name in NAMES:
        hasher = fit(name, 32, X, y)
        scores[name] = mean_average_precision(hamming_distances(hasher.transform(Q), hasher.transform(X)), yq, y)
    # Typical values: sdh 0.99, itq 0.70, pcah 0.41, lsh 0.11.
    assert scores["sdh"] > scores["itq"] + 0.1
    assert scores["itq"] > scores["pcah"] > scores["lsh"] + 0.1


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(small, tmp_path, name):
    X, y, Q = small
    hasher = fit(name, 24, X, y, seed=5)
    path = tmp_path / "hasher.bin"  # written exactly where asked, whatever the suffix
    hasher.save(path)
    loaded = load_hasher(path)
    assert type(loaded) is type(hasher) and loaded.config() == hasher.config()
    np.testing.assert_array_equal(loaded.transform(Q), hasher.transform(Q))
    assert loaded.state_dict().keys() == hasher.state_dict().keys()


def test_config_records_hyper_parameters():
    config = create_hasher("sdh", 64, seed=7, n_anchors=50, lam=0.5).config()
    assert config["name"] == "sdh" and config["n_bits"] == 64 and config["seed"] == 7
    assert config["n_anchors"] == 50 and config["lam"] == 0.5
    assert create_hasher("itq", 16, n_iter=10).config() == {"name": "itq", "n_bits": 16, "seed": 0, "n_iter": 10}


def test_sdh_uses_all_samples_as_anchors_when_fewer_than_requested(small):
    X, y, _ = small
    assert create_hasher("sdh", 16).fit(X, y).anchors_.shape == X.shape


def test_sdh_accepts_multi_hot_labels(small):
    X, y, Q = small
    one_hot = np.eye(y.max() + 1)[y]
    np.testing.assert_array_equal(fit("sdh", 16, X, one_hot).transform(Q), fit("sdh", 16, X, y).transform(Q))


@pytest.mark.parametrize("name", NAMES)
def test_transform_before_fit_raises(small, name):
    with pytest.raises(NotFittedError, match="not fitted"):
        create_hasher(name, 16).transform(small[2])
    with pytest.raises(NotFittedError):
        create_hasher(name, 16).state_dict()


@pytest.mark.parametrize("name", NAMES)
def test_wrong_width_raises(small, name):
    X, y, Q = small
    with pytest.raises(ValueError, match="has 63 features.*fitted on 64"):
        fit(name, 16, X, y).transform(Q[:, :63])


def test_sdh_without_labels_raises(small):
    with pytest.raises(ValueError, match="needs labels"):
        create_hasher("sdh", 16).fit(small[0])
    with pytest.raises(ValueError, match="labels for"):
        create_hasher("sdh", 16).fit(small[0], small[1][:-1])


@pytest.mark.parametrize("name", ["pcah", "itq"])
def test_more_bits_than_dimensions_raises(small, name):
    with pytest.raises(ValueError, match="n_bits <= 64"):
        create_hasher(name, 72).fit(small[0])


@pytest.mark.parametrize("n_bits", [4, 7, 257])
def test_n_bits_out_of_range_raises(n_bits):
    with pytest.raises(ValueError, match=r"n_bits must be an integer in \[8, 256\]"):
        create_hasher("lsh", n_bits)


def test_bad_features_raise():
    hasher = create_hasher("lsh", 16)
    with pytest.raises(ValueError, match="2-d"):
        hasher.fit(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        hasher.fit(np.full((4, 3), np.nan))


def test_lsh_allows_more_bits_than_dimensions():
    X = make_features(100, 1, dim=16)[0]
    assert create_hasher("lsh", 64).fit(X).transform(X).shape == (100, 8)


def test_project_in_blocks_matches_one_product():
    X = make_features(9000, 1, dim=16)[0]  # more rows than one projection block
    hasher = create_hasher("lsh", 16).fit(X)
    np.testing.assert_allclose(hasher.project(X), (X - hasher.mean_) @ hasher.weights_, rtol=1e-10, atol=1e-10)


def test_load_rejects_foreign_npz(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved hasher"):
        load_hasher(path)
