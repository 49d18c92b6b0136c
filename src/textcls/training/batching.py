"""Batches of texts of similar length, so a batch is padded only to its own longest text.

Used by every torch family and by the ONNX backend; it knows nothing of models. Training batches
are cut either by a count of texts or by a token budget (rows x padded length), from texts grouped
by their length rounded up to a multiple of 8: short texts make large batches, long ones small,
and the padded shapes stay few (tensor cores and compiled graphs like both).

Example:
    >>> [b.tolist() for b in length_sorted_batches([5, 1, 3, 2], batch_size=2)]
    [[1, 3], [2, 0]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from textcls.config import PAD_MULTIPLE


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Row indices in batches of similar length (shortest first), so padding stays small.

    Example:
        >>> [b.tolist() for b in length_sorted_batches([5, 1, 3, 2], batch_size=2)]
        [[1, 3], [2, 0]]
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def round_up(lengths: Any, multiple: int = PAD_MULTIPLE) -> Any:
    """`lengths` (an int or an array) rounded up to a multiple of `multiple`.

    Example:
        >>> round_up(13), round_up(np.array([1, 8, 9])).tolist()
        (16, [8, 8, 16])
    """
    return -(-lengths // multiple) * multiple


def _cut(padded: np.ndarray, order: np.ndarray, batch_size: int | None, batch_tokens: int | None) -> list[np.ndarray]:
    """Cut `order` (rows sorted by padded length, shortest first) into consecutive batches of
    `batch_size` rows, or of as many rows as keep rows x longest padded length within `batch_tokens`."""
    if batch_size is not None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    assert batch_tokens is not None  # `training_plan` gives exactly one of the two
    batches, start, sorted_lengths = [], 0, padded[order]
    while start < len(order):
        # Rows are sorted, so a batch's last row is its longest: k rows fit while k * length[k-1] <= budget,
        # which holds for a prefix of k; no more than budget // shortest rows can fit.
        window = sorted_lengths[start : start + max(1, batch_tokens // int(sorted_lengths[start]))]
        fits = np.arange(1, len(window) + 1) * window <= batch_tokens
        end = start + max(1, int(np.argmin(fits)) if not fits.all() else len(window))
        batches.append(order[start:end])
        start = end
    return batches


class CountedBatches(list):
    """Batches (lists of row indices) of `batch_size` rows each but the last, saying their size.

    Trainer's evaluation under DDP gathers every process's batch of a step into one tensor, so the
    processes' batches must be the same size. accelerate's sharding makes them so for a plan that has a
    `batch_size` (it completes the last batches from the first rows, and `gather_for_metrics` drops
    those again); a plan of varied sizes (a token budget) it hands out as it is.
    """

    def __init__(self, batches: Sequence[Sequence[int] | np.ndarray], batch_size: int):
        super().__init__([list(map(int, batch)) for batch in batches])
        self.batch_size = batch_size


def training_plan(
    lengths: Sequence[int] | np.ndarray,
    seed: int,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    group_by_length: bool = True,
    pad_multiple: int = PAD_MULTIPLE,
) -> list[np.ndarray]:
    """One epoch's batches of row indices, a pure function of its arguments (a resumed run replays them).

    Give `batch_size` (rows per batch) or `batch_tokens` (rows x padded length per batch, at least
    the longest padded text). Grouped by length, rows are sorted by padded length with ties in a
    seeded random order, cut into batches, and the batches shuffled: every row once, each batch of
    one length, a random order. The sorted lengths are the same every epoch, so the number of
    batches is too (schedulers and resume count on it). Without grouping, rows are drawn at random
    and a token budget becomes a count: `batch_tokens // longest padded text`.

    Example:
        >>> plan = training_plan([9, 30, 8, 31, 12], seed=0, batch_tokens=64)
        >>> sorted(len(b) for b in plan)
        [2, 3]
    """
    if (batch_size is None) == (batch_tokens is None):
        raise ValueError("give exactly one of batch_size and batch_tokens")
    padded = round_up(np.asarray(lengths, dtype=np.int64), pad_multiple)
    if batch_tokens is not None and len(padded) and batch_tokens < padded.max():
        raise ValueError(f"batch_tokens {batch_tokens} is smaller than the longest padded text ({padded.max()} tokens)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(padded))
    if group_by_length:
        order = order[np.argsort(padded[order], kind="stable")]
        batches = _cut(padded, order, batch_size, batch_tokens)
    else:
        if batch_size is not None:
            rows = batch_size
        else:
            assert batch_tokens is not None  # checked above: exactly one of the two is given
            rows = max(1, batch_tokens // int(padded.max(initial=1)))
        batches = _cut(padded, order, rows, None)
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_plan(
    lengths: Sequence[int] | np.ndarray, batch_size: int | None = None, batch_tokens: int | None = None
) -> list[np.ndarray]:
    """Batches for inference: rows in length order, cut by a count or a token budget (no shuffling).

    Example:
        >>> [b.tolist() for b in sorted_plan([5, 1, 30, 2], batch_tokens=32)]
        [[0, 1, 3], [2]]
    """
    padded = round_up(np.asarray(lengths, dtype=np.int64))
    order = np.argsort(padded, kind="stable")
    if batch_tokens is not None:
        batch_tokens = max(batch_tokens, int(padded.max(initial=1)))
    return _cut(padded, order, batch_size, batch_tokens)
