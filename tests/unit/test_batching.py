"""batching.py: rows in batches of similar length."""

from __future__ import annotations

import numpy as np

from textcls.training.batching import length_sorted_batches


def test_length_sorted_batches_cover_every_row_once_in_length_order():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=103)
    batches = list(length_sorted_batches(lengths, batch_size=16))
    assert [len(b) for b in batches] == [16] * 6 + [7]
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(103))
    assert (np.diff(lengths[rows]) >= 0).all()  # each batch holds neighbours in length
