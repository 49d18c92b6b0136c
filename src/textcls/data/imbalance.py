"""Imbalanced labels: class weights for the loss, balanced sampling, and the metric that picks the best epoch.

numpy only; the families turn the weights into their own loss (torch) or `class_weight` (scikit-learn).

Example:
    >>> class_weights("balanced", [0, 0, 0, 1], ["a", "b"]).tolist()
    [0.6666666666666666, 2.0]
    >>> default_metric([0, 0, 0, 1], 2)
    'macro_f1'
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from textcls.config import TrainConfig, class_weights_problem
from textcls.data.loading import LabelRows, did_you_mean, flat_labels
from textcls.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Train labels count as skewed, and macro-F1 picks the best epoch, when the largest class has this many
# times the rows of the smallest.
SKEW_RATIO = 1.5
# Fewer dev rows than this in a class make its recall too noisy to read (one row is 5 points): warned about.
MIN_DEV_ROWS_PER_CLASS = 20


def class_counts(labels: LabelRows, num_classes: int) -> np.ndarray:
    """Rows per class, (classes,) int64 (a multi-label row counts once for each of its labels)."""
    return np.bincount(np.asarray(flat_labels(labels), dtype=np.int64), minlength=num_classes)[:num_classes]


def class_weights(spec: str, labels: LabelRows, label_names: Sequence[str]) -> np.ndarray | None:
    """One loss weight per class from `--class-weights` (`TrainConfig.class_weights`), or None for none.

    balanced: rows / (classes x rows of the class), as scikit-learn's `class_weight="balanced"`; a class
    without train rows weighs 1. A JSON object (inline or a .json file) names labels; one left out weighs 1.
    """
    if spec == "none":
        return None
    if spec == "balanced":
        counts = class_counts(labels, len(label_names)).astype(np.float64)
        present = counts > 0
        weights = np.ones(len(label_names))
        weights[present] = len(labels) / (present.sum() * counts[present])
        return weights
    source, given = _read_weights(spec)
    weights = np.ones(len(label_names))
    index = {name: i for i, name in enumerate(label_names)}
    for name, weight in given.items():
        if name not in index:
            raise DataError(
                f"{source}, field {name!r}: unknown label{did_you_mean(name, label_names)}; expected names among "
                f"{list(label_names)}; fix the class weights"
            )
        weights[index[name]] = float(weight)
    return weights


def _read_weights(spec: str) -> tuple[str, dict[str, float]]:
    """(where the weights came from, label name -> weight) of an inline JSON object or a .json file."""
    if not spec.endswith(".json"):
        return "--class-weights", json.loads(spec)  # checked by TrainConfig
    path = Path(spec).expanduser()
    try:
        weights = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(
            f"class_weights: could not read {path} ({error.strerror or error}); pass an existing .json file"
        ) from error
    except ValueError as error:
        raise DataError(
            f"{path}: expected a JSON object of label name -> weight, found invalid JSON ({error}); fix the file"
        ) from error
    problem = class_weights_problem(weights)
    if problem is not None:
        raise DataError(f"{path}{problem}; fix the file")
    return str(path), weights


def sampling_weights(labels: LabelRows, num_classes: int) -> np.ndarray:
    """Per row, the probability of drawing it so that every class is drawn equally often, (rows,)."""
    indices = np.asarray(labels, dtype=np.int64)  # one class a row: models refuse --sampler balanced otherwise
    counts = class_counts(labels, num_classes)
    weights = 1.0 / counts[indices]
    return weights / weights.sum()


def is_skewed(labels: LabelRows, num_classes: int) -> bool:
    """Whether the largest present class has `SKEW_RATIO` times the rows of the smallest."""
    counts = class_counts(labels, num_classes)
    present = counts[counts > 0]
    return bool(len(present) and present.max() >= SKEW_RATIO * present.min())


def default_metric(labels: LabelRows, num_classes: int) -> str:
    """micro_f1 for multi-label rows (subset accuracy counts a text right only when every label is), else
    macro_f1 for skewed train labels (accuracy would reward ignoring a small class), else accuracy."""
    if labels and isinstance(labels[0], tuple):
        return "micro_f1"
    return "macro_f1" if is_skewed(labels, num_classes) else "accuracy"


def with_metric(config: TrainConfig, labels: LabelRows, label_names: Sequence[str]) -> TrainConfig:
    """`config` with `metric` chosen from the train labels when it was left unset, and the choice logged."""
    if config.metric is not None:
        return config
    metric = default_metric(labels, len(label_names))
    kind = {"micro_f1": "multi-label", "macro_f1": "skewed"}.get(metric, "balanced")
    log.info(
        "best epoch and early stopping by dev %s (--metric): the train labels are %s (%s)",
        metric,
        kind,
        describe_distribution(labels, label_names),
    )
    return dataclasses.replace(config, metric=metric)


def loss_weights(
    config: TrainConfig, labels: LabelRows, label_names: Sequence[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(class weights for the loss, per-row sampling probabilities) that `config` asks for; None where not."""
    weights = class_weights(config.class_weights, labels, label_names)
    if weights is not None:
        log.info(
            "class weights (--class-weights %s): %s",
            config.class_weights,
            ", ".join(f"{name} {weight:.3g}" for name, weight in zip(label_names, weights)),
        )
    sample = sampling_weights(labels, len(label_names)) if config.sampler == "balanced" else None
    return weights, sample


def describe_distribution(labels: LabelRows, label_names: Sequence[str]) -> str:
    """ "World 25.0%, Sports 5.0%, ..." for a log line."""
    counts = class_counts(labels, len(label_names))
    total = max(len(labels), 1)  # of rows: multi-label shares add up to more than 100%
    return ", ".join(f"{name} {100 * count / total:.1f}%" for name, count in zip(label_names, counts))


def small_classes(
    labels: LabelRows, label_names: Sequence[str], minimum: int = MIN_DEV_ROWS_PER_CLASS
) -> dict[str, int]:
    """Label name -> rows for the classes with fewer than `minimum` rows."""
    counts = Counter(flat_labels(labels))
    return {name: counts.get(i, 0) for i, name in enumerate(label_names) if counts.get(i, 0) < minimum}
