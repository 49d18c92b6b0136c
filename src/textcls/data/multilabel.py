"""Multi-label decisions: label sets as multi-hot rows, per-label thresholds tuned on dev, and the labels
they pick from a model's sigmoid scores.

numpy only (the server's process and the ONNX backend use it without torch). A run's thresholds are
tuned once after training, saved in `textcls.json` and may be overridden at predict time
(`--threshold`, `PredictConfig.threshold`).

Example:
    >>> gold = multi_hot([(0,), (0, 1), (1,)], 2)
    >>> gold.tolist()
    [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    >>> decide(np.array([[0.9, 0.2], [0.6, 0.7]]), [0.5, 0.5]).tolist()
    [[1, 0], [1, 1]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from textcls.config import parse_threshold
from textcls.errors import ConfigError

if TYPE_CHECKING:
    from textcls.data.loading import Split

DEFAULT_THRESHOLD = 0.5
# Candidate thresholds tried per label on dev: a coarse grid keeps the choice stable on small dev sets.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def multi_hot(label_sets: Sequence[int | Sequence[int]], num_labels: int) -> np.ndarray:
    """(rows, labels) float32, 1 where a row carries the label (a row of one index carries that one)."""
    matrix = np.zeros((len(label_sets), num_labels), dtype=np.float32)
    for row, labels in enumerate(label_sets):
        matrix[row, [labels] if isinstance(labels, (int, np.integer)) else list(labels)] = 1.0
    return matrix


def targets(labels: Sequence[int | tuple[int, ...]], num_labels: int, multi_label: bool) -> Any:
    """What a loss trains towards: `labels` as they are (class indices), or for multi-label a (rows, labels)
    float32 multi-hot matrix."""
    return multi_hot(labels, num_labels) if multi_label else labels


def training_targets(split: Split, num_labels: int) -> Any:
    """What a split's rows train towards: `targets`, or a distilled split's soft targets with its labels."""
    if split.soft_targets is not None:
        return split.soft_targets.targets(split.labels)
    return targets(split.labels, num_labels, split.multi_label)


def decide(scores: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """(rows, labels) int64, 1 where a label's score reaches its threshold."""
    return (np.asarray(scores) >= np.asarray(thresholds, dtype=np.float64)[None, :]).astype(np.int64)


def label_decisions(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """What two backends must agree on, per row: (rows, 1) argmax labels, or (rows, labels) 0/1 at 0.5."""
    return decide(probs, np.full(probs.shape[1], DEFAULT_THRESHOLD)) if multi_label else probs.argmax(axis=1)[:, None]


def label_sets(decisions: np.ndarray, label_names: Sequence[str]) -> list[list[str]]:
    """The names of the labels set in each row of `decisions` (rows, labels), in label order."""
    return [[label_names[int(i)] for i in np.flatnonzero(row)] for row in np.asarray(decisions)]


def tune_thresholds(gold: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per label, the threshold of `THRESHOLD_GRID` with the best F1 on (gold, scores) (rows, labels); ties go
    to the one nearest 0.5, and a label without dev rows that carry it keeps 0.5.

    Example:
        >>> tune_thresholds(np.array([[1.0], [0.0], [1.0]]), np.array([[0.3], [0.1], [0.35]])).tolist()
        [0.3]
    """
    gold = np.asarray(gold) > 0.5
    thresholds = np.full(gold.shape[1], DEFAULT_THRESHOLD)
    for label in range(gold.shape[1]):
        positives = gold[:, label]
        if not positives.any():
            continue
        predicted = scores[:, label][:, None] >= THRESHOLD_GRID[None, :]  # (rows, grid)
        true_pos = (predicted & positives[:, None]).sum(axis=0)
        f1 = 2 * true_pos / np.maximum(predicted.sum(axis=0) + positives.sum(), 1)
        best = np.flatnonzero(np.isclose(f1, f1.max()))
        thresholds[label] = float(THRESHOLD_GRID[best[np.argmin(np.abs(THRESHOLD_GRID[best] - DEFAULT_THRESHOLD))]])
    return thresholds


def run_thresholds(saved: Mapping[str, float] | None, override: str | None, label_names: Sequence[str]) -> np.ndarray:
    """The thresholds a multi-label run decides with: those saved in it (else 0.5), overridden by `--threshold`
    (one number for every label, or label name -> number for some); an unknown name is a `ConfigError`."""
    thresholds = np.array([float((saved or {}).get(name, DEFAULT_THRESHOLD)) for name in label_names])
    if override is None:
        return thresholds
    given = parse_threshold(override)
    if isinstance(given, float):
        return np.full(len(label_names), given)
    unknown = sorted(set(given) - set(label_names))
    if unknown:
        raise ConfigError(
            f"threshold: unknown label(s) {unknown}; expected names among {list(label_names)}; fix --threshold"
        )
    for name, value in given.items():
        thresholds[list(label_names).index(name)] = value
    return thresholds


def thresholds_record(thresholds: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """label name -> threshold, as `textcls.json` keeps them."""
    return {name: float(t) for name, t in zip(label_names, thresholds)}
