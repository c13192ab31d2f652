import numpy as np
import pytest

from hashseek.core.calibration import (calibration_figures, confidence_ceiling, expected_calibration_error,
                                       fit_temperature, negative_log_likelihood, softmax, temperature_for_confidence)


def _overconfident(n=2000, classes=5, accuracy=0.8, margin=40.0, seed=0):
    """Logits whose top class is right ``accuracy`` of the time but sits ``margin`` nats above the rest."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    top = np.where(rng.random(n) < accuracy, labels, (labels + rng.integers(1, classes, n)) % classes)
    logits = rng.normal(0.0, 1.0, (n, classes))
    logits[np.arange(n), top] += margin
    return logits, labels


def test_softmax_of_logits_hundreds_of_nats_apart_is_finite_and_sums_to_one():
    p = softmax(np.array([[900.0, 0.0, -900.0], [1.0, 1.0, 1.0]]))
    assert np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1.0)
    assert p[0, 0] == pytest.approx(1.0) and p[1] == pytest.approx([1 / 3] * 3)


def test_negative_log_likelihood_matches_the_definition():
    logits, labels = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert negative_log_likelihood(logits, labels) == pytest.approx(-np.log(p[[0, 1], [0, 0]]).mean())
    assert negative_log_likelihood(logits, labels, 2.0) == pytest.approx(negative_log_likelihood(logits / 2, labels))


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy():
    # 10 images at confidence 0.8 of which 8 are right; then the same confidence, all right: gap 0.2
    p = np.tile([[0.8, 0.2]], (10, 1))
    assert expected_calibration_error(p, np.array([0] * 8 + [1] * 2)) == pytest.approx(0.0)
    assert expected_calibration_error(p, np.zeros(10, int)) == pytest.approx(0.2)


def test_fitted_temperature_softens_an_overconfident_classifier_to_its_accuracy():
    logits, labels = _overconfident()
    temperature = fit_temperature(logits, labels)
    before, after = calibration_figures(logits, labels), calibration_figures(logits, labels, temperature)
    assert temperature > 5
    assert before["confidence"] > 0.99 and after["confidence"] == pytest.approx(0.8, abs=0.03)
    assert after["ece"] < 0.03 < before["ece"]
    assert after["nll"] < before["nll"] / 5
    assert after["accuracy"] == before["accuracy"]      # the argmax does not move


def test_every_validation_image_right_leaves_the_confidence_at_laplaces_estimate():
    """The likelihood would sharpen without bound; the fit softens until the mean confidence is (n + 1) / (n + 2)."""
    logits, labels = _overconfident(n=24, accuracy=1.0, margin=40.0)
    assert confidence_ceiling(logits, labels) == pytest.approx(25 / 26)
    assert calibration_figures(logits, labels)["confidence"] > 0.999
    temperature = fit_temperature(logits, labels)
    after = calibration_figures(logits, labels, temperature)
    assert temperature > 5 and after["confidence"] == pytest.approx(25 / 26, abs=1e-3)
    assert after["accuracy"] == 1.0


def test_with_one_error_the_likelihood_decides():
    logits, labels = _overconfident(n=24, accuracy=1.0, margin=40.0)
    labels[0] = (logits[0].argmax() + 1) % logits.shape[1]                # one confidently wrong answer
    t = fit_temperature(logits, labels)
    nll = [negative_log_likelihood(logits, labels, t * f) for f in (1 / 1.05, 1.0, 1.05)]
    assert t > 1 and nll[1] < min(nll[0], nll[2])                         # the likelihood's own optimum


def test_an_underconfident_classifier_is_sharpened_to_its_accuracy():
    """A cross-entropy head under heavy augmentation is too unsure: the likelihood's T is below 1."""
    logits, labels = _overconfident()
    logits = logits / (3 * fit_temperature(logits, labels))          # calibrated logits, then 3x too flat
    before = calibration_figures(logits, labels)
    temperature = fit_temperature(logits, labels)
    after = calibration_figures(logits, labels, temperature)
    assert before["confidence"] < 0.6 and temperature == pytest.approx(1 / 3, rel=0.02)
    assert after["confidence"] == pytest.approx(0.8, abs=0.03) and after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]


def test_every_validation_image_right_but_unsure_is_sharpened_to_laplaces_estimate():
    logits, labels = _overconfident(n=24, accuracy=1.0, margin=6.0)
    logits = logits / 4                                                 # right, at a confidence of about 0.7
    assert calibration_figures(logits, labels)["confidence"] < 0.8
    temperature = fit_temperature(logits, labels)
    assert temperature < 1 and calibration_figures(logits, labels, temperature)["confidence"] == pytest.approx(
        25 / 26, abs=1e-3)


def test_temperature_for_confidence_is_the_least_one_that_reaches_it():
    logits = np.array([[10.0, 0.0, 0.0], [8.0, 1.0, 0.0]])
    for ceiling in (0.9, 0.6, 0.4):
        t = temperature_for_confidence(logits, ceiling)
        assert softmax(logits, t).max(axis=1).mean() <= ceiling + 1e-6
        assert softmax(logits, t * 0.999).max(axis=1).mean() > ceiling - 1e-3
    assert temperature_for_confidence(logits, 0.99999) < 1.0


def test_fit_temperature_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="logits must be"):
        fit_temperature(np.zeros((3, 2)), np.zeros(4, int))
