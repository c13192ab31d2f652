"""A source that ships its own split (train/ val/ test/ folders) keeps it; a missing part is drawn from train/."""
from __future__ import annotations

import shutil

import pytest

from hashseek.cli import main
from hashseek.core.errors import InvalidInputError
from hashseek.data.protocols import Protocol
from hashseek.data.sources import open_source
from hashseek.data.splits import SplitSettings, split_counts, split_folders, split_lines, split_source
from hashseek.eval.source_runs import prepare


@pytest.fixture
def presplit(make_folder, tmp_path):
    """presplit({part folder: {class index: n}}) -> a folder of part/class/image, images from one pool."""

    def make(parts: dict[str, dict[int, int]]):
        totals: dict[int, int] = {}
        for sizes in parts.values():
            for label, n in sizes.items():
                totals[label] = totals.get(label, 0) + n
        pool = make_folder(totals, name="pool")
        root = tmp_path / "given"
        for cls_dir in sorted(pool.iterdir()):
            files = sorted(cls_dir.iterdir())
            label = open_source(pool).classes.index(cls_dir.name)
            for part, sizes in parts.items():
                taken, files = files[:sizes.get(label, 0)], files[sizes.get(label, 0):]
                for f in taken:
                    (root / part / cls_dir.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy(f, root / part / cls_dir.name / f.name)
        return root

    return make


def test_train_and_test_folders_give_the_split_and_validation_is_drawn_from_train(presplit):
    root = presplit({"train": {0: 12, 1: 10, 2: 0}, "Test": {0: 4, 1: 3, 2: 2}})
    dataset = open_source(root)
    assert split_folders(dataset) == {"train": ["train"], "query": ["Test"]}
    p = split_source(dataset, SplitSettings(seed=1))
    assert p.folders == {"train": ["train"], "query": ["Test"]}
    assert set(p.query) == {i for i in dataset.ids if i.startswith("Test/") and dataset.classes[
        dataset.labels([i])[0]] != dataset.classes[2]}          # the given test images, as they are
    assert not set(p.train + p.validation) - {i for i in dataset.ids if i.startswith("train/")}
    counts = split_counts(p, dataset)
    first, second, test_only = dataset.classes
    assert (counts[first]["validation"], counts[second]["validation"]) == (2, 2)   # 15% of 12 and of 10, half up
    assert counts[test_only] == {"train": 0, "validation": 0, "query": 0, "database": 0}
    unfindable = {i for i in dataset.ids if i.startswith(f"Test/{test_only}/")}
    assert set(p.excluded) == unfindable and "holds nothing to find" in p.excluded[min(unfindable)]
    assert split_source(dataset, SplitSettings(seed=1)) == p and split_source(dataset, SplitSettings(seed=2)) != p
    text = "\n".join(split_lines(p, dataset))
    assert "The source's own split folders: train/ -> training; Test/ -> test queries; 15% of each" in text
    assert "gather folders of the same name" not in text       # train/cat and Test/cat are one class, as meant
    p.check(dataset)


def test_all_three_folders_are_kept_exactly_and_resplit_pools_them(presplit):
    root = presplit({"train": {0: 8, 1: 8}, "val": {0: 2, 1: 2}, "test": {0: 3, 1: 3}})
    dataset = open_source(root)
    p = split_source(dataset, SplitSettings(seed=7))
    for part, folder in (("train", "train/"), ("validation", "val/"), ("query", "test/")):
        assert getattr(p, part) == [i for i in dataset.ids if i.startswith(folder)]
    assert split_source(dataset, SplitSettings(seed=8)).train == p.train      # nothing drawn, the seed is moot
    pooled = split_source(dataset, SplitSettings(seed=7, folders=False))
    assert not pooled.folders and pooled.query != p.query and len(pooled.query) == 2 * 3   # 20% of 13, half up
    assert "gather folders of the same name" in "\n".join(split_lines(pooled, dataset))


def test_a_class_folder_named_test_is_a_class_not_a_split(make_folder, tmp_path):
    root = make_folder({0: 5, 1: 5})
    (root / "test").mkdir()
    shutil.copy(next((root / open_source(root).classes[0]).iterdir()), root / "test" / "x.jpg")
    assert split_folders(open_source(root)) == {}                       # test/x.jpg: "test" is its class


def test_a_fraction_for_a_part_the_folders_give_is_refused(presplit, tmp_path, capsys):
    root = presplit({"train": {0: 8, 1: 8}, "test": {0: 3, 1: 3}})
    with pytest.raises(InvalidInputError, match="the source's test/ folder gives that part.*--resplit"):
        prepare(root, test_fraction=0.3, progress=False)
    assert prepare(root, val_fraction=0.25, progress=False).protocol.sizes()["validation"] == 4   # drawn: allowed
    out = tmp_path / "s.json.gz"
    assert main(["split", str(root), "--out", str(out), "--test-fraction", "0.3", "-q"]) == 2
    assert "--test-fraction: the source's test/ folder" in capsys.readouterr().err
    assert main(["split", str(root), "--out", str(out), "--resplit", "-q"]) == 0
    assert not Protocol.load(out).folders and "own split folders" not in capsys.readouterr().out
    assert main(["split", str(root), "--out", str(out), "-q"]) == 0
    assert Protocol.load(out).query == [i for i in open_source(root).ids if i.startswith("test/")]
