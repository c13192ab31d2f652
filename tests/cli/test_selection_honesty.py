"""Selection never reads a test query: the trainer sees training and validation images only."""
from __future__ import annotations

from hashseek.eval.source_runs import prepare, recipe_config, report_training, train_prepared


def test_test_queries_are_never_read_during_fit(make_photos, cars_bmw13, tmp_path):
    prepared = prepare(make_photos("fresh", cars_bmw13.classes[4:7], 10), seed=0, progress=False)
    split = prepared.protocol
    reads: list[str] = []
    original = prepared.dataset.read_bytes

    def recording(image_id: str) -> bytes:
        reads.append(image_id)
        return original(image_id)

    prepared.dataset.read_bytes = recording
    config, _ = recipe_config("fast", prepared, overrides={"epochs": 3})
    result = train_prepared(prepared, config, tmp_path / "run", progress=False)
    read_in_fit = set(reads)
    assert read_in_fit >= set(split.train) | set(split.validation)      # the wrapper sees what training reads
    assert not read_in_fit & set(split.query), "a test query was read during training or selection"
    report_training(prepared, result, tmp_path / "run", recipe="fast", recipe_lines=[], progress=False)
    assert set(reads) >= set(split.query)                                # read once training is over
