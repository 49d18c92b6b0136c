"""Batches of texts of similar length, so a batch is padded only to its own longest text.

Used by every torch family and by the ONNX backend; it knows nothing of models.

Example:
    >>> [b.tolist() for b in length_sorted_batches([5, 1, 3, 2], batch_size=2)]
    [[1, 3], [2, 0]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Row indices in batches of similar length (shortest first), so padding stays small.

    Example:
        >>> [b.tolist() for b in length_sorted_batches([5, 1, 3, 2], batch_size=2)]
        [[1, 3], [2, 0]]
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def padded_batches(
    tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int, tensors: str = "np", progress: bool = False
) -> Iterator[tuple[np.ndarray, Any]]:
    """Tokenise `texts` once with a Hugging Face tokenizer, then yield (row indices, batch padded to its
    longest text) in length order; `tensors` is "np" or "pt"."""
    from tqdm.auto import tqdm

    texts = list(texts)
    if not texts:
        return
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    batches = list(length_sorted_batches([len(ids) for ids in encoded], batch_size))
    for rows in tqdm(batches, desc="predicting", unit="batch", disable=not progress, leave=False):
        yield rows, tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors=tensors)
