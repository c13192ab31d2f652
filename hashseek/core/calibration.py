"""How far a classifier's probabilities can be trusted, and the temperature that makes them honest.

A network fine-tuned on a few hundred images is overconfident: the cars-bmw13 CSQ model (session 19)
gave its top class 0.99 on average while right 82% of the time. Temperature scaling (Guo et al. 2017,
"On Calibration of Modern Neural Networks") divides the logits by one number T fitted on validation
images by their negative log-likelihood; the argmax, so every accuracy figure, stays as it was.
With one error or more the likelihood has its optimum, which softens an overconfident classifier
(T > 1, CSQ's centres) and sharpens an underconfident one (T < 1: a cross-entropy head trained
under heavy augmentation said 0.645 on validation images it named right 0.769 of the time). On a
validation set the classifier gets entirely right the likelihood has none (it would sharpen without
bound; a T >= 1 rule kept T = 1, and a new user's model said 1.000 on test images it got right 0.917
of the time), and the small sets users train on are where that happens: there T sets the mean
confidence to Laplace's estimate of the accuracy, (n + 1) / (n + 2).
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

ECE_BINS = 15                 # Guo et al.'s equal-width confidence bins
MAX_TEMPERATURE = 1e4         # CSQ's centre log-likelihoods sum over the bits: hundreds of nats apart
MIN_TEMPERATURE = 1e-2        # sharpening beyond 100x says more about a few images than the classifier
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> np.ndarray:
    """(n, c) logits -> (n, c) float32 probabilities of ``logits / temperature``, computed in float64."""
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float = 1.0) -> float:
    """Mean -log p(true class) of ``softmax(logits / temperature)``, stable for logits far apart."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(labels, np.int64)]))


def expected_calibration_error(probabilities: npt.ArrayLike, labels: npt.ArrayLike, bins: int = ECE_BINS) -> float:
    """The gap between confidence and accuracy, averaged over equal-width confidence bins weighted by
    how many images fall in each (0: a confidence of 0.8 is right 80% of the time)."""
    p = np.asarray(probabilities, np.float64)
    confidence, right = p.max(axis=1), p.argmax(axis=1) == np.asarray(labels, np.int64)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    gap = 0.0
    for b in np.unique(which):
        in_bin = which == b
        gap += in_bin.mean() * abs(confidence[in_bin].mean() - right[in_bin].mean())
    return float(gap)


def confidence_ceiling(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Laplace's rule of succession on the classifier's record: (right + 1) / (n + 2), what k right
    answers out of n say of the next one, so never 1."""
    z, y = np.asarray(logits), np.asarray(labels, np.int64)
    return float((np.sum(z.argmax(axis=1) == y) + 1) / (len(y) + 2))


def temperature_for_confidence(logits: npt.ArrayLike, ceiling: float, tolerance: float = 1e-4) -> float:
    """The least T whose mean top probability is at most ``ceiling`` (a bisection over log T: each image's
    top probability falls as T grows), within [MIN_TEMPERATURE, MAX_TEMPERATURE]."""
    z = np.asarray(logits, np.float64)
    confidence = lambda log_t: float(softmax(z, np.exp(log_t)).max(axis=1).mean())  # noqa: E731
    low, high = float(np.log(MIN_TEMPERATURE)), float(np.log(MAX_TEMPERATURE))
    if confidence(low) <= ceiling:
        return MIN_TEMPERATURE
    if confidence(high) > ceiling:
        return MAX_TEMPERATURE
    while high - low > tolerance:
        middle = (low + high) / 2
        low, high = (middle, high) if confidence(middle) > ceiling else (low, middle)
    return float(np.exp(high))


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike, tolerance: float = 1e-4) -> float:
    """The T of least negative log-likelihood on (``logits``, ``labels``) (a golden-section search over log T:
    the likelihood is convex in 1/T, so unimodal in log T); when every label is the argmax, the least T whose
    mean confidence is at most ``confidence_ceiling``."""
    z, y = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if z.ndim != 2 or len(z) != len(y) or not len(y):
        raise ValueError(f"logits must be (n, classes) beside n labels, got {z.shape} and {y.shape}")
    if (z.argmax(axis=1) == y).all():
        return temperature_for_confidence(z, confidence_ceiling(z, y), tolerance)
    cost = lambda log_t: negative_log_likelihood(z, y, np.exp(log_t))  # noqa: E731
    low, high = float(np.log(MIN_TEMPERATURE)), float(np.log(MAX_TEMPERATURE))
    a, b = high - _GOLDEN * (high - low), low + _GOLDEN * (high - low)
    cost_a, cost_b = cost(a), cost(b)
    while high - low > tolerance:
        if cost_a <= cost_b:
            high, b, cost_b = b, a, cost_a
            a = high - _GOLDEN * (high - low)
            cost_a = cost(a)
        else:
            low, a, cost_a = a, b, cost_b
            b = low + _GOLDEN * (high - low)
            cost_b = cost(b)
    best = min((cost(0.0), 0.0), (cost((low + high) / 2), (low + high) / 2))[1]   # T = 1 when nothing beats it
    return float(np.exp(best))


def calibration_figures(logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float = 1.0) -> dict:
    """A classifier's top-1 accuracy, mean confidence, expected calibration error and negative log-likelihood."""
    p = softmax(logits, temperature)
    y = np.asarray(labels, np.int64)
    return {"accuracy": float(np.mean(p.argmax(axis=1) == y)), "confidence": float(p.max(axis=1).mean()),
            "ece": expected_calibration_error(p, y), "nll": negative_log_likelihood(logits, y, temperature)}


__all__ = ["calibration_figures", "confidence_ceiling", "expected_calibration_error", "fit_temperature",
           "negative_log_likelihood", "softmax", "temperature_for_confidence"]
