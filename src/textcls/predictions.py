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


def prediction_records(probs: np.ndarray, label_names: Sequence[str]) -> list[dict[str, Any]]:
    """One `{"label", "score", "probs"}` per row of `probs` (rows, classes).

    Example:
        >>> prediction_records(np.array([[0.2, 0.8]]), ["a", "b"])[0]["score"]
        0.8
    """
    return [
        {
            "label": label_names[int(row.argmax())],
            "score": float(row.max()),
            "probs": {name: float(p) for name, p in zip(label_names, row)},
        }
        for row in probs
    ]
