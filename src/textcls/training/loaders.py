"""Batches for training and evaluation: `TokenizedRows` pads a whole batch at once in numpy,
`EpochBatches` gives each epoch its `batching.training_plan` (token budget or count, texts grouped by
length), and `batch_loader` wraps them in a `DataLoader` that pins memory and prefetches on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from textcls.config import TrainConfig
from textcls.data.windows import Windows
from textcls.training.batching import CountedBatches, sorted_plan, training_plan
from textcls.training.tokens import TokenIds

EVAL_TOKEN_FACTOR = 4  # evaluation keeps no activations for backward, so its batches may hold this many times more


class TokenizedRows(torch.utils.data.Dataset):
    """Tokenised rows that a `DataLoader` reads a whole batch at a time (`__getitems__`), padded in numpy.

    A batch is `{"input_ids", "attention_mask"}` (batch, seq) int64, plus `"labels"` (batch,) int64 when
    labelled, or (batch, labels) float32 0/1 when `labels` is a multi-hot matrix (`--multi-label`).
    With `windows` (`--long-text chunk`), a row is a text and `token_ids` holds its windows: a batch then
    holds every window of its texts, (windows, seq), and `"window_owner"` (windows,) int64, the text
    (0..batch-1) each window belongs to, so the loss is taken on the pooled logits of each text.
    """

    def __init__(
        self,
        token_ids: TokenIds,
        labels: Sequence[int] | np.ndarray | None,
        pad_id: int,
        windows: Windows | None = None,
    ):
        self.token_ids = token_ids
        self.labels: np.ndarray | None = None  # (rows,) int64, or (rows, labels) float32 multi-hot
        if labels is not None:
            multi_hot = isinstance(labels, np.ndarray) and labels.ndim == 2
            self.labels = np.asarray(labels) if multi_hot else np.asarray(labels, dtype=np.int64)
        self.pad_id = pad_id
        # only a text with several windows needs the owner map; one window a text is a plain row
        self.windows = windows if windows is not None and len(windows) > windows.num_texts else None

    def __len__(self) -> int:
        return len(self.token_ids) if self.windows is None else self.windows.num_texts

    def text_lengths(self, budget: int | None = None) -> np.ndarray:
        """Tokens per row, (rows,): a text's windows together, at most `budget` (for a batch plan)."""
        lengths = self.token_ids.lengths
        if self.windows is not None:
            lengths = np.add.reduceat(lengths, self.windows.offsets[:-1])
        return lengths if budget is None else np.minimum(lengths, budget)

    def __getitem__(self, row: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([row])

    def __getitems__(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        indices = np.asarray(rows, dtype=np.int64)
        batch: dict[str, torch.Tensor] = {}
        windows = indices
        if self.windows is not None:
            starts, ends = self.windows.offsets[indices], self.windows.offsets[indices + 1]
            windows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
            batch["window_owner"] = torch.from_numpy(np.repeat(np.arange(len(indices)), ends - starts))
        input_ids, attention_mask = self.token_ids.pad(windows, self.pad_id)
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask), **batch}
        if self.labels is not None:
            batch["labels"] = torch.from_numpy(self.labels[indices])
        return batch


def _as_is(batch: Any) -> Any:
    """The DataLoader's collate function: `__getitems__` already made the batch."""
    return batch


class EpochBatches:
    """A batch sampler: epoch e's `training_plan` from seed + e. Every epoch has the same number of
    batches, and `set_epoch` (called by Trainer and by the own loop) picks the epoch.

    With `sample_weights` (`--sampler balanced`), each epoch first draws as many rows as there are, with
    replacement, row i with probability `sample_weights[i]`; a token budget may then cut the drawn rows into
    another number of batches, so the plan is cut or cycled to the first epoch's count.
    """

    def __init__(self, lengths: np.ndarray, config: TrainConfig, sample_weights: np.ndarray | None = None):
        self.lengths = np.asarray(lengths)
        self.config = config
        self.sample_weights = sample_weights
        self.epoch = 0
        self._count: int | None = None  # epoch 0's batch count, which every later epoch keeps
        self.batches_per_epoch = len(self.plan(0))
        self._count = self.batches_per_epoch

    def plan(self, epoch: int) -> list[np.ndarray]:
        config = self.config
        rows = np.arange(len(self.lengths))
        if self.sample_weights is not None:  # its own stream: the batch order stays a function of seed + epoch
            draw = np.random.default_rng([config.seed, epoch, 1])
            rows = np.sort(draw.choice(len(self.lengths), size=len(self.lengths), replace=True, p=self.sample_weights))
        batches = training_plan(
            self.lengths[rows], config.seed + epoch, config.batch_size, config.batch_tokens, config.group_by_length
        )
        batches = [rows[batch] for batch in batches]
        if self.sample_weights is not None and self._count is not None:
            batches = [batches[i % len(batches)] for i in range(self._count)]
        return batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        return (batch.tolist() for batch in self.plan(self.epoch))

    def __len__(self) -> int:
        return self.batches_per_epoch


def batch_loader(rows: TokenizedRows, batches: Iterable[Any], config: TrainConfig) -> torch.utils.data.DataLoader:
    """A `DataLoader` over ready batches of row indices: pinned memory and prefetching workers on a GPU."""
    workers = config.num_workers or 0
    if not isinstance(
        batches, (EpochBatches, CountedBatches)
    ):  # accelerate's DDP sharding wants lists of ints, not arrays
        batches = [batch.tolist() if isinstance(batch, np.ndarray) else list(batch) for batch in batches]
    return torch.utils.data.DataLoader(
        rows,
        batch_sampler=batches,
        collate_fn=_as_is,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,  # the batch plan is made in this process, so set_epoch still reaches it
        prefetch_factor=4 if workers else None,
    )


def eval_plan(lengths: np.ndarray, config: TrainConfig, processes: int = 1) -> list[np.ndarray] | CountedBatches:
    """Evaluation batches in length order: `eval_batch_size` rows on a CPU; on a GPU a token budget of
    4x the training one, so the device gets batches worth its size. Over several `processes` (DDP),
    `eval_batch_size` rows a batch anywhere: Trainer gathers the processes' batches of a step into one
    tensor, so they must be the same size (`CountedBatches`)."""
    if processes > 1:
        return CountedBatches(sorted_plan(lengths, batch_size=config.eval_batch_size), config.eval_batch_size)
    if torch.cuda.is_available() and config.batch_tokens is not None:
        return sorted_plan(lengths, batch_tokens=EVAL_TOKEN_FACTOR * config.batch_tokens)
    return sorted_plan(lengths, batch_size=config.eval_batch_size)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on `device`; from pinned memory the copies do not block the host."""
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def array_to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy array as a tensor on `device`; to a GPU through pinned memory, so the copy waits for no queued work."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)
