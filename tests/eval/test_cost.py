"""Cost figures on hand-computed cases: parameters, bytes, forward time, search rankings and the time drop."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from torch import nn

from hashseek.eval import (coarse_to_fine_search, disk_bytes, forward_ms_per_image, hasher_parameter_count,
                           linear_search, parameter_count, search_ms_per_query, time_drop_ratio)
from hashseek.eval.cost import flat_index
from hashseek.index import pack_bits


def test_parameter_count_counts_weights_and_biases_not_buffers():
    module = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))  # 3*2 + 2, then 2 + 2 (running stats are buffers)
    assert parameter_count(module) == 12


def test_hasher_parameter_count_leaves_out_bookkeeping():
    state = {"mean_": np.zeros(4), "components_": np.zeros((4, 2)), "loss_history_": np.zeros(50),
             "n_features_in_": np.asarray(4)}
    assert hasher_parameter_count(state) == 12


def test_disk_bytes_of_a_file_and_of_a_folder(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "config.json").write_bytes(b"y" * 5)
    assert disk_bytes(tmp_path / "model.bin") == 10
    assert disk_bytes(tmp_path) == 15
    with pytest.raises(FileNotFoundError):
        disk_bytes(tmp_path / "missing")


def test_disk_bytes_counts_a_file_that_goes_away_during_the_walk_as_nothing(tmp_path, monkeypatch):
    """A collection's thumbnails are written beside a running count (a temporary file renamed into place):
    one vanishing between the listing and its stat failed the collection's info with a 500 in a CI run."""
    (tmp_path / "kept.bin").write_bytes(b"x" * 10)
    (tmp_path / ".tmp-thumb.jpg").write_bytes(b"y" * 5)
    real_stat, seen = Path.stat, []

    def stat(self, *args, **kwargs):
        if self.name == ".tmp-thumb.jpg":
            seen.append(self)
            if len(seen) == 2:                # there when listed and checked, renamed away before its size is read
                self.unlink()
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert disk_bytes(tmp_path) == 10


def test_forward_time_is_the_median_batch_time_per_image():
    ticks = iter([0.0, 0.2, 1.0, 1.6, 2.0, 2.3])  # timed calls take 0.2, 0.6 and 0.3 s: median 0.3
    shapes = []
    ms = forward_ms_per_image(lambda x: shapes.append(x.shape), input_size=5, batch_size=8, repeats=3, warmup=1,
                              clock=lambda: next(ticks))
    assert ms == pytest.approx(1000 * 0.3 / 8)
    assert shapes == [(8, 3, 5, 5)] * 4  # one untimed warm-up call, then three timed ones


def test_time_drop_ratio_of_the_thesis_timings():
    assert time_drop_ratio(0.140, 0.368) == pytest.approx(1 - 0.140 / 0.368)
    assert time_drop_ratio(0.140, 0.368) == pytest.approx(0.6196, abs=1e-4)
    assert time_drop_ratio(2.0, 1.0) == -1.0  # slower than linear search: negative
    with pytest.raises(ValueError):
        time_drop_ratio(1.0, 0.0)


DB_FEATURES = np.array([[1, 0], [0, 1], [1, 1], [0, 1]], dtype=np.float32)
DB_CODES = pack_bits(np.array([[0] * 8, [1] * 8, [0] * 7 + [1], [0] * 6 + [1, 1]]))  # Hamming to 0: 0, 8, 1, 2


def test_linear_search_ranks_by_cosine_with_ties_in_database_order():
    # cosine distances to [0, 1]: 1, 0, 1 - 1/sqrt(2), 0 -> items 1 and 3 tie: database order
    assert_array_equal(linear_search(np.array([0, 3.0]), DB_FEATURES), [1, 3, 2, 0])


def test_coarse_to_fine_reranks_only_the_hamming_shortlist():
    query_code = pack_bits(np.zeros((1, 8)))[0]
    ranked = coarse_to_fine_search(query_code, np.array([0, 1.0]), flat_index(DB_CODES), DB_FEATURES, candidates=3)
    # shortlist by Hamming: 0 (d=0), 2 (1), 3 (2); item 1 matches the feature best but is 8 bits away
    assert_array_equal(ranked, [3, 2, 0])


def _search_inputs():
    rng = np.random.default_rng(0)
    q, db = rng.standard_normal((5, 16)), rng.standard_normal((300, 16))
    return q, db, pack_bits(q[:, :8] > 0), pack_bits(db[:, :8] > 0)


def test_search_times_report_the_drop_of_coarse_to_fine_over_linear(scripted_clock):
    q, db, codes_q, codes_db = _search_inputs()
    # 3 timed queries: linear 10.000 -> 10.012 s (4 ms each), coarse-to-fine 20.000 -> 20.003 s (1 ms each)
    clock = scripted_clock(10.000, 10.012, 20.000, 20.003)
    times = search_ms_per_query(q, db, codes_q, codes_db, candidates=20, max_queries=3)
    assert clock.instants == []
    assert times == {"linear_ms_per_query": pytest.approx(4.0), "coarse_to_fine_ms_per_query": pytest.approx(1.0),
                     "time_drop_ratio": pytest.approx(0.75), "timed_queries": 3, "candidates": 20}


def test_search_times_on_the_real_clock():
    q, db, codes_q, codes_db = _search_inputs()
    times = search_ms_per_query(q, db, codes_q, codes_db, candidates=500, max_queries=3)
    assert times["candidates"] == 300                          # capped at the database size
    assert times["linear_ms_per_query"] > 0 and times["coarse_to_fine_ms_per_query"] > 0
    assert times["time_drop_ratio"] < 1
    assert set(search_ms_per_query(q, db)) == {"linear_ms_per_query", "timed_queries"}
