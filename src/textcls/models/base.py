"""The interface every model family implements, so commands loop over families alike.

Example:
    >>> clf = family_class("pretrained").load(run_dir / "model")   # doctest: +SKIP
    >>> clf.predict(["Stocks fell sharply."])                         # doctest: +SKIP
    ['Business']
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from textcls.config import TrainConfig
    from textcls.data import Split

# family name -> "module:Class"; imported lazily so `textcls --help` stays fast.
_FAMILIES = {
    "tfidf": "textcls.models.linear:TfidfClassifier",
    "lstm": "textcls.models.rnn:LSTMClassifier",
    "lstm-attention": "textcls.models.rnn:AttentionLSTMClassifier",
    "scratch-transformer": "textcls.models.scratch:ScratchTransformerClassifier",
    "pretrained": "textcls.models.pretrained:PretrainedClassifier",
}


class Classifier(abc.ABC):
    """A trained text classifier: probabilities over `label_names` for each text."""

    family: str = ""
    label_names: list[str]

    @classmethod
    @abc.abstractmethod
    def fit(
        cls,
        train: Split,
        dev: Split,
        label_names: Sequence[str],
        config: TrainConfig,
        checkpoint_dir: Path,
    ) -> tuple[Classifier, dict[str, Any]]:
        """Train on `train`, evaluating on `dev`; return the model and a summary for metrics.json.

        The summary has the keys model, max_length, precision, world_size, train_seconds,
        train_samples_per_second, train_loss, global_step, best_checkpoint_metric,
        stopped_by_time_budget, resumed_from and epochs (one row per dev evaluation).
        Families that checkpoint write into `checkpoint_dir` and resume from it when `config.resume`.
        """

    @abc.abstractmethod
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(label_names)), rows in input order."""

    @abc.abstractmethod
    def save(self, model_dir: Path) -> None:
        """Write everything needed to rebuild the model into `model_dir` (no pickle)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, model_dir: Path, **options: Any) -> Classifier:
        """Rebuild a classifier written by `save`."""

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        """Most probable label name per text."""
        probs = self.predict_proba(texts, batch_size=batch_size)
        return [self.label_names[i] for i in probs.argmax(axis=1)]

    def num_parameters(self) -> int:
        """Trainable parameter count (0 where the family has no such notion)."""
        return 0

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Any:
        """What the model weighs in `text`: a `textcls.explain.Explanation` (tokens, weights, attention).

        Example:
            >>> explanation = clf.explain("Stocks fell sharply.")   # doctest: +SKIP
            >>> explanation.words()[:2], explanation.save("out")    # doctest: +SKIP
        """
        from textcls.explain import explain

        return explain(self, text, layer=layer, head=head)


def family_class(name: str) -> type[Classifier]:
    """The `Classifier` subclass implementing family `name`."""
    if name not in _FAMILIES:
        from textcls.errors import RunFolderError

        raise RunFolderError(f"unknown model family {name!r}; expected one of {sorted(_FAMILIES)}")
    module_name, class_name = _FAMILIES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
