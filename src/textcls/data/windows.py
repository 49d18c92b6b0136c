"""Texts longer than `max_length` tokens: which tokens the model reads, and how window logits become a text's.

Every token-window family (the torch families and the ONNX backend) tokenises a text in full, then
`Windowing.cut` makes its model inputs:

- `truncate`: the first `max_length` tokens (the model's special tokens kept at both ends);
- `head-tail`: the first quarter and the last three quarters of the room (Sun et al. 2019 kept
  128 + 382 of 512 tokens, best on IMDb);
- `chunk`: overlapping windows of `max_length` tokens, consecutive ones sharing `stride` tokens,
  each with the special tokens; the windows' logits are pooled (`mean` or `max`) into the text's,
  in training and inference alike.

numpy only (the ONNX backend and the server's process use it without torch); `Windows.stats` says
how many texts were longer than `max_length` and by how much, so truncation is never silent.

Example:
    >>> windowing = Windowing(max_length=6, strategy="chunk", stride=1)
    >>> cut = windowing.cut([[101, 1, 2, 3, 4, 5, 6, 102]], prefix=1, suffix=1)
    >>> [w.tolist() for w in cut.sequences], cut.owner.tolist()
    ([[101, 1, 2, 3, 4, 102], [101, 3, 4, 5, 6, 102]], [0, 0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from textcls.config import TrainConfig, to_dict

STRATEGIES = ("truncate", "head-tail", "chunk")
HEAD_SHARE = 0.25  # head-tail: the share of the room kept from the start (Sun et al.: 128 of 510)


class TokenRows(Protocol):
    """Token ids of many texts, one row of ids per text: a list of id lists, or `training.tokens.TokenIds`."""

    def __len__(self) -> int: ...

    def __getitem__(self, row: int, /) -> Sequence[int] | np.ndarray: ...


@dataclass(frozen=True)
class Windows:
    """Model inputs cut from whole texts: `sequences[w]` belongs to text `owner[w]`, windows of text i are
    `offsets[i]:offsets[i+1]` (every text has at least one), and `full_lengths` are the texts' token counts."""

    sequences: list[np.ndarray]
    owner: np.ndarray  # (windows,) int64
    offsets: np.ndarray  # (texts + 1,) int64
    full_lengths: np.ndarray  # (texts,) int64, special tokens included
    max_length: int
    pooling: str = "mean"

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_texts(self) -> int:
        return len(self.offsets) - 1

    def pool(self, window_logits: np.ndarray) -> np.ndarray:
        """Per text, the mean or max of its windows' logits: (windows, classes) -> (texts, classes).

        Example:
            >>> w = Windowing(8, "chunk", stride=0).cut([[1, 5, 6, 7, 8, 9, 10, 11, 12, 2]], 1, 1)
            >>> w.pool(np.array([[0.0, 2.0], [2.0, 0.0]])).tolist()
            [[1.0, 1.0]]
        """
        if len(self.sequences) == self.num_texts:  # one window a text: nothing to pool
            return window_logits
        reduce = np.maximum if self.pooling == "max" else np.add
        pooled = reduce.reduceat(window_logits, self.offsets[:-1], axis=0)
        if self.pooling == "mean":
            pooled = pooled / np.diff(self.offsets)[:, None]
        return pooled

    def stats(self) -> dict[str, Any]:
        """How many texts exceed `max_length`, by how many tokens (median, max), and the windows made."""
        over = self.full_lengths[self.full_lengths > self.max_length] - self.max_length
        return {
            "texts": self.num_texts,
            "exceeding": int(len(over)),
            "exceeding_share": float(len(over) / max(self.num_texts, 1)),
            "median_excess_tokens": int(np.median(over)) if len(over) else 0,
            "max_excess_tokens": int(over.max()) if len(over) else 0,
            "max_tokens": int(self.full_lengths.max(initial=0)),
            "windows": len(self.sequences),
        }


def model_token_limit(tokenizer_max_length: object, max_position_embeddings: object) -> int | None:
    """The most tokens a transformers model reads: the smaller of its tokenizer's limit (a huge one means
    "no limit") and its position embeddings, or None when neither says.

    Example:
        >>> model_token_limit(512, 514), model_token_limit(10**30, 512), model_token_limit(None, None)
        (512, 512, None)
    """
    limits = []
    if isinstance(tokenizer_max_length, int) and 0 < tokenizer_max_length < 100_000:
        limits.append(tokenizer_max_length)
    if isinstance(max_position_embeddings, int) and max_position_embeddings > 0:
        limits.append(max_position_embeddings)
    return min(limits, default=None)


@dataclass(frozen=True)
class Windowing:
    """How a run fits texts into `max_length` tokens (`--long-text`, `--stride`, `--pooling`)."""

    max_length: int
    strategy: str = "truncate"
    stride: int | None = None
    pooling: str = "mean"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"expected a long-text strategy among {STRATEGIES}, found {self.strategy!r}")

    @classmethod
    def from_config(cls, config: TrainConfig | dict[str, Any], max_length: int | None = None) -> Windowing:
        """From a `TrainConfig` (or the dict textcls.json saves of it), at `max_length` when the model clamped it."""
        values = config if isinstance(config, dict) else to_dict(config)
        return cls(
            max_length=max_length or values["max_length"],
            strategy=values.get("long_text") or "truncate",
            stride=values.get("stride"),
            pooling=values.get("pooling") or "mean",
        )

    @classmethod
    def of_run(cls, info: dict[str, Any], max_length: int | None = None) -> Windowing:
        """How a run folder's model reads long texts (its textcls.json `train_config`), at `max_length`
        (default: the run's)."""
        return cls.from_config(info.get("train_config") or {}, max_length or info.get("max_length"))

    @property
    def chunks(self) -> bool:
        return self.strategy == "chunk"

    def cut(self, sequences: TokenRows, prefix: int, suffix: int) -> Windows:
        """Model inputs from whole texts' ids, each `prefix` special tokens, the text, `suffix` special tokens."""
        room = self.max_length - prefix - suffix
        if room < 1:
            raise ValueError(f"max_length {self.max_length} leaves no room beside {prefix + suffix} special tokens")
        step = room - (self.stride or 0)
        if self.chunks and step < 1:
            raise ValueError(f"stride {self.stride} must be smaller than the {room} tokens a window holds")
        head = int(room * HEAD_SHARE)
        windows: list[np.ndarray] = []
        counts = np.zeros(len(sequences), dtype=np.int64)
        full_lengths = np.zeros(len(sequences), dtype=np.int64)
        for text in range(len(sequences)):
            ids = np.asarray(sequences[text])
            full_lengths[text] = len(ids)
            if len(ids) <= self.max_length:
                windows.append(ids)
                counts[text] = 1
                continue
            start, body, end = ids[:prefix], ids[prefix : len(ids) - suffix], ids[len(ids) - suffix :]
            if self.strategy == "truncate":
                pieces = [body[:room]]
            elif self.strategy == "head-tail":
                pieces = [np.concatenate([body[:head], body[len(body) - (room - head) :]])]
            else:  # the last window ends at the text's end, so no token is left out
                starts = list(range(0, len(body) - room, step)) + [len(body) - room]
                pieces = [body[s : s + room] for s in starts]
            windows.extend(np.concatenate([start, piece, end]) for piece in pieces)
            counts[text] = len(pieces)
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        owner = np.repeat(np.arange(len(sequences), dtype=np.int64), counts)
        return Windows(windows, owner, offsets, full_lengths, self.max_length, self.pooling)

    def describe(self) -> str:
        if self.chunks:
            return f"chunk (windows of {self.max_length} tokens sharing {self.stride}, {self.pooling}-pooled)"
        return self.strategy


def special_tokens(encode: Callable[[str], Sequence[int]]) -> tuple[int, int]:
    """(prefix, suffix): how many special tokens a tokenizer puts before and after a text, found from
    `encode(text) -> ids` on an empty text and a one-word one (BERT: [CLS] ... [SEP] is (1, 1))."""
    empty, word = list(encode("")), list(encode("a"))
    prefix = 0
    while prefix < len(empty) and prefix < len(word) and empty[prefix] == word[prefix]:
        prefix += 1
    prefix = min(prefix, len(empty))
    return prefix, len(empty) - prefix


def log_line(stats: dict[str, Any], windowing: Windowing, name: str) -> str:
    """The training log's line on texts longer than max_length."""
    if not stats["exceeding"]:
        return f"{name}: no text exceeds max_length {windowing.max_length} tokens (longest {stats['max_tokens']})"
    line = (
        f"{name}: {stats['exceeding']} of {stats['texts']} texts ({100 * stats['exceeding_share']:.1f}%) exceed "
        f"max_length {windowing.max_length} tokens, by {stats['median_excess_tokens']} (median) to "
        f"{stats['max_excess_tokens']} tokens; "
        f"--long-text {windowing.describe()}"
    )
    if windowing.chunks:
        return line + f": {stats['windows']} windows"
    return line + ("" if windowing.strategy != "truncate" else " drops their ends (see --long-text head-tail or chunk)")
