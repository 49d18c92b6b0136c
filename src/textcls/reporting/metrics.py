"""Metrics for a classifier's predictions: accuracy, macro-F1, per-class recall and report, confusion matrix;
for multi-label predictions micro/macro-F1, subset accuracy, Hamming loss, per-label figures and co-occurrence.

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
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
    recall_score,
)

from textcls.data.multilabel import decide


def predicted_labels(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Predictions from logits (rows, classes): the argmax per row, or for multi-label a (rows, labels) 0/1
    matrix of the labels whose logit is above 0 (a sigmoid score above 0.5), as training scores each epoch."""
    return (np.asarray(logits) > 0).astype(np.int64) if multi_label else np.asarray(logits).argmax(axis=1)


def headline_metrics(labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray) -> dict[str, float]:
    """The numbers a best epoch can be chosen by (`--metric`), as plain floats (also Trainer's each epoch).

    balanced_accuracy is the mean per-class recall over the classes present in `labels`; macro_f1 averages
    the classes present in `labels` or `predictions` (a class neither has nor predicts is not scored 0).
    Multi-label labels and predictions are (rows, labels) 0/1 matrices: accuracy is then subset accuracy
    (every label right), balanced_accuracy the mean recall of the labels dev has, and macro_f1 the same
    labels as a single-label run's.

    Example:
        >>> headline_metrics([0, 0, 0, 1], [0, 0, 0, 0])["balanced_accuracy"]
        0.5
    """
    if np.ndim(labels) == 2:
        gold, predicted = np.asarray(labels) > 0.5, np.asarray(predictions) > 0
        present = np.flatnonzero(gold.any(axis=0))
        # as for single labels (scikit-learn's default there): a label dev neither has nor predicts is left out
        scored = np.flatnonzero(gold.any(axis=0) | predicted.any(axis=0))
        return {
            "accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(f1_score(gold, predicted, labels=scored, average="macro", zero_division=0))
            if scored.size
            else 0.0,
            "weighted_f1": float(f1_score(gold, predicted, average="weighted", zero_division=0)),
            "balanced_accuracy": float(recall_score(gold, predicted, labels=present, average="macro", zero_division=0)),
            "micro_f1": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        }
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, predictions, average="weighted", zero_division=0)),
        "balanced_accuracy": float(
            recall_score(labels, predictions, labels=sorted(set(labels)), average="macro", zero_division=0)
        ),
        # micro-F1 of a single-label prediction is its accuracy; kept so --metric micro_f1 means the same everywhere
        "micro_f1": float(f1_score(labels, predictions, average="micro", zero_division=0)),
    }


def classification_metrics(labels: Sequence[int], probs: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """Full evaluation of class probabilities `probs` (rows, classes) against gold `labels`."""
    label_ids = list(range(len(label_names)))
    predictions = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=label_ids, zero_division=0
    )
    per_class = _per_class(label_names, precision, recall, f1, support)
    return {
        **headline_metrics(labels, predictions),
        "num_samples": len(labels),
        "per_class": per_class,
        # next to accuracy, what a skewed split hides in it: every class's recall, and the lowest one
        **_recall_summary(label_names, recall, support),
        # rows: gold label, columns: predicted label, both in label_names order
        "confusion_matrix": confusion_matrix(labels, predictions, labels=label_ids).tolist(),
        "label_names": list(label_names),
    }


def multilabel_metrics(
    gold: np.ndarray, scores: np.ndarray, label_names: Sequence[str], thresholds: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """Full evaluation of multi-label `scores` (rows, labels) against `gold` (rows, labels) 0/1, each label
    decided at its threshold: micro/macro-F1, subset accuracy, Hamming loss, per-label P/R/F1 with support,
    and how often gold labels occur together.

    Example:
        >>> m = multilabel_metrics(np.array([[1, 0], [1, 1]]), np.array([[.9, .6], [.8, .7]]), ["a", "b"], [.5, .65])
        >>> m["subset_accuracy"], m["hamming_loss"], m["per_label"]["b"]["precision"]
        (1.0, 0.0, 1.0)
    """
    gold = np.asarray(gold) > 0.5
    predicted = decide(scores, thresholds).astype(bool)
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    per_label = _per_class(label_names, precision, recall, f1, support)
    counts = gold.astype(np.int64)
    return {
        **headline_metrics(gold, predicted),
        "multi_label": True,
        "subset_accuracy": float(accuracy_score(gold, predicted)),
        "hamming_loss": float(hamming_loss(gold, predicted)),
        "num_samples": int(len(gold)),
        "labels_per_text": {"gold": float(gold.sum(axis=1).mean()), "predicted": float(predicted.sum(axis=1).mean())},
        "per_label": per_label,
        "per_class": per_label,  # the name the single-label tables read
        **_recall_summary(label_names, recall, support),
        # (labels, labels): texts whose gold labels include both; the diagonal is each label's support
        "co_occurrence": (counts.T @ counts).tolist(),
        "thresholds": {name: float(t) for name, t in zip(label_names, thresholds)},
        "label_names": list(label_names),
    }


def _per_class(
    label_names: Sequence[str], precision: np.ndarray, recall: np.ndarray, f1: np.ndarray, support: np.ndarray
) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support per class (or label), by name."""
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }


def _recall_summary(label_names: Sequence[str], recall: np.ndarray, support: np.ndarray) -> dict[str, Any]:
    """Every class's recall and the lowest among the classes with support: what a skewed split hides in
    its accuracy."""
    lowest = int(np.argmin(np.where(support > 0, recall, np.inf))) if support.any() else 0
    return {
        "per_class_recall": {name: float(recall[i]) for i, name in enumerate(label_names)},
        "lowest_recall": {"label": label_names[lowest], "recall": float(recall[lowest])},
    }


def calibration(labels: Sequence[int], probs: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of the top-label confidence, over `bins` equal-width bins on [0, 1].

    Each bin holds rows whose confidence lies in (lower, upper] (the first bin also takes 0).
    `confidence` and `accuracy` are None for an empty bin.

    Example:
        >>> c = calibration([0, 1], np.array([[.9, .1], [.2, .8]]), bins=5)
        >>> round(c["ece"], 2), sum(b["count"] for b in c["bins"])
        (0.15, 2)
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, found {bins}")
    probs = np.asarray(probs, dtype=float)
    gold = np.asarray(labels)
    if probs.ndim != 2 or len(gold) != probs.shape[0]:
        raise ValueError(
            f"expected probs of shape (rows, classes) with rows == len(labels) ({len(gold)}), found shape {probs.shape}"
        )
    confidence = probs.max(axis=1)  # (rows,)
    correct = (probs.argmax(axis=1) == gold).astype(float)  # (rows,)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-closed bins, clipped so a confidence of exactly 0 lands in the first bin.
    bin_index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = len(gold)
    ece = 0.0
    bin_rows = []
    for b in range(bins):
        member = bin_index == b
        count = int(member.sum())
        mean_confidence: float | None = None
        accuracy: float | None = None
        if count:
            mean_confidence, accuracy = float(confidence[member].mean()), float(correct[member].mean())
            ece += count / total * abs(accuracy - mean_confidence)
        bin_rows.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "confidence": mean_confidence,
                "accuracy": accuracy,
            }
        )
    return {"ece": float(ece), "bins": bin_rows, "num_samples": total}
