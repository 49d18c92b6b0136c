"""Predictions as JSON-ready records: what `predict` prints and the server answers (numpy only, no torch).

Example:
    >>> import numpy as np
    >>> prediction_records(np.array([[0.2, 0.8]]), ["a", "b"])[0]["label"]
    'b'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textcls.data.multilabel import decide, label_sets


def prediction_records(
    probs: np.ndarray, label_names: Sequence[str], thresholds: Sequence[float] | np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One `{"label", "score", "probs"}` per row of `probs` (rows, classes); for a multi-label run (its
    `thresholds` given) one `{"labels", "scores"}`: every label reaching its threshold, and each label's score.

    Example:
        >>> prediction_records(np.array([[0.2, 0.8]]), ["a", "b"])[0]["score"]
        0.8
        >>> prediction_records(np.array([[0.7, 0.8]]), ["a", "b"], [0.5, 0.9])
        [{'labels': ['a'], 'scores': {'a': 0.7, 'b': 0.8}}]
    """
    if thresholds is not None:
        chosen = label_sets(decide(probs, thresholds), label_names)
        return [
            {"labels": labels, "scores": {name: float(p) for name, p in zip(label_names, row)}}
            for labels, row in zip(chosen, probs)
        ]
    return [
        {
            "label": label_names[int(row.argmax())],
            "score": float(row.max()),
            "probs": {name: float(p) for name, p in zip(label_names, row)},
        }
        for row in probs
    ]
