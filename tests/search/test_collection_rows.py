"""Rows added from precomputed features, and reading a library image's bytes back (shipped test images)."""
import numpy as np
import pytest

from hashseek.search import Collection


def test_add_features_and_image_bytes(image_set, tmp_path):
    dataset, ids = image_set
    with Collection.create(tmp_path / "C", n_bits=32) as c:
        added = c.add_dataset(dataset, ids[:20], progress=False).ids
        assert c.image_bytes(added[3]) == dataset.read_bytes(ids[3])
        feats = c.features_of(added[:2])
        codes = c.image_hasher.codes_from_features(feats)
        new = c.add_features(feats, codes, ["copy:a", "copy:b"], ["a", "b"], ["copies", "copies"])
        assert len(c) == 22
        hits = c.search(new[0], k=1).hits
        assert hits[0].id == added[0] and hits[0].hamming == 0      # the original shares the code
        with pytest.raises(ValueError, match="same length"):
            c.add_features(feats, codes, ["x"], ["x"], [None])
        bad = feats.astype(np.float32)
        bad[1, 5] = np.nan
        bad[0, 0] = 1e6  # beyond float16's range
        for row in (0, 1):
            with pytest.raises(ValueError, match="finite"):
                c.add_features(bad[row:row + 1], codes[:1], ["bad"], ["bad"], [None])
        assert len(c) == 22
        assert c.check().ok
