"""What a collection knows of its images' bytes: content hashes (is a query image in the library?) and the
library as a dataset to train on."""
from __future__ import annotations

import hashlib
import pickle
import sqlite3

import numpy as np

from hashseek.search.collection import Collection


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_content_hashes_find_library_images_by_their_bytes(caltech_slice, tmp_path):
    dataset, ids = caltech_slice
    path = tmp_path / "C"
    with Collection.create(path, n_bits=32) as c:
        added = c.add_dataset(dataset, ids[:6], progress=False).ids
        blob = dataset.read_bytes(ids[2])
        upload = c.add_images([blob], names=["copy.jpg"]).ids          # another source, the same bytes
        assert c.content_ids(_sha(blob)) == [added[2], upload[0]]
        assert c.content_ids(_sha(blob).upper()) == [added[2], upload[0]]
        assert c.content_ids(_sha(dataset.read_bytes(ids[7]))) == []    # not in the library
        feats = c.features_of(added[:1])
        synthetic = c.add_features(feats, c.image_hasher.codes_from_features(feats), ["x:1"], ["x"], [None])
        assert c.get(synthetic[0]).in_library and c.content_ids(_sha(b"")) == []
        c.remove(upload)
        assert c.content_ids(_sha(blob)) == [added[2]]
        again = c.add_images([blob], names=["copy.jpg"])                  # restored: keeps its hash
        assert again.restored == 1 and c.content_ids(_sha(blob)) == [added[2], again.ids[0]]

    # A collection made before the column existed gets it on open; its old rows have no hash.
    with sqlite3.connect(path / "meta.sqlite") as db:
        db.execute("DROP INDEX images_content_hash")
        db.execute("ALTER TABLE images DROP COLUMN content_hash")
    with Collection.open(path) as c:
        assert c.content_ids(_sha(blob)) == [] and c.check().ok
        new = c.add_dataset(dataset, ids[6:8], progress=False).ids
        assert c.content_ids(_sha(dataset.read_bytes(ids[7]))) == [new[1]]


def test_the_library_as_a_dataset(caltech_slice, tmp_path):
    dataset, ids = caltech_slice
    path = tmp_path / "C"
    with Collection.create(path, n_bits=32) as c:
        added = c.add_dataset(dataset, ids[:4] + ids[20:24], progress=False).ids
        upload = c.add_images([dataset.read_bytes(ids[40])], names=["mine.jpg"]).ids   # unlabelled, stored copy
        c.remove(added[:1])
        c.relabel(added[1], "jet")
        library = c.as_dataset()
    assert library.ids == [str(i) for i in added[1:] + upload]
    assert library.classes == sorted({"jet", "airplanes", dataset.classes[dataset.labels([ids[20]])[0]]})
    labels = [library.classes[n] if n >= 0 else None for n in library.labels()]
    assert labels == ["jet", "airplanes", "airplanes"] + [labels[3]] * 4 + [None]
    # read after the collection is closed, and in another process (the dataset pickles)
    again = pickle.loads(pickle.dumps(library))
    for image_id, source_id in zip(library.ids, ids[1:4] + ids[20:24] + ids[40:41]):
        assert again.read_bytes(image_id) == library.read_bytes(image_id) == dataset.read_bytes(source_id)
    assert library.fingerprint() == again.fingerprint()
    with Collection.open(path) as c:
        assert c.as_dataset().fingerprint() == library.fingerprint()   # same library, same cache key
        c.remove([added[2]])
        assert c.as_dataset().fingerprint() != library.fingerprint()
        assert np.array_equal(c.as_dataset().labels(), library.labels()[[0] + list(range(2, 8))])
