"""Attention where it was born: an RNN encoder-decoder with additive attention (Bahdanau, Cho &
Bengio 2015), its alignment matrix, and the long-input failure of the encoder without it (RNNenc).

Run folders follow the classification runs' format (`textcls.runfolder`), with family "seq2seq";
`textcls.load` is for classifiers, `textcls.seq2seq.load` for these. The names below are imported on
first use, so `textcls seq2seq --help` does not load torch.

Example:
    >>> from textcls import seq2seq
    >>> seq2seq.write_data("dates", 20000, "data/dates")                               # doctest: +SKIP
    >>> seq2seq.train("data/dates", "runs/dates", attention="additive", time_budget=9)  # doctest: +SKIP
    >>> [t] = seq2seq.load("runs/dates").translate(["Saturday 14 August 1982"])         # doctest: +SKIP
    >>> t.text, t.attention.shape                                                       # doctest: +SKIP
    ('1982-08-14', (11, 24))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textcls.seq2seq.config import Seq2SeqConfig

if TYPE_CHECKING:
    from textcls.seq2seq.api import (
        Seq2SeqRun,
        TrainResult,
        Translation,
        compare,
        evaluate,
        load,
        read_data,
        train,
        write_data,
    )
    from textcls.seq2seq.model import Seq2Seq

__all__ = [
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqRun",
    "TrainResult",
    "Translation",
    "compare",
    "evaluate",
    "load",
    "read_data",
    "train",
    "write_data",
]


def __getattr__(name: str) -> Any:
    """The torch-backed names, imported when first asked for."""
    if name == "Seq2Seq":
        from textcls.seq2seq.model import Seq2Seq

        return Seq2Seq
    if name in __all__:
        from textcls.seq2seq import api

        return getattr(api, name)
    raise AttributeError(f"module 'textcls.seq2seq' has no attribute {name!r}")
