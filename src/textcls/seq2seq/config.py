"""`Seq2SeqConfig`: every setting of `textcls seq2seq train`, checked once, each field with its help text.

Example:
    >>> Seq2SeqConfig(attention="none", epochs=5).attention
    'none'
    >>> Seq2SeqConfig(dropout=1.5)   # doctest: +SKIP
    ConfigError: dropout: expected a number in [0, 1), found 1.5; ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from textcls.config import REPORT_TO_HELP, check_fields, report_services
from textcls.errors import ConfigError, UnknownOptionError
from textcls.seq2seq.pairs import TOKEN_MODES

ATTENTIONS = ("additive", "none")
# The sizes of the lesson's models (both attention settings use the same ones).
MODEL_FIELDS = ("attention", "embedding_size", "encoder_hidden", "decoder_hidden", "attention_size", "dropout")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Seq2SeqConfig:
    """How to train an encoder-decoder; `__post_init__` rejects values out of range with the fix."""

    attention: str = field(
        default="additive", metadata=_help("additive (Bahdanau) or none (RNNenc: the final encoder state only)")
    )
    tokens: str = field(default="auto", metadata=_help("words, chars, or auto (chars when every target is one word)"))
    embedding_size: int = field(default=64, metadata=_help("source and target embedding size"))
    encoder_hidden: int = field(default=64, metadata=_help("GRU size per direction of the bidirectional encoder"))
    decoder_hidden: int = field(default=128, metadata=_help("decoder GRU size"))
    attention_size: int = field(default=64, metadata=_help("size of the additive attention's tanh layer"))
    dropout: float = field(default=0.1, metadata=_help("dropout on embeddings and the deep output"))
    epochs: int = field(default=30, metadata=_help("most passes over train"))
    batch_size: int = field(default=128, metadata=_help("pairs per training step"))
    eval_batch_size: int = field(default=256, metadata=_help("pairs per batch when decoding dev"))
    lr: float = field(default=2e-3, metadata=_help("AdamW learning rate (constant)"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    max_length: int = field(default=128, metadata=_help("source tokens kept (with </s>); longer sources are cut"))
    early_stopping_patience: int = field(
        default=3, metadata=_help("stop after this many epochs without a better dev token accuracy (0: never)")
    )
    time_budget: float | None = field(
        default=None, metadata=_help("stop training after this many minutes (evaluating once more)")
    )
    seed: int = field(default=42, metadata=_help("seed of weights, batch order and dropout"))
    resume: bool = field(default=False, metadata=_help("continue the interrupted run in OUT's .partial folder"))
    source_column: str = field(default="source", metadata=_help("source column of CSV/JSONL/TSV-with-header files"))
    target_column: str = field(default="target", metadata=_help("target column of CSV/JSONL/TSV-with-header files"))
    threads: int | None = field(default=None, metadata=_help("CPU threads for torch (default: one per core)"))
    report_to: tuple[str, ...] = field(default=(), metadata=_help(REPORT_TO_HELP))

    def __post_init__(self) -> None:
        check_fields(self)
        object.__setattr__(self, "report_to", report_services(self.report_to))
        if self.attention not in ATTENTIONS:
            raise ConfigError(
                f"attention: expected one of {list(ATTENTIONS)}, found {self.attention!r}; pick one of them"
            )
        if self.tokens not in TOKEN_MODES:
            raise ConfigError(f"tokens: expected one of {list(TOKEN_MODES)}, found {self.tokens!r}; pick one of them")
        for name in (
            "embedding_size",
            "encoder_hidden",
            "decoder_hidden",
            "attention_size",
            "epochs",
            "batch_size",
            "eval_batch_size",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected a positive integer, found {getattr(self, name)!r}; pass 1 or more")
        if self.max_length < 2:
            raise ConfigError(
                f"max_length: expected at least 2 (a token and </s>), found {self.max_length}; pass a larger value"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: expected a number in [0, 1), found {self.dropout}; pass e.g. 0.1")
        if not self.lr > 0:
            raise ConfigError(f"lr: expected a positive learning rate, found {self.lr}; pass e.g. 2e-3")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: expected 0 or more, found {self.weight_decay}")
        if self.early_stopping_patience < 0:
            raise ConfigError(
                f"early_stopping_patience: expected 0 (never stop) or more, found {self.early_stopping_patience}"
            )
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(
                f"time_budget: expected minutes > 0, found {self.time_budget}; leave it out for no budget"
            )
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads: expected a positive number of threads, found {self.threads}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Seq2SeqConfig:
        """A config from keyword options named like its fields; an unknown name lists the known ones."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UnknownOptionError(f"unknown option(s) {unknown}; expected names among {known}")
        return cls(**options)

    def model_hparams(self) -> dict[str, Any]:
        """The fields that rebuild the model (saved beside its weights)."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}
