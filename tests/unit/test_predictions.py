"""predictions.py: probabilities as JSON-ready records."""

from __future__ import annotations

import numpy as np
import pytest

from textcls.inference.predictions import prediction_records


def test_prediction_records_name_the_most_probable_label():
    records = prediction_records(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]), ["a", "b", "c"])
    assert [r["label"] for r in records] == ["b", "a"]
    assert records[0]["score"] == pytest.approx(0.7)
    assert records[1]["probs"] == pytest.approx({"a": 0.5, "b": 0.2, "c": 0.3})
