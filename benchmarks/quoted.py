"""Figures quoted from the reference papers, kept apart from anything measured here.

Each row names its paper, the protocol of ours closest to the paper's setting, and the
setting the paper itself used: their data, backbones and training differ from ours, so
these rows are shown beside the measured tables, never inside them.
"""
from __future__ import annotations


def _quoted(reference: str, protocol: str, method: str, metric: str, value: float, setting: str,
            bits: int | None = None) -> dict:
    return {"source": "quoted", "reference": reference, "protocol": protocol, "method": method,
            "metric": metric, "value": value, "bits": bits, "setting": setting}


_THESIS = "CBIR thesis"
_THESIS_SETTING = "Caltech101 library search, the thesis's own split and CNN"
_CIFAR_SETTING = "CIFAR-10 deep-hashing protocol, AlexNet, as reported"

QUOTED: list[dict] = [
    _quoted(_THESIS, "caltech101", "hashed coarse-to-fine search", "P@20", 0.7475, _THESIS_SETTING),
    _quoted(_THESIS, "caltech101", "linear float search", "P@20", 0.7975, _THESIS_SETTING),
    _quoted(_THESIS, "caltech101", "hashed coarse-to-fine search", "seconds per query", 0.140, _THESIS_SETTING),
    _quoted(_THESIS, "caltech101", "linear float search", "seconds per query", 0.368, _THESIS_SETTING),
    _quoted("vehicle paper", "cars-bmw13", "its hashing network", "top-1 accuracy", 0.800,
            "its 13 vehicle models (CompCars-mini), not the Stanford Cars BMW stand-in used here"),
    _quoted("vehicle paper", "cars-bmw13", "its hashing network", "mAP", 0.7997,
            "its 13 vehicle models (CompCars-mini), not the Stanford Cars BMW stand-in used here"),
    _quoted("Bilinear-HashNet", "cars-bmw13-unseen", "bilinear+hashnet", "top-1 accuracy on unseen classes", 0.816,
            "the paper's unseen-class vehicle split"),
    _quoted("aurora paper", "cifar10", "spp_pmt+multitask", "mAP", 0.907, "CIFAR-10, the paper's protocol", bits=48),
    _quoted("DPSH (as quoted)", "cifar10", "dpsh", "mAP", 0.775, _CIFAR_SETTING, bits=48),
    _quoted("HashNet (as quoted)", "cifar10", "hashnet", "mAP", 0.782, _CIFAR_SETTING, bits=48),
    _quoted("DTSH (as quoted)", "cifar10", "dtsh", "mAP", 0.800, _CIFAR_SETTING, bits=48),
]
