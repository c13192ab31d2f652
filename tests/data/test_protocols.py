import pytest

from hashseek.data.protocols import PROTOCOLS, Protocol, get_protocol, make_protocol, shipped_protocol_path


def test_caltech101_protocol_matches_the_thesis_split(caltech101):
    p = make_protocol("caltech101", caltech101, seed=0)
    p.check(caltech101)
    labels_q = caltech101.labels(p.query)
    labels_db = caltech101.labels(p.database)
    assert len(p.query) == 101 * 10
    assert len(p.query) + len(p.database) == len(caltech101)
    assert all((labels_db == c).sum() > 0 for c in range(101))      # every class left in the database
    assert set(p.train) <= set(p.database) and set(p.validation) <= set(p.database)
    assert not set(p.train) & set(p.validation)
    assert max((caltech101.labels(p.train) == c).sum() for c in range(101)) == 25
    assert all((caltech101.labels(p.validation) == c).sum() == 5 for c in range(101))
    assert (labels_q == 0).sum() == 10


def test_cars_protocols(cars_bmw13):
    p = make_protocol("cars-bmw13", cars_bmw13, seed=0)
    assert sorted(p.train + p.validation) == sorted(p.database) and len(p.database) == 13 * 25
    assert all((cars_bmw13.labels(p.validation) == c).sum() == 5 for c in range(13))   # 5 of each model's 25
    assert len(p.query) == len(cars_bmw13) - 13 * 25
    u = make_protocol("cars-bmw13-unseen", cars_bmw13, seed=0)
    assert len(u.unseen_classes) == 4
    unseen = {cars_bmw13.classes.index(c) for c in u.unseen_classes}
    assert not unseen & set(cars_bmw13.labels(u.train).tolist())
    assert unseen <= set(cars_bmw13.labels(u.database).tolist())
    assert unseen <= set(cars_bmw13.labels(u.query).tolist())
    assert set(u.train) < set(u.database) and set(u.validation) < set(u.database)
    assert not unseen & set(cars_bmw13.labels(u.validation).tolist()) and len(u.validation) == 9 * 5


def test_seeds_reproduce_and_differ(cars_bmw13):
    a, b, c = (make_protocol("cars-bmw13", cars_bmw13, seed=s) for s in (0, 0, 1))
    assert a.query == b.query and a.query != c.query
    assert a.database == sorted(a.database, key=cars_bmw13.ids.index)   # database in dataset order


@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_shipped_protocol_files_equal_a_fresh_draw(name, archive):
    from hashseek.data.named import NAMED_DATASETS, load_dataset
    from hashseek.data.protocols import protocol_dataset

    archive(NAMED_DATASETS[protocol_dataset(name)])
    dataset = load_dataset(protocol_dataset(name))
    shipped = Protocol.load(shipped_protocol_path(name, 0))
    assert shipped == make_protocol(name, dataset, seed=0)
    assert get_protocol(name, dataset, 0) == shipped


def test_save_load_round_trip(tmp_path, cars_bmw13):
    p = make_protocol("cars-bmw13-unseen", cars_bmw13, seed=3)
    path = p.save(tmp_path / "p.json.gz")
    assert Protocol.load(path) == p
    assert path.read_bytes() == p.save(tmp_path / "q.json.gz").read_bytes()   # byte-stable files


def test_cifar10_protocol_is_the_standard_split(archive):
    from hashseek.data.named import load_dataset

    archive("cifar10-jpg.tar.gz")
    p = get_protocol("cifar10")
    assert p.sizes() == {"query": 1000, "database": 54000, "train": 4500, "validation": 500}
    assert not (set(p.train) | set(p.validation)) & set(p.database)
    cifar = load_dataset("cifar10")
    assert (cifar.labels(p.query) == 3).sum() == 100 and (cifar.labels(p.train) == 3).sum() == 450
    assert (cifar.labels(p.validation) == 3).sum() == 50


def test_check_refuses_queries_in_training_or_validation(cars_bmw13):
    from hashseek.core.errors import InvalidInputError

    p = make_protocol("cars-bmw13", cars_bmw13, seed=0)
    leaked = Protocol(**{**p.__dict__, "validation": p.validation + p.query[:1]})
    with pytest.raises(InvalidInputError, match="test queries"):
        leaked.check(cars_bmw13)
    with pytest.raises(InvalidInputError, match="not in dataset"):
        Protocol(**{**p.__dict__, "train": p.train + ["nope/x.jpg"]}).check(cars_bmw13)


def test_a_file_that_is_not_a_split_is_refused(tmp_path):
    from hashseek.core.errors import InvalidInputError

    (tmp_path / "x.json.gz").write_bytes(b"not gzip")
    with pytest.raises(InvalidInputError, match="not a split"):
        Protocol.load(tmp_path / "x.json.gz")
