"""A user's split: seeded, stratified, reproducible, small classes by the rules, written down."""
from __future__ import annotations

import pytest

from hashseek.core.errors import InvalidInputError
from hashseek.data.protocols import Protocol
from hashseek.data.sources import check_source, open_source
from hashseek.data.splits import SplitSettings, class_plan, split_counts, split_lines, split_source


def test_the_split_is_stratified_disjoint_and_complete(make_folder):
    dataset = open_source(make_folder({0: 20, 1: 30, 2: 25}))
    p = split_source(dataset, SplitSettings(seed=0, val_fraction=0.2, test_fraction=0.2))
    parts = [set(p.train), set(p.validation), set(p.query)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == len(dataset)        # disjoint, complete
    assert set(p.database) == set(p.train) | set(p.validation) and not p.leave_one_out
    counts = split_counts(p, dataset)
    for cls, n in zip(dataset.classes, (20, 30, 25)):
        assert counts[cls]["query"] == counts[cls]["validation"] == round(n * 0.2 + 0.01)   # 4, 6, 5 (half up)
        assert counts[cls]["train"] == n - 2 * counts[cls]["query"]
    assert p.query == [i for i in dataset.ids if i in set(p.query)]                   # dataset order
    p.check(dataset)


def test_seeds_reproduce_and_differ(make_folder):
    dataset = open_source(make_folder({0: 15, 1: 15}))
    a, b, c = (split_source(dataset, SplitSettings(seed=s)) for s in (3, 3, 4))
    assert a == b and a.query != c.query
    assert sorted(a.query + a.validation + a.train) == sorted(c.query + c.validation + c.train)


@pytest.mark.parametrize("n,expected", [(1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)), (12, (8, 2, 2)),
                                        (100, (65, 15, 20))])
def test_small_class_rules(n, expected):
    assert class_plan(n, 0.15, 0.2) == expected
    train, val, test = class_plan(n, 0.45, 0.5)
    assert train >= 1 and train + val + test == n


def test_small_classes_are_kept_and_reported(make_folder):
    dataset = open_source(make_folder({0: 1, 1: 2, 2: 12}))
    p = split_source(dataset, SplitSettings(seed=0))
    counts = split_counts(p, dataset)
    tiny, two, big = dataset.classes
    assert counts[tiny] == {"train": 1, "validation": 0, "query": 0, "database": 1}
    assert counts[two] == {"train": 1, "validation": 0, "query": 1, "database": 1}
    assert all(counts[c]["train"] >= 1 and counts[c]["database"] >= 1 for c in dataset.classes)
    text = "\n".join(split_lines(p, dataset))
    assert f"too small for a test query (trained on, in the database, not tested): {tiny}" in text
    assert f"too small for a validation image: {tiny}, {two}" in text


def test_database_all_is_leave_one_out(make_folder):
    dataset = open_source(make_folder({0: 10, 1: 10}))
    p = split_source(dataset, SplitSettings(database="all"))
    assert p.leave_one_out and sorted(p.database) == sorted(dataset.ids)
    p.check(dataset)                                   # queries in the database are allowed here only
    with pytest.raises(InvalidInputError, match="overlap"):
        Protocol(**{**p.__dict__, "leave_one_out": False}).check(dataset)


def test_unreadable_files_are_recorded_not_split(make_folder, tmp_path):
    root = make_folder({0: 6, 1: 6})
    broken = root / open_source(root).classes[0] / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    dataset = open_source(root)
    check = check_source(dataset, progress=False)
    image_id = broken.relative_to(root).as_posix()
    assert list(check.unreadable) == [image_id]
    p = split_source(dataset, SplitSettings(), excluded=check.excluded, source=str(root))
    assert image_id not in set(p.train + p.validation + p.query) and image_id in p.excluded
    loaded = Protocol.load(p.save(tmp_path / "split.json.gz"))
    assert loaded == p and loaded.dataset == str(root)
    assert "1 image(s) left out of every part:" in split_lines(loaded, dataset)


@pytest.mark.parametrize("kwargs,message", [({"val_fraction": 0}, "between 0 and 1"),
                                            ({"val_fraction": 0.5, "test_fraction": 0.5}, "leave images"),
                                            ({"database": "some"}, "database must be")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        SplitSettings(**kwargs)
