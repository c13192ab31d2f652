"""A small real split of cars-bmw13 and the runner's records on it, shared by the runner and report tests;
a scripted clock for the search timings."""
from __future__ import annotations

import pytest

from hashseek.data.protocols import Protocol

CLASSES = ("BMW_1_Series_Convertible_2012", "BMW_3_Series_Wagon_2012", "BMW_X5_SUV_2007")


@pytest.fixture(scope="session")
def tiny_protocol(cars_bmw13) -> Protocol:
    """3 models x (4 queries + 8 database images); the third model is unseen (not trained on)."""
    query, database, train = [], [], []
    for cls in CLASSES:
        ids = [i for i in cars_bmw13.ids if i.startswith(cls + "/")]
        query += ids[:4]
        database += ids[4:12]
        if cls != CLASSES[-1]:
            train += ids[4:12]
    return Protocol("tiny-cars", "cars-bmw13", 0, "3 BMW models, 4 queries + 8 database images each",
                    query, database, train, unseen_classes=[CLASSES[-1]])


@pytest.fixture(scope="session")
def run_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="session")
def small_runs(tiny_protocol, run_cache) -> list[dict]:
    """lsh and sdh (supervised) at 16 bits, the float baseline, and gap+hashnet trained 2 epochs.

    No forward timing and no PCA-based hasher: an ONNX export or a 1280-d eigendecomposition
    costs seconds on shared cores.
    """
    from hashseek.eval.runner import MethodSpec, run_method

    specs = [("lsh", 16), ("sdh", 16), ("float", None), (MethodSpec.parse("gap+hashnet", epochs=2), 16)]
    return [run_method(spec, tiny_protocol, bits, cache_dir=run_cache, progress=False, timing=False)
            for spec, bits in specs]


class ScriptedClock:
    """Stands in for the ``time`` module inside ``hashseek.eval.cost``: ``perf_counter`` returns the
    scripted instants, so the search timings (and the drop computed from them) are known in advance
    while the searches themselves run for real."""

    def __init__(self, instants):
        self.instants = list(instants)

    def perf_counter(self) -> float:
        assert self.instants, "the search timing read the clock more often than scripted"
        return self.instants.pop(0)


@pytest.fixture
def scripted_clock(monkeypatch):
    """``scripted_clock(t0, t1, ...)`` puts a ScriptedClock in ``hashseek.eval.cost`` for this test."""
    from hashseek.eval import cost

    def install(*instants: float) -> ScriptedClock:
        clock = ScriptedClock(instants)
        monkeypatch.setattr(cost, "time", clock)
        return clock
    return install
