"""A collection built with a trained deep hashing model instead of the zero-training ITQ hasher."""
import numpy as np

from hashseek.cli import main
from hashseek.search import Collection
from hashseek.train import TrainConfig, Trainer


def test_trained_model_indexes_searches_and_reopens(caltech_slice, tmp_path):
    dataset, ids = caltech_slice
    result = Trainer(TrainConfig(head="gap", loss="hashnet", bits=32, epochs=5, batch_size=16),
                     progress=False).fit(dataset, ids[::2], out_dir=tmp_path / "model")
    with Collection.create(tmp_path / "C", image_hasher=result.model) as c:
        added = c.add_dataset(dataset, ids, progress=False).ids
        assert len(c) == len(ids)
        hits = c.search(added[1], k=5).hits
        assert hits[0].label == ids[1].split("/")[0]
        expected_codes, _ = result.model.encode([dataset.read_bytes(ids[1])])
    with Collection.open(tmp_path / "C") as c:
        assert c.info()["hasher"]["type"] == "hash_model"
        again = c.search(added[1], k=5).hits
        assert [h.id for h in again] == [h.id for h in hits]
        assert c.check().ok
    code = np.frombuffer(expected_codes[0].tobytes(), np.uint8)
    assert code.shape == (4,)


def test_cli_index_with_model(caltech_slice, tmp_path, capsys):
    dataset, ids = caltech_slice
    Trainer(TrainConfig(head="latent", loss="ce", bits=16, epochs=3, batch_size=16),
            progress=False).fit(dataset, ids, out_dir=tmp_path / "m")
    folder = tmp_path / "photos"
    for image_id in ids[:12]:
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(dataset.read_bytes(image_id))
    assert main(["index", str(folder), "--collection", str(tmp_path / "C"), "--model", str(tmp_path / "m")]) == 0
    assert main(["info", str(tmp_path / "C")]) == 0
    assert "hash_model" in capsys.readouterr().out
