"""Metrics for a classifier's predictions: accuracy, macro-F1, per-class report, confusion matrix.

Example:
    >>> import numpy as np
    >>> m = classification_metrics([0, 1, 1], np.array([[.9, .1], [.2, .8], [.6, .4]]), ["a", "b"])
    >>> round(m["accuracy"], 3)
    0.667
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def accuracy_and_f1(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """The two headline numbers, as plain floats (also used by Trainer each epoch)."""
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def classification_metrics(labels: Sequence[int], probs: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Full evaluation of class probabilities `probs` (rows, classes) against gold `labels`."""
    label_ids = list(range(len(label_names)))
    predictions = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=label_ids, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    return {
        **accuracy_and_f1(labels, predictions),
        "num_samples": len(labels),
        "per_class": per_class,
        # rows: gold label, columns: predicted label, both in label_names order
        "confusion_matrix": confusion_matrix(labels, predictions, labels=label_ids).tolist(),
        "label_names": list(label_names),
    }
