"""Frozen, validated configuration for each command.

Every field carries its help text in ``metadata["help"]``; the CLI reuses it. Values are checked
once, here, so the rest of the library can trust them. This module reads no files and does not
import torch.

Example:
    >>> TrainConfig(epochs=2, lr=5e-5).epochs
    2
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from textcls.errors import ConfigError, UnknownOptionError
from textcls.families import DEFAULT_FAMILY, FAMILIES, FAST_FAMILY

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

AnyConfig = TypeVar("AnyConfig", bound="DataclassInstance")  # a config dataclass

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
FRESH_HEADS = ("data", "random")  # how `pretrain` starts an MLM head the encoder lacks
AUTO_BACKEND = "auto"  # the fastest agreeing backend, measured once per machine (`textcls.inference.auto`)
ENGINES = ("torch", "onnx", "onnx-int8")  # the backends that run a model
BACKENDS = (AUTO_BACKEND, *ENGINES)
# Texts per model call where none is given, for sorted batches on a CPU: torch is as fast at 16 as at 64;
# ONNX Runtime is fastest in small batches, offline and serving (a micro-batch of random lengths pads less
# in small chunks). Measured by benchmarks/inference.py and benchmarks/serve_load.py.
BACKEND_BATCH_SIZE = {"torch": 64, "onnx": 8, "onnx-int8": 8}
DEFAULT_HUB_DATASET = "fancyzhx/ag_news"
# Training batches are padded to a multiple of this many tokens (tensor cores, few compiled shapes).
PAD_MULTIPLE = 8
# TrainConfig fields whose default depends on the device training runs on (`TrainConfig.on_device`).
DEVICE_DEFAULTS = ("batch_size", "batch_tokens", "lr")
# What `--metric` may choose the best epoch and early stopping by (`evaluation.headline_metrics` computes them).
METRICS = ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "micro_f1")
SAMPLERS = ("none", "balanced")
CLASS_WEIGHT_MODES = ("none", "balanced")  # or a JSON object of label name -> weight, inline or in a .json file
LONG_TEXT_STRATEGIES = ("truncate", "head-tail", "chunk")
SETFIT_HEADS = ("logistic", "differentiable")
POOLINGS = ("mean", "max")
REPORT_TO = ("none", "tensorboard", "mlflow")  # where `--report-to` sends a training run (`training.tracking`)


def column_names(values: str | Sequence[str]) -> tuple[str, ...]:
    """Column names from a name, a list of names, or comma-joined names ("title,description").

    Example:
        >>> column_names(["title,description", " body "])
        ('title', 'description', 'body')
    """
    given = [values] if isinstance(values, str) else values
    return tuple(name.strip() for value in given for name in str(value).split(",") if name.strip())


def report_services(value: str | Sequence[str]) -> tuple[str, ...]:
    """`--report-to` as the services to report to, in the order given: a name, names, or comma-joined names;
    none (alone) reports nowhere. A `ConfigError` names an unknown one or none beside another.

    Example:
        >>> report_services(["mlflow,tensorboard"]), report_services("none")
        (('mlflow', 'tensorboard'), ())
    """
    fix = f"pass --report-to with one or more of {', '.join(REPORT_TO[1:])} (repeated or comma-joined), or none"
    names = tuple(dict.fromkeys(name.lower() for name in column_names(value)))
    unknown = [name for name in names if name not in REPORT_TO]
    if unknown:
        raise ConfigError(f"report_to: expected names from {REPORT_TO}, found {', '.join(unknown)}; {fix}")
    if "none" in names and len(names) > 1:
        raise ConfigError(f"report_to: expected none alone, found it with {', '.join(names)}; {fix}")
    return tuple(name for name in names if name != "none")


REPORT_TO_HELP = (
    "Where to log parameters, the training loss, dev metrics and the run's files: none, tensorboard (event files "
    "in RUN/tensorboard/) or mlflow (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here); repeat the flag or join "
    "names with commas for several."
)


def _help(text: str, own_check: bool = False, **kwargs: Any) -> Any:
    """A field with its help text; `own_check`: its value may be of several types, which `__post_init__` checks."""
    return field(metadata={"help": text, "own_check": own_check}, **kwargs)


# What a field's declared type accepts (a --config file or the Python API can hand "300" for 300): bool is
# not an int here, a tuple of names may come as a list or one comma-joined string.
_ACCEPTS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "int": ("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "float": ("a number", lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)),
    "str": ("a string", lambda value: isinstance(value, str)),
    "bool": ("true or false", lambda value: isinstance(value, bool)),
    "tuple[str, ...]": (
        "a list of names",
        lambda value: (
            isinstance(value, str)
            or (isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value))
        ),
    ),
}
SEED_RANGE = (0, 2**32 - 1)  # what numpy's and scikit-learn's seeds take


def check_fields(config: DataclassInstance) -> None:
    """Raise `ConfigError` naming the first field whose value is not of its declared type, or a seed
    out of the range numpy and scikit-learn take.

    Example:
        >>> DataConfig(max_train_samples="300")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        textcls.errors.ConfigError: max_train_samples: expected an integer, found '300' (str); write it ...
    """
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        declared = spec.type.removesuffix(" | None")
        if (value is None and spec.type.endswith(" | None")) or spec.metadata.get("own_check"):
            continue
        expected, accepts = _ACCEPTS[declared]
        if not accepts(value):
            flag = flag_name(spec.name)
            example = f"{flag} or --no-{flag[2:]}" if declared == "bool" else f"{flag} VALUE"
            unquote = "write it without quotes in a --config file, or " if isinstance(value, str) else ""
            raise ConfigError(
                f"{spec.name}: expected {expected}, found {value!r} ({type(value).__name__}); {unquote}pass {example}"
            )
    if hasattr(config, "seed"):
        _check(SEED_RANGE[0] <= config.seed <= SEED_RANGE[1], "seed", f"an integer in {list(SEED_RANGE)}", config.seed)


# Flags named otherwise than their field. Flag names are contracts: scripts and docs use them.
FLAG_NAMES = {"train_file": "--train", "dev_file": "--dev", "test_file": "--test", "text_columns": "--text-column"}


def flag_name(field_name: str) -> str:
    """The command-line flag of a config field.

    Example:
        >>> flag_name("max_train_samples"), flag_name("train_file")
        ('--max-train-samples', '--train')
    """
    return FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def _check(condition: bool, name: str, expected: str, found: Any) -> None:
    if not condition:
        flag = flag_name(name)
        raise ConfigError(f"{name}: expected {expected}, found {found!r}; pass {flag} with a value in range")


@dataclass(frozen=True)
class DataConfig:
    """Where the rows come from and how to read them."""

    data: str | None = _help(
        "Hub dataset id, a folder with train/dev|validation/test files, or None for "
        f"'{DEFAULT_HUB_DATASET}' from the hub (unless --train is given).",
        default=None,
    )
    train_file: str | None = _help("Explicit training file (CSV, TSV, JSONL or Parquet).", default=None)
    dev_file: str | None = _help("Explicit dev/validation file.", default=None)
    test_file: str | None = _help("Explicit test file.", default=None)
    text_columns: tuple[str, ...] | None = _help(
        "Columns joined with a space to form the text; default: 'text', else 'title'+'description', "
        "else 'sentence' or 'content'.",
        default=None,
    )
    label_column: str = _help("Column holding the label (an integer or a name).", default="label")
    label_names_file: str | None = _help(
        "File with one label name per line, in label-index order (default: classes.txt beside the data).",
        default=None,
    )
    label_base: int | None = _help(
        "Whether integer labels index the label names from 0 or from 1; default: from the labels (a 0 means 0, "
        "the class count N means 1, integers that are all names map by name), else for evaluate as the run's "
        "training data, else 0 with a warning.",
        default=None,
    )
    dev_fraction: float = _help("Share of train carved out as a stratified dev split when there is none.", default=0.1)
    seed: int = _help("Seed for the dev split and sub-sampling.", default=42)
    skip_bad_rows: bool = _help("Skip bad rows with a counted warning instead of failing.", default=False)
    max_train_samples: int | None = _help("Use at most this many training rows (seeded sample).", default=None)
    max_eval_samples: int | None = _help("Use at most this many dev/test rows (seeded sample).", default=None)
    allow_new_labels: bool = _help(
        "Accept dev/test labels that train lacks (a warning instead of an error).", default=False
    )
    max_text_chars: int = _help(
        "Longest text accepted, in characters; a longer row is a bad row (raise it for long documents).",
        default=10_000_000,
    )
    multi_label: bool = _help(
        "A text may carry several labels: a label cell holds names separated by --label-separator, or a JSON "
        "list in JSONL; the model scores each label on its own (sigmoid) and thresholds tuned on dev decide.",
        default=False,
    )
    label_separator: str = _help("--multi-label: what separates the names in a label cell.", default="|")

    def __post_init__(self) -> None:
        check_fields(self)
        _check(
            len(self.label_separator) >= 1 and not self.label_separator.isspace(),
            "label_separator",
            "a non-blank separator such as '|' or ';'",
            self.label_separator,
        )
        _check(0.0 < self.dev_fraction < 0.5, "dev_fraction", "a fraction in (0, 0.5)", self.dev_fraction)
        _check(self.label_base in (None, 0, 1), "label_base", "0 or 1", self.label_base)
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            _check(value is None or value >= 1, name, "a positive row count", value)
        _check(self.max_text_chars >= 1, "max_text_chars", "a positive character count", self.max_text_chars)
        if self.text_columns is not None:
            columns = column_names(self.text_columns)
            _check(len(columns) > 0, "text_columns", "at least one column name", self.text_columns)
            object.__setattr__(self, "text_columns", columns)
        if self.data is not None and self.train_file is not None:
            raise ConfigError(
                f"data and train_file both set (found --data {self.data!r} and --train {self.train_file!r}); "
                "pass either a dataset (--data) or explicit files (--train/--dev/--test)"
            )


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune. Defaults are the fast path on a small CPU (measured by benchmarks/train_throughput.py)."""

    family: str = _help(f"Model family: one of {', '.join(FAMILIES)}.", default=DEFAULT_FAMILY)
    model: str | None = _help(
        "Hub id or local folder of a Hugging Face encoder; default: the embedded all-MiniLM-L6-v2.", default=None
    )
    # epochs and max_length: None when built means the family's default, filled in by __post_init__
    epochs: float = _help("Training epochs (may be fractional); default: the family's (pretrained: 3).", default=None)
    batch_size: int | None = _help(
        "Texts per training step (per device), a fixed count; default: the family's on a CPU (pretrained: 32), "
        "while a GPU cuts batches by --batch-tokens.",
        default=None,
    )
    batch_tokens: int | None = _help(
        "Token budget per training batch (texts x padded length): texts are grouped by length, so short ones "
        "make large batches and long ones small; default: none on a CPU, the family's on a GPU (16384 for "
        "pretrained, 8192 for the others).",
        default=None,
    )
    eval_batch_size: int = _help(
        "Per-device evaluation batch size on a CPU (a GPU evaluates in token budgets of 4x --batch-tokens).",
        default=128,
    )
    lr: float | None = _help(
        "Peak learning rate (AdamW), after linear warm-up, then linear decay; default: the family's (pretrained: "
        "1e-4, and 2e-4 for a GPU's default token budget).",
        default=None,
    )
    weight_decay: float = _help("AdamW weight decay.", default=0.01)
    warmup_ratio: float = _help("Fraction of steps spent warming up the learning rate.", default=0.06)
    max_length: int = _help("Maximum tokens per text, clamped to the model's limit; default: 128.", default=None)
    precision: str = _help(
        "fp32, bf16, fp16 or auto (bf16 where the CPU/GPU supports it, fp16 on older GPUs).", default="auto"
    )
    group_by_length: bool = _help("Batch texts of similar length together (less padding).", default=True)
    early_stopping_patience: int = _help("Stop after this many evaluations without improvement; 0 = never.", default=2)
    time_budget: float | None = _help(
        "Stop training cleanly after this many minutes, then save and evaluate.", default=None
    )
    seed: int = _help("Seed for model initialisation and batch order.", default=42)
    resume: bool = _help("Resume from the last checkpoint of an interrupted run in the same --out.", default=False)
    trust_remote_code: bool = _help(
        "Allow model code from the hub to run (off: only built-in architectures).", default=False
    )
    num_workers: int | None = _help(
        "DataLoader worker processes preparing batches ahead; default: 2 on a GPU, 0 on a CPU.", default=None
    )
    compile: bool = _help(
        "torch.compile the model (GPU only): faster steps, but compiling takes tens of seconds, so it pays only on "
        "long runs (measured by benchmarks/gpu_settings.py). Ignored with a warning on a CPU, where it is no faster "
        "(benchmarks/cpu_compile.py).",
        default=False,
    )
    logging_steps: int = _help("Log the training loss every this many steps.", default=50)
    class_weights: str = _help(
        "Loss weight per class: none, balanced (rows / (classes x the class's rows), as scikit-learn), or a JSON "
        'object of label name -> weight, inline (\'{"World": 1, "Sports": 4}\') or a .json file; a label left '
        "out weighs 1; each weight from 0.001 to 1000.",
        default="none",
    )
    sampler: str = _help(
        "none, or balanced: each epoch draws its rows with replacement so every class is drawn equally often "
        "(torch families).",
        default="none",
    )
    metric: str | None = _help(
        f"Dev metric that picks the best epoch and drives early stopping: one of {', '.join(METRICS)}; default: "
        "micro_f1 for --multi-label data, else macro_f1 when the train labels are skewed (largest class >= 1.5x "
        "the smallest), else accuracy (for --multi-label, accuracy is subset accuracy).",
        default=None,
    )
    long_text: str = _help(
        "Texts longer than --max-length tokens: truncate (keep the start), head-tail (the first quarter and the "
        "last three quarters of the window, Sun et al. 2019), or chunk (overlapping windows whose logits are "
        "pooled, in training and inference alike).",
        default="truncate",
    )
    stride: int | None = _help(
        "chunk: tokens shared by consecutive windows; default: a quarter of --max-length.", default=None
    )
    pooling: str = _help("chunk: how the windows' logits make the text's, mean or max.", default="mean")
    report_to: tuple[str, ...] = _help(REPORT_TO_HELP, default=())
    setfit_iterations: int | None = _help(
        "setfit: contrastive pairs drawn per labelled row and pass, one similar and one dissimilar each, so "
        "2 x rows x this many pairs an epoch; default: 10 for the setfit family.",
        default=None,
    )
    setfit_head: str = _help(
        "setfit: the head on the embeddings: logistic (scikit-learn logistic regression, one-vs-rest for "
        "--multi-label) or differentiable (a linear layer trained end to end with the encoder).",
        default="logistic",
    )
    setfit_unlabeled: str | None = _help(
        "setfit: unlabelled texts the logistic head self-trains on once the encoder is tuned: a .txt file (one text "
        "a line), a folder of .txt files, or a table or folder `train` reads (its labels ignored). Each round the "
        "head labels them and is fitted again on the labelled rows plus the most confident share of each class's "
        "texts, a larger share each round, all of them in the last.",
        default=None,
    )
    setfit_self_training_rounds: int | None = _help(
        "setfit with --setfit-unlabeled: self-training rounds; round r of R adds the r/R most confident share of "
        "each class's unlabelled texts; default: 5.",
        default=None,
    )
    setfit_student_epochs: float | None = _help(
        "setfit with --setfit-unlabeled: after self-training, epochs of end-to-end training of the encoder and head "
        "on the labelled rows (their labels) and the unlabelled texts (the self-trained head's class probabilities "
        "as soft targets), with dropout on: the model is its own student; default: none.",
        default=None,
    )
    layer_lr_decay: float = _help(
        "pretrained: layer-wise learning-rate decay: the head and the top encoder layer learn at --lr, each layer "
        "below at lr x decay^depth (depth 1 just below the top), the embeddings lowest; 1.0 = off.",
        default=1.0,
    )
    average_last: int = _help(
        "pretrained: the final model is the mean of the weights of the last N epoch-end checkpoints instead of "
        "the best epoch's; 1 = off.",
        default=1,
    )

    def __post_init__(self) -> None:
        if isinstance(self.family, str):  # any other type: check_fields names the field
            _check(self.family in FAMILIES, "family", f"one of {tuple(FAMILIES)}", self.family)
            for name, value in FAMILIES[self.family].defaults.items():
                if getattr(self, name) is None and name not in DEVICE_DEFAULTS:  # those wait for `on_device`
                    object.__setattr__(self, name, value)
        check_fields(self)
        _check(self.precision in PRECISIONS, "precision", f"one of {PRECISIONS}", self.precision)
        _check(math.isfinite(self.epochs) and self.epochs > 0, "epochs", "a positive number", self.epochs)
        _check(self.batch_size is None or self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        _check(self.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1", self.eval_batch_size)
        _check(self.lr is None or 0.0 < self.lr < 1.0, "lr", "a learning rate in (0, 1)", self.lr)
        _check(0.0 <= self.weight_decay < 1.0, "weight_decay", "a value in [0, 1)", self.weight_decay)
        _check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "a fraction in [0, 1)", self.warmup_ratio)
        _check(8 <= self.max_length <= 8192, "max_length", "an integer in [8, 8192]", self.max_length)
        _check(
            self.early_stopping_patience >= 0,
            "early_stopping_patience",
            "an integer >= 0",
            self.early_stopping_patience,
        )
        _check(
            self.time_budget is None or self.time_budget > 0,
            "time_budget",
            "a positive number of minutes",
            self.time_budget,
        )
        _check(self.num_workers is None or self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers)
        _check(self.logging_steps >= 1, "logging_steps", "an integer >= 1", self.logging_steps)
        _check_class_weights(self.class_weights)
        _check(self.sampler in SAMPLERS, "sampler", f"one of {SAMPLERS}", self.sampler)
        _check(self.metric is None or self.metric in METRICS, "metric", f"one of {METRICS}", self.metric)
        _check(self.long_text in LONG_TEXT_STRATEGIES, "long_text", f"one of {LONG_TEXT_STRATEGIES}", self.long_text)
        _check(self.pooling in POOLINGS, "pooling", f"one of {POOLINGS}", self.pooling)
        object.__setattr__(self, "report_to", report_services(self.report_to))
        _check(
            self.setfit_iterations is None or self.setfit_iterations >= 1,
            "setfit_iterations",
            "an integer >= 1",
            self.setfit_iterations,
        )
        _check(self.setfit_head in SETFIT_HEADS, "setfit_head", f"one of {SETFIT_HEADS}", self.setfit_head)
        _check(
            self.setfit_unlabeled is None or bool(str(self.setfit_unlabeled).strip()),
            "setfit_unlabeled",
            "a file or folder of unlabelled texts",
            self.setfit_unlabeled,
        )
        if self.setfit_unlabeled is not None and self.setfit_head != "logistic":
            raise ConfigError(
                f"setfit_head: --setfit-unlabeled self-trains the logistic head, found --setfit-head "
                f"{self.setfit_head}; drop one of them"
            )
        _check(
            self.setfit_self_training_rounds is None or self.setfit_self_training_rounds >= 1,
            "setfit_self_training_rounds",
            "an integer >= 1",
            self.setfit_self_training_rounds,
        )
        _check(
            self.setfit_student_epochs is None
            or (math.isfinite(self.setfit_student_epochs) and self.setfit_student_epochs > 0),
            "setfit_student_epochs",
            "a number of epochs > 0",
            self.setfit_student_epochs,
        )
        for name, what in (
            ("setfit_self_training_rounds", "the rounds self-train"),
            ("setfit_student_epochs", "the student trains"),
        ):
            if getattr(self, name) is not None and self.setfit_unlabeled is None:
                raise ConfigError(
                    f"{name}: {what} on --setfit-unlabeled texts, and none were given; pass --setfit-unlabeled or "
                    f"drop {flag_name(name)}"
                )
        _check(
            math.isfinite(self.layer_lr_decay) and 0.0 < self.layer_lr_decay <= 1.0,
            "layer_lr_decay",
            "a factor in (0, 1] (1.0 = off)",
            self.layer_lr_decay,
        )
        _check(self.average_last >= 1, "average_last", "a checkpoint count >= 1 (1 = off)", self.average_last)
        if self.long_text != "chunk" and self.stride is not None:
            raise ConfigError(
                f"stride: expected no value unless long_text is 'chunk', found --stride {self.stride} with --long-text "
                f"{self.long_text}; pass --long-text chunk or drop --stride"
            )
        if self.long_text == "chunk" and self.stride is None:
            object.__setattr__(self, "stride", self.max_length // 4)
        _check(
            self.stride is None or 0 <= self.stride <= self.max_length // 2,
            "stride",
            f"an overlap in [0, {self.max_length // 2}] tokens (half of max_length {self.max_length})",
            self.stride,
        )
        longest = self.padded_max_length
        _check(
            self.batch_tokens is None or self.batch_tokens >= longest,
            "batch_tokens",
            f"at least {longest} tokens (max_length {self.max_length} rounded up to a multiple of {PAD_MULTIPLE}), "
            "so the longest text fits in a batch",
            self.batch_tokens,
        )
        if self.batch_size is not None and self.batch_tokens is not None:
            raise ConfigError(
                f"batch_size and batch_tokens both set (found --batch-size {self.batch_size} and --batch-tokens "
                f"{self.batch_tokens}); pass --batch-size for a fixed count of texts or --batch-tokens for a token "
                "budget"
            )

    @property
    def padded_max_length(self) -> int:
        """`max_length` rounded up to a multiple of `PAD_MULTIPLE`: the longest a padded batch row can be."""
        return -(-self.max_length // PAD_MULTIPLE) * PAD_MULTIPLE

    def on_device(self, gpu: bool, workers: int = 0) -> TrainConfig:
        """This config with the device's defaults for what was left unset: on a CPU the family's batch size
        and lr; on a GPU its token budget and the lr scaled for those larger batches (an explicit
        `batch_size` or `batch_tokens` keeps the family's lr); `workers` DataLoader processes; compile only on
        a GPU, and only when asked.

        Example:
            >>> TrainConfig().on_device(gpu=False).batch_size, TrainConfig().on_device(gpu=True).batch_tokens
            (32, 16384)
        """
        spec = FAMILIES[self.family]
        values: dict[str, Any] = {"compile": self.compile and gpu}
        if self.num_workers is None:
            values["num_workers"] = workers
        if self.batch_size is None and self.batch_tokens is None:
            if gpu and "batch_tokens" in spec.gpu_defaults:
                values["batch_tokens"] = max(spec.gpu_defaults["batch_tokens"], self.padded_max_length)
                if self.lr is None:
                    values["lr"] = spec.gpu_defaults.get("lr", spec.defaults["lr"])
            else:
                values["batch_size"] = spec.defaults["batch_size"]
        if self.lr is None and "lr" not in values:
            values["lr"] = spec.defaults["lr"]
        return dataclasses.replace(self, **values)


# Class weights are relative to 1 (a label left out). Past 1000x one class's loss swamps every other class's
# (the model learns to predict it alone) and a bf16/fp16 loss overflows: such weights are a mistake, not a choice.
MAX_CLASS_WEIGHT = 1000.0


def _check_class_weights(value: str) -> None:
    """none, balanced, a .json path (read with the data, `textcls.data.imbalance`) or an inline JSON object of
    label name -> positive weight; the names are checked against the labels once the data is read."""
    if value in CLASS_WEIGHT_MODES or value.endswith(".json"):
        return
    fix = "pass --class-weights none, balanced, a .json file or a JSON object like '{\"Sports\": 4}'"
    try:
        weights = json.loads(value)
    except ValueError as error:
        raise ConfigError(
            f"class_weights: expected none, balanced or a JSON object, found {value!r} ({error}); {fix}"
        ) from error
    problem = class_weights_problem(weights)
    if problem is not None:
        raise ConfigError(f"class_weights{problem}; {fix}")


def class_weights_problem(weights: Any) -> str | None:
    """What is wrong with parsed class weights, to follow where they came from (": expected ..." or
    ", field 'X': expected ..."), or None when they are an object of label name -> positive number.

    Example:
        >>> class_weights_problem({"Sports": -1})
        ", field 'Sports': expected a positive number, found -1"
    """
    if not isinstance(weights, dict) or not weights:
        return f": expected a JSON object of label name -> weight, found {type(weights).__name__} {weights!r}"[:120]
    for name, weight in weights.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not (math.isfinite(weight) and weight > 0)
        ):
            return f", field {name!r}: expected a positive number, found {weight!r}"
        if not 1 / MAX_CLASS_WEIGHT <= weight <= MAX_CLASS_WEIGHT:
            return (
                f", field {name!r}: expected a weight from {1 / MAX_CLASS_WEIGHT:g} to {MAX_CLASS_WEIGHT:g} "
                f"(relative to 1, the weight of a label left out), found {weight!r}"
            )
    return None


def parse_threshold(value: str) -> float | dict[str, float]:
    """`--threshold` as one number or a label name -> number object; a `ConfigError` when it is neither.

    Example:
        >>> parse_threshold("0.4"), parse_threshold('{"Sports": 0.3}')
        (0.4, {'Sports': 0.3})
    """
    problem = threshold_problem(value)
    if problem is not None:
        raise ConfigError(f"threshold{problem}; pass --threshold 0.5 or '{{\"Sports\": 0.3}}'")
    parsed = json.loads(value)
    return float(parsed) if not isinstance(parsed, dict) else {name: float(t) for name, t in parsed.items()}


def threshold_problem(value: str) -> str | None:
    """What is wrong with a `--threshold` value (": expected ..."), or None."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return f": expected a number or a JSON object, found {value!r}"
    items = parsed.items() if isinstance(parsed, dict) and parsed else [("", parsed)]
    for name, threshold in items:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            where = f", field {name!r}" if name else ""
            return f"{where}: expected a number in (0, 1), found {threshold!r}"
    return None


@dataclass(frozen=True)
class PretrainConfig:
    """How to continue an encoder's masked-word pre-training on unlabelled text (`textcls pretrain`)."""

    data: str = _help(  # None (the default) is refused: a text source is required
        "Unlabelled text: a .txt file (one text a line), a folder of .txt files, a table or a folder that "
        "`train` reads (its train file; labels are ignored), or a hub dataset id (its train split).",
        default=None,
    )
    text_columns: tuple[str, ...] | None = _help("Text columns of a table, as in `train`.", default=None)
    model: str | None = _help(
        "Hub id or local folder of a Hugging Face encoder; default: the embedded all-MiniLM-L6-v2.", default=None
    )
    epochs: float = _help("Passes over the text (may be fractional).", default=1.0)
    batch_size: int = _help("Texts per training step.", default=32)
    eval_batch_size: int = _help("Texts per step when scoring the held-out text.", default=64)
    # 2e-4: on AG News, MiniLM ends with a lower held-out pseudo-perplexity than at 1e-4
    lr: float = _help("Peak learning rate (AdamW), after linear warm-up, then linear decay.", default=2e-4)
    weight_decay: float = _help("AdamW weight decay.", default=0.01)
    warmup_ratio: float = _help("Fraction of steps spent warming up the learning rate.", default=0.06)
    max_length: int = _help("Maximum tokens per text, clamped to the model's limit.", default=128)
    mlm_probability: float = _help("Share of tokens masked for prediction (BERT: 0.15).", default=0.15)
    whole_word_masking: bool = _help(
        "Mask every piece of a word together instead of pieces alone (transformers then always uses [MASK], "
        "never a random token).",
        default=False,
    )
    fresh_head: str = _help(
        "How an encoder shipped without an MLM head starts its new one: 'data' (the transform as the identity, "
        "the vocabulary bias as each token's log share of the text) or 'random' (as transformers draws it).",
        default="data",
    )
    holdout_fraction: float = _help(
        "Share of the texts held out (seeded) to score the model before and after.", default=0.05
    )
    pseudo_perplexity_texts: int = _help(
        "Held-out texts scored by pseudo-perplexity (one forward pass per token, so it is capped).", default=200
    )
    precision: str = _help("fp32, bf16, fp16 or auto (bf16 where the CPU/GPU supports it).", default="auto")
    time_budget: float | None = _help("Stop training cleanly after this many minutes, then save.", default=None)
    seed: int = _help("Seed for the hold-out split, masking and batch order.", default=42)
    resume: bool = _help(
        "Resume from the last complete checkpoint of an interrupted run in the same --out.", default=False
    )
    trust_remote_code: bool = _help(
        "Allow model code from the hub to run (off: only built-in architectures).", default=False
    )
    logging_steps: int = _help("Log the training loss every this many steps.", default=50)
    report_to: tuple[str, ...] = _help(REPORT_TO_HELP, default=())

    def __post_init__(self) -> None:
        _check(bool(self.data), "data", "a text source", self.data)  # before check_fields: it names what is missing
        check_fields(self)
        if self.text_columns is not None:
            object.__setattr__(self, "text_columns", column_names(self.text_columns))
        object.__setattr__(self, "report_to", report_services(self.report_to))
        _check(math.isfinite(self.epochs) and self.epochs > 0, "epochs", "a positive number", self.epochs)
        for name in ("batch_size", "eval_batch_size", "logging_steps"):
            _check(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        _check(0.0 < self.lr < 1.0, "lr", "a learning rate in (0, 1)", self.lr)
        _check(0.0 <= self.weight_decay < 1.0, "weight_decay", "a value in [0, 1)", self.weight_decay)
        _check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "a fraction in [0, 1)", self.warmup_ratio)
        _check(8 <= self.max_length <= 8192, "max_length", "an integer in [8, 8192]", self.max_length)
        _check(0.0 < self.mlm_probability < 1.0, "mlm_probability", "a fraction in (0, 1)", self.mlm_probability)
        _check(self.fresh_head in FRESH_HEADS, "fresh_head", f"one of {FRESH_HEADS}", self.fresh_head)
        _check(0.0 < self.holdout_fraction < 0.5, "holdout_fraction", "a fraction in (0, 0.5)", self.holdout_fraction)
        _check(
            self.pseudo_perplexity_texts >= 0,
            "pseudo_perplexity_texts",
            "an integer >= 0",
            self.pseudo_perplexity_texts,
        )
        _check(self.precision in PRECISIONS, "precision", f"one of {PRECISIONS}", self.precision)
        _check(
            self.time_budget is None or self.time_budget > 0,
            "time_budget",
            "a positive number of minutes",
            self.time_budget,
        )


@dataclass(frozen=True)
class PredictConfig:
    """How to run a trained classifier over texts."""

    backend: str = _help(
        "Inference engine: auto (the fastest this machine runs whose labels agree with torch fp32, timed once "
        "and remembered per machine in RUN/backends.json), torch (every family), onnx or onnx-int8 (pretrained "
        "and setfit runs; auto exports them on first use, or run `textcls export`).",
        default=AUTO_BACKEND,
    )
    batch_size: int | None = _help(
        "Texts per model call, sorted by length first; default: the backend's fastest (torch 64, onnx 8).", default=None
    )
    max_length: int | None = _help("Override the run's max tokens per text.", default=None)
    threads: int | None = _help(
        "CPU threads for the model; default: one per core. onnx backends run that many batches at once, one "
        "thread each.",
        default=None,
    )
    spin: bool = _help(
        "onnx backends: allow ONNX Runtime's intra-op threads to busy-wait between calls (`textcls serve` turns it "
        "off unless given). They run each batch on one ONNX Runtime thread, with no pool to spin, so this changes "
        "nothing measurable; it is accepted so that scripts passing it (`textcls serve --spin`) work.",
        default=True,
    )
    precision: str | None = _help(
        "torch backend: fp32, or bf16 autocast (faster on CPUs with bf16 units), or auto (bf16 where supported); "
        "default: fp32 under --backend torch, timed against bf16 under --backend auto (a precision given there "
        "narrows the torch candidates to it).",
        default=None,
    )
    threshold: str | None = _help(
        "Multi-label runs: the score from which a label is predicted, one number for every label (0.5) or a "
        "JSON object of label name -> threshold ('{\"Sports\": 0.3}', the rest keep theirs); default: the "
        "thresholds tuned per label on dev and saved in the run.",
        default=None,
        own_check=True,  # the Python API also takes a number or a dict
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool):
            object.__setattr__(self, "threshold", str(self.threshold))
        _check(
            self.threshold is None or threshold_problem(self.threshold) is None,
            "threshold",
            "a number in (0, 1) or a JSON object of label name -> number in (0, 1)",
            self.threshold,
        )
        _check(self.backend in BACKENDS, "backend", f"one of {BACKENDS}", self.backend)
        if self.batch_size is None and self.backend != AUTO_BACKEND:  # auto: the chosen backend's
            object.__setattr__(self, "batch_size", BACKEND_BATCH_SIZE[self.backend])
        _check(self.batch_size is None or self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        _check(self.max_length is None or self.max_length >= 8, "max_length", "an integer >= 8", self.max_length)
        _check(self.threads is None or self.threads >= 1, "threads", "an integer >= 1", self.threads)
        _check(self.precision in (None, "auto", "fp32", "bf16"), "precision", "one of auto, fp32, bf16", self.precision)


@dataclass(frozen=True)
class ServeConfig:
    """How `textcls serve` listens, batches and limits requests."""

    host: str = _help("Address to bind; the default answers this machine only.", default="127.0.0.1")
    port: int = _help("TCP port.", default=8000)
    token: str | None = _help(
        "Require 'Authorization: Bearer TOKEN' on /v1/* (default: the TEXTCLS_TOKEN environment variable, "
        "else no auth).",
        default=None,
    )
    max_texts: int = _help("Most texts in one request (more: 422).", default=256)
    max_text_chars: int = _help("Longest text accepted, in characters (longer: 422).", default=20_000)
    max_body_bytes: int = _help("Largest request body (larger: 413).", default=2_000_000)
    max_batch: int = _help("Most texts the micro-batcher gives the model in one call.", default=64)
    max_wait_ms: float = _help("How long the first request of a batch waits for others to join it.", default=5.0)
    max_queue: int = _help("Requests waiting for the model before new ones get 503.", default=1024)
    graceful_timeout: float = _help(
        "Seconds a shutdown may take: queued requests are answered (oldest first) until then, the rest get 503.",
        default=10.0,
    )
    access_log: bool = _help("Log one line per request to stderr.", default=True)

    def __post_init__(self) -> None:
        check_fields(self)
        _check(1 <= self.port <= 65535, "port", "a TCP port in [1, 65535]", self.port)
        _check(self.token is None or len(self.token) >= 8, "token", "at least 8 characters", "<hidden>")
        for name in ("max_texts", "max_text_chars", "max_body_bytes", "max_batch", "max_queue"):
            _check(getattr(self, name) >= 1, name, "an integer >= 1", getattr(self, name))
        _check(0.0 <= self.max_wait_ms <= 1000.0, "max_wait_ms", "milliseconds in [0, 1000]", self.max_wait_ms)
        _check(self.graceful_timeout >= 0, "graceful_timeout", "seconds >= 0", self.graceful_timeout)


def to_dict(config: DataclassInstance) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def from_dict(cls: type[AnyConfig], values: dict[str, Any]) -> AnyConfig:
    """Rebuild a config from ``to_dict`` output, ignoring keys a newer version may have added."""
    names = field_names(cls)
    kept = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    return cls(**kept)


def field_names(*classes: type[DataclassInstance]) -> set[str]:
    """The field names of config dataclasses."""
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def split_options(options: dict[str, Any]) -> tuple[DataConfig, TrainConfig]:
    """Route keyword options to `DataConfig` or `TrainConfig` by field name; an unknown name is a `ConfigError`.

    Example:
        >>> data, training = split_options({"data": "d", "epochs": 1, "seed": 3})
        >>> data.seed, training.seed, training.epochs
        (3, 3, 1)
    """
    unknown = sorted(set(options) - field_names(DataConfig, TrainConfig))
    if unknown:
        known = ", ".join(sorted(field_names(DataConfig, TrainConfig)))
        # a flag named unlike its field (--train is train_file): say which field it is
        flags = {flag.removeprefix("--").replace("-", "_"): field for field, flag in FLAG_NAMES.items()}
        renamed = "".join(
            f"; {name!r} is {FLAG_NAMES[flags[name]]}, whose field is {flags[name]!r}"
            for name in unknown
            if name in flags
        )
        raise UnknownOptionError(
            f"unknown option(s) {unknown}: expected names of DataConfig or TrainConfig fields ({known}){renamed}; "
            "fix the spelling (a JSON file may write them with - or _)"
        )
    # `seed` belongs to both: one seed drives the split, the sampling and the training.
    data_options = {k: v for k, v in options.items() if k in field_names(DataConfig)}
    train_options = {k: v for k, v in options.items() if k in field_names(TrainConfig)}
    return DataConfig(**data_options), TrainConfig(**train_options)


TUNE_ENGINES = ("local", "ray")  # where `textcls tune` runs its trials: this process (Optuna), or Ray Tune


@dataclass(frozen=True)
class TuneConfig:
    """How `textcls tune` searches: how many trials, for how long, where, and when it prunes."""

    trials: int = _help("Trials the study holds when the search ends (earlier runs' trials count).", default=20)
    time_budget: float | None = _help(
        "Start no new trial after this many minutes of this search (a trial under way finishes).", default=None
    )
    space: str | None = _help(
        "JSON file of search ranges per TrainConfig field, replacing the family's: "
        '{"lr": {"low": 1e-4, "high": 0.1, "log": true}, "batch_size": {"choices": [32, 64]}, "epochs": null}.',
        default=None,
    )
    on: str = _help(
        "Where trials run: local (Optuna in this process) or ray (Ray Tune running Optuna's search).", default="local"
    )
    address: str | None = _help(
        "--on ray: the Ray cluster to join (else RAY_ADDRESS, else a local Ray is started and stopped).", default=None
    )
    cpus: int | None = _help("--on ray, local Ray: CPUs it may use; default: all.", default=None)
    cpus_per_trial: float = _help("--on ray: CPUs each trial holds (trials run side by side on the rest).", default=1.0)
    startup_trials: int = _help(
        "Trials drawn at random before TPE models the results, and finished before any trial is pruned.", default=4
    )
    warmup_epochs: int = _help("Epochs every trial trains before it may be pruned.", default=1)
    overwrite: bool = _help("Start a new study, removing the output folder's study and runs.", default=False)

    def __post_init__(self) -> None:
        check_fields(self)
        _check(self.trials >= 1, "trials", "an integer >= 1", self.trials)
        _check(
            self.time_budget is None or (math.isfinite(self.time_budget) and self.time_budget > 0),
            "time_budget",
            "a positive number of minutes",
            self.time_budget,
        )
        _check(self.on in TUNE_ENGINES, "on", f"one of {TUNE_ENGINES}", self.on)
        _check(self.cpus is None or self.cpus >= 1, "cpus", "an integer >= 1", self.cpus)
        _check(self.cpus_per_trial > 0, "cpus_per_trial", "a positive number", self.cpus_per_trial)
        _check(self.startup_trials >= 0, "startup_trials", "an integer >= 0", self.startup_trials)
        _check(self.warmup_epochs >= 0, "warmup_epochs", "an integer >= 0", self.warmup_epochs)
        if self.on != "ray" and (self.address is not None or self.cpus is not None):
            raise ConfigError(
                f"address/cpus: expected them only with --on ray, found --on {self.on}; pass --on ray or drop them"
            )


LAYERS_STUDENT = "layers:"  # `--student layers:N`: the teacher's encoder cut to N of its layers


@dataclass(frozen=True)
class DistillConfig:
    """How to distil a trained run into a smaller student (`textcls distill`); the student trains with
    `TrainConfig`'s options on `DataConfig`'s data."""

    teacher: str | tuple[str, ...] = _help(
        "The teacher: a run folder with the data's labels, or several runs of one label set (an ensemble, e.g. one "
        "recipe with different seeds) whose mean probabilities are the soft targets; layers:N cuts the first.",
        own_check=True,  # one run folder, or a list of them
        default=None,
    )
    student: str = _help(
        "The student: layers:N (the teacher's encoder, the first teacher's of several, cut to N of its layers, "
        "picked evenly, with its embeddings and head; a pretrained-family teacher), a Hugging Face model folder, or "
        "a family name (e.g. lstm, scratch-transformer).",
        default=None,
    )
    temperature: float = _help(
        "Softmax temperature of the soft targets: higher spreads the teacher's probability over more classes.",
        default=2.0,
    )
    alpha: float = _help(
        "Weight of the hard labels' cross-entropy; the soft targets' KL divergence weighs 1 - alpha.", default=0.5
    )
    unlabeled: str | None = _help(
        "Unlabelled texts that train on the teacher's soft targets alone: a .txt file (one text a line), a folder "
        "of .txt files, or a table or folder `train` reads (its labels are ignored).",
        default=None,
    )
    ignore_labels: bool = _help(
        "Train on the soft targets alone, the data's labels unused (dev still scores with them).", default=False
    )
    teacher_backend: str = _help(
        "Inference engine that computes the teacher's probabilities (see predict --backend); auto and onnx may "
        "write their files into the teacher's run folder, torch reads it only.",
        default="torch",
    )

    def __post_init__(self) -> None:
        for name in ("teacher", "student"):
            _check(bool(getattr(self, name)), name, f"a {name} (see textcls distill --help)", getattr(self, name))
        if isinstance(self.teacher, list):
            object.__setattr__(self, "teacher", tuple(self.teacher))
        _check(
            isinstance(self.teacher, str)
            or (isinstance(self.teacher, tuple) and all(isinstance(run, str) and run for run in self.teacher)),
            "teacher",
            "a run folder or a list of run folders",
            self.teacher,
        )
        check_fields(self)
        _check(self.temperature > 0, "temperature", "a number > 0", self.temperature)
        _check(0.0 <= self.alpha <= 1.0, "alpha", "a weight in [0, 1]", self.alpha)
        _check(
            self.teacher_backend in BACKENDS, "teacher_backend", f"one of {', '.join(BACKENDS)}", self.teacher_backend
        )

    @property
    def teachers(self) -> tuple[str, ...]:
        """The teacher run folders, the first one's layers being those `layers:N` cuts."""
        return (self.teacher,) if isinstance(self.teacher, str) else self.teacher

    @property
    def student_layers(self) -> int | None:
        """N of `layers:N`, or None for another student (a bad N is refused when the spec is read)."""
        if not self.student.startswith(LAYERS_STUDENT):
            return None
        count = self.student.removeprefix(LAYERS_STUDENT)
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(
                f"student: expected layers:N with N a whole number >= 1, found {self.student!r}; pass e.g. "
                "--student layers:2"
            )
        return int(count)


RAY_OUTPUT_FORMATS = ("parquet", "jsonl")


def worker_range(workers: str) -> tuple[int, int] | None:
    """`--workers` as (fewest, most) actors: "2" is (2, 2), "1-4" lets Ray Data scale between 1 and 4;
    None for anything else.

    Example:
        >>> worker_range("1-4"), worker_range("2"), worker_range("3-1")
        ((1, 4), (2, 2), None)
    """
    low, _, high = str(workers).strip().partition("-")
    if not low.strip().isdigit() or (high and not high.strip().isdigit()):
        return None
    fewest, most = int(low), int(high or low)
    return (fewest, most) if 1 <= fewest <= most else None


@dataclass(frozen=True)
class RayPredictConfig:
    """How `textcls predict --on ray` spreads scoring over a Ray cluster (the model options are PredictConfig's)."""

    workers: str = _help(
        "--on ray: actors that score, each loading the run once: a number (2) or a range min-max (1-4) that Ray "
        "Data scales within.",
        default="1",
    )
    cpus_per_worker: float = _help(
        "--on ray: CPUs Ray reserves for each actor; the model uses that many threads unless --threads is given.",
        default=1.0,
    )
    gpus_per_worker: float = _help("--on ray: GPUs Ray reserves for each actor (0: none).", default=0.0)
    ray_batch_size: int = _help(
        "--on ray: texts per Ray Data batch (one actor call, and one retry unit if a worker dies); the actor "
        "scores it in model calls of --batch-size.",
        default=512,
    )
    output_format: str = _help("--on ray: shards written in --output DIR: parquet or jsonl.", default="parquet")
    address: str | None = _help(
        "--on ray: the Ray cluster to join (ray://host:10001, host:6379 or auto); default: $RAY_ADDRESS, else a "
        "local Ray started and stopped for this command.",
        default=None,
    )
    max_retries: int = _help(
        "--on ray: restarts of a dead actor and retries of its batch before the job fails.", default=3
    )
    overwrite: bool = _help("--on ray: replace an existing --output DIR.", default=False)

    def __post_init__(self) -> None:
        if isinstance(self.workers, int) and not isinstance(self.workers, bool):  # the Python API: workers=2
            object.__setattr__(self, "workers", str(self.workers))
        check_fields(self)
        _check(
            worker_range(self.workers) is not None,
            "workers",
            "a number >= 1 or a range min-max with 1 <= min <= max (1-4)",
            self.workers,
        )
        _check(self.cpus_per_worker > 0, "cpus_per_worker", "a number > 0", self.cpus_per_worker)
        _check(self.gpus_per_worker >= 0, "gpus_per_worker", "a number >= 0", self.gpus_per_worker)
        _check(self.ray_batch_size >= 1, "ray_batch_size", "an integer >= 1", self.ray_batch_size)
        _check(
            self.output_format in RAY_OUTPUT_FORMATS,
            "output_format",
            f"one of {RAY_OUTPUT_FORMATS}",
            self.output_format,
        )
        _check(self.max_retries >= 0, "max_retries", "an integer >= 0", self.max_retries)


AUDIT_METHODS = ("embeddings", f"embeddings+{FAST_FAMILY}")  # out-of-sample probabilities without --family
AUDIT_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
AUDIT_RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


@dataclass(frozen=True)
class AuditConfig:
    """How `textcls audit` finds likely label errors: out-of-sample probabilities by k-fold cross-validation,
    then confident learning (cleanlab)."""

    folds: int = _help(
        "Cross-validation folds (stratified, seeded): every row is scored by a model that never saw it.", default=5
    )
    family: str | None = _help(
        f"Train this family per fold ({', '.join(FAMILIES)}; training options such as --epochs apply); default: "
        "a logistic regression on frozen sentence embeddings of the encoder (--model, default the embedded "
        "all-MiniLM-L6-v2), see --method.",
        default=None,
    )
    method: str = _help(
        f"Without --family: embeddings (a logistic regression on frozen embeddings) or embeddings+{FAST_FAMILY} "
        f"(its probabilities averaged with the {FAST_FAMILY} family's).",
        default=AUDIT_METHODS[1],
    )
    logistic_c: float = _help("Inverse regularisation strength of the logistic regression on embeddings.", default=1.0)
    filter_by: str = _help(
        f"cleanlab's rule for which rows are label issues: one of {', '.join(AUDIT_FILTERS)}.",
        default="prune_by_noise_rate",
    )
    ranked_by: str = _help(
        f"cleanlab's label quality score that orders the issues (lowest first): one of {', '.join(AUDIT_RANKINGS)}.",
        default="self_confidence",
    )
    max_given_probability: float | None = _help(
        "Keep only the flagged rows whose given label has an out-of-sample probability under this (a stricter "
        "list: fewer false alarms, fewer errors found); default: every row --filter-by flags.",
        default=None,
    )
    seed: int = _help("Seed for the folds and the models.", default=42)
    shown: int = _help("Issues shown on the HTML page (the CSV and JSONL list them all).", default=500)
    embedding_cache: str | None = _help(
        "Folder that keeps the frozen embeddings, one file per encoder, max length and set of texts, so that a "
        "second audit of the same rows skips embedding them; default: none kept.",
        default=None,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        _check(self.folds >= 2, "folds", "an integer >= 2", self.folds)
        _check(self.family is None or self.family in FAMILIES, "family", f"one of {FAMILIES}", self.family)
        _check(self.method in AUDIT_METHODS, "method", f"one of {AUDIT_METHODS}", self.method)
        _check(self.logistic_c > 0, "logistic_c", "a number > 0", self.logistic_c)
        _check(self.filter_by in AUDIT_FILTERS, "filter_by", f"one of {AUDIT_FILTERS}", self.filter_by)
        _check(self.ranked_by in AUDIT_RANKINGS, "ranked_by", f"one of {AUDIT_RANKINGS}", self.ranked_by)
        _check(self.shown >= 0, "shown", "an integer >= 0", self.shown)
        _check(
            self.max_given_probability is None or 0 < self.max_given_probability <= 1,
            "max_given_probability",
            "a number in (0, 1]",
            self.max_given_probability,
        )
