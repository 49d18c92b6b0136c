"""The interfaces every model family implements, so commands loop over families alike.

- `Predictor`: what inference needs (label names, `predict_proba`, `explain` where declared). The
  ONNX backend is a `Predictor` only.
- `Classifier`: a `Predictor` that also trains (`fit`) and persists (`save`, `load`); every family
  in `textcls.families` is one.
- Each class declares what it can do in `capabilities` (`PREDICT`, `EXPLAIN`, `EXPORT_ONNX`);
  callers check the set instead of testing family names or catching errors.
- `TrainSummary` (with one `EpochRow` per dev evaluation) is what `fit` reports; it goes into
  `metrics.json` as it is.

Example:
    >>> clf = family_class("pretrained").load(run_dir / "model")   # doctest: +SKIP
    >>> "explain" in clf.capabilities, clf.predict(["Stocks fell sharply."])   # doctest: +SKIP
    (True, ['Business'])
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypedDict

import numpy as np

from textcls.data.texts import check_texts
from textcls.errors import ConfigError, RunFolderError, TextclsError
from textcls.families import FAMILIES

if TYPE_CHECKING:
    from torch import nn
    from typing_extensions import NotRequired  # in typing from Python 3.11

    from textcls.config import TrainConfig
    from textcls.data.loading import Split
    from textcls.reporting.explanations import Explanation

PREDICT = "predict"
EXPLAIN = "explain"  # `explain(text)` returns an Explanation (attention or feature weights)
EXPORT_ONNX = "export-onnx"  # `textcls export` can write an ONNX graph of it (the class is an `OnnxExportable`)
EXPORT_HF = "export-hf"  # a transformers model: `textcls export --format hf` writes a folder `pipeline()` loads
BALANCED_SAMPLER = "balanced-sampler"  # trains with `--sampler balanced`
LONG_TEXT = "long-text"  # reads token windows: `--long-text head-tail|chunk` change what it sees
DISTRIBUTED = "distributed"  # trains across the processes torchrun / accelerate launch start (DDP)
MULTI_LABEL = (
    "multi-label"  # trains on `--multi-label` data: one sigmoid score per label, `multi_label` set when loaded
)
DISTILL = "distill"  # trains on a teacher's soft targets (`textcls distill`): its loss is `training.objectives`
LAYER_LR_DECAY = "layer-lr-decay"  # trains with `--layer-lr-decay`: a learning rate per encoder layer
CHECKPOINT_AVERAGING = "checkpoint-averaging"  # `--average-last N`: the final weights are N checkpoints' mean
SELF_TRAINING = "self-training"  # `--setfit-unlabeled`: the head self-trains on unlabelled texts
# Every capability a family may declare (its `capabilities` is a subset).
CAPABILITIES = frozenset(
    {
        PREDICT,
        EXPLAIN,
        EXPORT_ONNX,
        EXPORT_HF,
        BALANCED_SAMPLER,
        LONG_TEXT,
        DISTRIBUTED,
        MULTI_LABEL,
        DISTILL,
        LAYER_LR_DECAY,
        CHECKPOINT_AVERAGING,
        SELF_TRAINING,
    }
)
# Every family weighs its loss by `--class-weights`, so that needs no capability.
# Options that multi-label training does not take, with why (TrainConfig field -> (its plain value, reason)).
NOT_WITH_MULTI_LABEL = {
    "class_weights": ("none", "the weights are per class of a softmax, and a multi-label text has several"),
    "sampler": ("none", "balanced draws need one class per row, and a multi-label text has several"),
    "setfit_unlabeled": (None, "a pseudo-label is a text's one most likely class, and a multi-label text has several"),
}
# What the families trained by gradient descent search over (their `hyperparameters`).
GRADIENT_HYPERPARAMETERS = ("lr", "epochs", "batch_size", "max_length", "weight_decay", "warmup_ratio")
# TrainConfig field -> (its value that needs nothing, the capability any other value needs)
TRAINING_OPTIONS: dict[str, tuple[Any, str]] = {
    "sampler": ("none", BALANCED_SAMPLER),
    "long_text": ("truncate", LONG_TEXT),
    "layer_lr_decay": (1.0, LAYER_LR_DECAY),
    "average_last": (1, CHECKPOINT_AVERAGING),
    "setfit_unlabeled": (None, SELF_TRAINING),
}


class EpochRow(TypedDict):
    """One dev evaluation during training."""

    epoch: float
    step: int
    train_loss: float | None
    dev_loss: float | None
    dev_accuracy: float
    dev_macro_f1: float | None


class TrainSummary(TypedDict):
    """What `Classifier.fit` reports about its training; written into `metrics.json` under "train"."""

    model: str
    max_length: int | None
    precision: str
    world_size: int
    train_seconds: float
    train_samples_per_second: float | None
    # samples/s over training steps only (no start-up, first steps or evaluation); the torch families report it
    steady_samples_per_second: NotRequired[float | None]
    train_loss: float | None
    global_step: int
    best_checkpoint_metric: float | None
    stopped_by_time_budget: bool
    resumed_from: str | None
    epochs: list[EpochRow]
    # `--average-last N`: the steps of the checkpoints whose mean is the final model
    averaged_checkpoints: NotRequired[list[int]]


class Predictor(abc.ABC):
    """A trained text classifier ready for inference: probabilities over `label_names` for each text."""

    family: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset({PREDICT})
    # Completes "the <family> family ..." when `explain` is not among the capabilities.
    no_explain_reason: ClassVar[str] = "has no attention or feature weights to explain its predictions with"
    # Why a training option is missing from `capabilities`, ending "; " (TrainConfig field -> reason).
    no_option_reason: ClassVar[dict[str, str]] = {}
    # Precisions `load(..., precision=...)` runs inference in; `--backend auto` times each one.
    inference_precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    label_names: list[str]
    max_length: int | None = None
    # True for a model trained with --multi-label: `predict_proba` gives each label's own sigmoid score
    multi_label: bool = False
    # How many `predict_proba` calls a server may run at once: 1 where a call already uses every core
    # (torch splits each operation over them); more where a call spreads its batches over worker
    # threads (the ONNX backends), so the next call's batches can fill the cores a call's last leaves idle.
    concurrent_calls: int = 1

    @abc.abstractmethod
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(label_names)), rows in input order (multi-label: each
        label's sigmoid score, so a row need not sum to 1)."""

    def predict(self, texts: Iterable[str], batch_size: int = 64) -> list[str] | list[list[str]]:
        """Most probable label name per text; multi-label: every label scoring 0.5 or more (a `Run` decides
        with the thresholds tuned on dev instead)."""
        probs = self.predict_proba(check_texts(texts), batch_size=batch_size)
        if self.multi_label:
            return [[self.label_names[i] for i in np.flatnonzero(row >= 0.5)] for row in probs]
        return [self.label_names[i] for i in probs.argmax(axis=1)]

    def num_parameters(self) -> int:
        """Trainable parameter count (0 where the family has no such notion)."""
        return 0

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        """What the model weighs in `text`: a `textcls.reporting.explanations.Explanation` (tokens, weights, attention).

        Families that declare `EXPLAIN` implement this; `layer` and `head` pick the attention map
        where the family has several.

        Example:
            >>> explanation = clf.explain("Stocks fell sharply.")   # doctest: +SKIP
            >>> explanation.words()[:2], explanation.save("out")    # doctest: +SKIP
        """
        raise TextclsError(f"the {self.family} family {self.no_explain_reason}")


class Classifier(Predictor):
    """A model family: a `Predictor` that trains from labelled splits and saves itself without pickle."""

    # The TrainConfig fields that change what this family learns: the ones `textcls tune` searches.
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    # Dev's probabilities for the weights `fit` returned, where its training already scored dev with them
    # exactly as `predict_proba` would: the run takes these instead of predicting dev once more.
    fit_dev_probabilities: np.ndarray | None = None

    @classmethod
    @abc.abstractmethod
    def fit(
        cls,
        train: Split,
        dev: Split,
        label_names: Sequence[str],
        config: TrainConfig,
        checkpoint_dir: Path,
    ) -> tuple[Classifier, TrainSummary]:
        """Train on `train`, evaluating on `dev`; return the model and its `TrainSummary`.

        Families that checkpoint write into `checkpoint_dir` and resume from it when `config.resume`.
        """

    @classmethod
    def check_sources(cls, config: TrainConfig) -> None:  # noqa: B027 - most families read nothing but the data
        """Fail, before anything is written, when what `fit` reads besides the data (a model) cannot be found."""

    @abc.abstractmethod
    def save(self, model_dir: Path) -> None:
        """Write everything needed to rebuild the model into `model_dir` (no pickle)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, model_dir: Path, **options: Any) -> Classifier:
        """Rebuild a classifier written by `save`."""


class OnnxExportable(Protocol):
    """What a classifier whose class declares `EXPORT_ONNX` gives the ONNX exporter (`textcls.inference.onnx`)."""

    tokenizer: Any  # a transformers tokenizer: it makes the graph's inputs, at export and in the ONNX backends
    multi_label: bool

    def onnx_graph(self) -> tuple[nn.Module, list[str]]:
        """The torch module from token tensors (passed in the order of the names returned, the tokenizer's
        names) to logits (batch, classes), in eval mode on the CPU with eager attention; and those names."""
        ...


def check_training_options(cls: type[Classifier], config: TrainConfig, multi_label: bool = False) -> None:
    """A `ConfigError` naming the option when `config` (on `multi_label` data or not) asks family `cls` for
    something it does not declare, or for an option multi-label training does not take."""
    problem = training_option_problem(cls, config, multi_label)
    if problem is not None:
        raise ConfigError(problem)


def training_option_problem(cls: type[Classifier], config: TrainConfig, multi_label: bool = False) -> str | None:
    """What `check_training_options` would refuse, as its message, or None (`compare` skips a family with it)."""
    if multi_label and MULTI_LABEL not in cls.capabilities:
        able = [family for family in FAMILIES if MULTI_LABEL in family_class(family).capabilities]
        return (
            f"multi_label: the {cls.family} family does not train on --multi-label data (families that do: "
            f"{', '.join(able)}); pass --family with one of them"
        )
    for name, (plain, reason) in NOT_WITH_MULTI_LABEL.items():
        value = getattr(config, name)
        if multi_label and value != plain:
            flag = "--" + name.replace("_", "-")
            return f"{name}: --multi-label training does not take {flag} {value} ({reason}); drop {flag}"
    for name, (plain, capability) in TRAINING_OPTIONS.items():
        value = getattr(config, name)
        if value != plain and capability not in cls.capabilities:
            able = [family for family in FAMILIES if capability in family_class(family).capabilities]
            flag = "--" + name.replace("_", "-")
            return (
                f"{name}: the {cls.family} family does not support {flag} {value} ({cls.no_option_reason.get(name, '')}"
                f"families that do: {', '.join(able)}); drop {flag} or pass --family with one of them"
            )
    return None


def check_processes(cls: type[Classifier], processes: int) -> None:
    """A `ConfigError` when `processes` (started by torchrun / accelerate launch) are more than one and
    family `cls` trains in one: each would train on every row and write the same run folder."""
    if processes > 1 and DISTRIBUTED not in cls.capabilities:
        able = [family for family in FAMILIES if DISTRIBUTED in family_class(family).capabilities]
        raise ConfigError(
            f"family: the {cls.family} family trains in one process, but {processes} were started (torchrun / "
            "accelerate launch); run `textcls train` without a launcher, or pass --family with one that trains "
            f"across processes: {', '.join(able)}"
        )


def family_class(name: str) -> type[Classifier]:
    """The `Classifier` subclass implementing family `name` (imported on first use)."""
    if name not in FAMILIES:
        raise RunFolderError(f"unknown model family {name!r}; expected one of {list(FAMILIES)}")
    module_name, class_name = FAMILIES[name].target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if cls.family != name:  # the registry and the class must agree
        raise RuntimeError(f"{FAMILIES[name].target} declares family {cls.family!r}, registered as {name!r}")
    return cls


def families_that(capability: str) -> list[str]:
    """The registered families whose class declares `capability` (imports every family module)."""
    return [name for name in FAMILIES if capability in family_class(name).capabilities]
