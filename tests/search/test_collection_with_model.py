"""A collection built with a trained deep hashing model instead of the zero-training ITQ hasher,
on the shipped test images (4 classes x 8)."""
import json

import numpy as np

from hashseek.cli import main
from hashseek.search import Collection
from hashseek.train import TrainConfig, Trainer


def _hamming(codes: np.ndarray, code: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.bitwise_xor(codes, code[None]), axis=1).sum(axis=1)


def test_trained_model_indexes_searches_and_reopens(image_set, tmp_path):
    dataset, ids = image_set
    result = Trainer(TrainConfig(head="gap", loss="hashnet", bits=32, epochs=5, batch_size=16),
                     progress=False).fit(dataset, ids[::2], out_dir=tmp_path / "model")
    # the model's own codes, computed apart from the collection: what the index must hold
    expected, _ = result.model.encode([dataset.read_bytes(i) for i in ids])
    assert expected.shape == (len(ids), 4) and expected.dtype == np.uint8
    with Collection.create(tmp_path / "C", image_hasher=result.model) as c:
        added = c.add_dataset(dataset, ids, progress=False).ids
        assert len(c) == len(ids)
        hits = c.search(added[1], k=len(ids), rerank=None).hits                    # a library image: itself left out
        assert hits[0].label == ids[1].split("/")[0]
        row = {image_id: n for n, image_id in enumerate(added)}
        # every item's Hamming distance equals the one between the model's codes
        want = _hamming(expected, expected[1])
        assert sorted(h.id for h in hits) == sorted(added[:1] + added[2:])
        assert [int(h.hamming) for h in hits] == [int(want[row[h.id]]) for h in hits]
        assert [int(h.hamming) for h in hits] == sorted(int(h.hamming) for h in hits)
        assert want.max() > 0                                            # the codes are not all alike
    with Collection.open(tmp_path / "C") as c:
        assert c.info()["hasher"]["type"] == "hash_model"
        again = c.search(added[1], k=len(ids), rerank=None).hits
        assert [h.id for h in again] == [h.id for h in hits]
        assert [int(h.hamming) for h in again] == [int(h.hamming) for h in hits]
        assert c.check().ok


def test_cli_index_with_model(image_set, tmp_path, capsys):
    dataset, ids = image_set
    Trainer(TrainConfig(head="latent", loss="ce", bits=16, epochs=3, batch_size=16),
            progress=False).fit(dataset, ids, out_dir=tmp_path / "m")
    folder = tmp_path / "photos"
    for image_id in ids[:12]:
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(dataset.read_bytes(image_id))
    assert main(["index", str(folder), "--collection", str(tmp_path / "C"), "--model", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "C"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 12 and info["hasher"]["type"] == "hash_model" and info["n_bits"] == 16


def test_info_names_the_labels_the_model_never_trained_on(image_set, tmp_path, capsys):
    """A model trained on 3 of the 4 classes indexes all 4: `info` (and the REST info, the page) says which label
    its codes never learned; a zero-training collection has no such labels."""
    dataset, ids = image_set
    held_back = dataset.classes[-1]
    trained = [i for i in ids if not i.startswith(held_back + "/")]
    Trainer(TrainConfig(head="gap", loss="csq", bits=16, epochs=2, batch_size=16),
            progress=False).fit(dataset, trained, out_dir=tmp_path / "m")
    folder = tmp_path / "photos"
    for image_id in ids:
        (folder / image_id).parent.mkdir(parents=True, exist_ok=True)
        (folder / image_id).write_bytes(dataset.read_bytes(image_id))
    assert main(["index", str(folder), "--collection", str(tmp_path / "C"), "--model", str(tmp_path / "m"), "-q"]) == 0
    with Collection.open(tmp_path / "C", read_only=True) as c:
        assert c.image_hasher.trained_classes == dataset.classes[:-1] and c.image_hasher.classes == dataset.classes
        assert c.info()["untrained_classes"] == {held_back: 8}
    capsys.readouterr()
    assert main(["info", str(tmp_path / "C")]) == 0
    assert f"1 of the 4 labels had no training images in the model: {held_back} (8);" in capsys.readouterr().out
    assert main(["index", str(folder), "--collection", str(tmp_path / "Z"), "-q"]) == 0
    with Collection.open(tmp_path / "Z", read_only=True) as c:
        assert c.info()["untrained_classes"] == {}
