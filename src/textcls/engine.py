"""The training data path every torch family shares: tokenise once, batch by a token budget, feed
the device without stalls.

- Tokenisation goes through the Rust `tokenizers.Tokenizer` (`encode_batch_fast`, all cores), not
  row by row through `datasets.map`; the ids are kept as two compact arrays (`TokenIds`) and cached
  on disk by (texts, tokenizer, max_length), so a resumed run or a second family on the same data
  reads them back instead of tokenising again.
- Batches come from `batching.training_plan`: cut by a token budget (or a count when
  `--batch-size` is given) from texts grouped by length, padded to a multiple of 8.
- `TokenizedRows` pads a whole batch at once in numpy; a `DataLoader` over it pins memory and
  prefetches in worker processes on a GPU, where copies are non-blocking and TF32 matmuls are on.
- `ThroughputMeter` measures steady-state samples/s: training steps only, without start-up,
  the first steps (compilation) or evaluation.

Both loops use it: `models/neural.py` (the from-scratch families' own loop) and
`models/pretrained.py` (Hugging Face `Trainer`, given these data loaders).

Example:
    >>> token_ids = encode_ids(tokenizer, ["Stocks fell.", "A goal!"], max_length=128)  # doctest: +SKIP
    >>> token_ids.lengths.tolist()                                                       # doctest: +SKIP
    [5, 5]
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import weakref
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textcls.batching import CountedBatches, round_up, sorted_plan, training_plan
from textcls.config import TrainConfig
from textcls.environment import tune_cuda
from textcls.files import write_atomic
from textcls.windows import Windowing, Windows, log_line, special_tokens

log = logging.getLogger("textcls.engine")

CACHE_ENV = "TEXTCLS_CACHE_DIR"
CACHE_FORMAT = 1
FULL_LENGTH = None  # `encode_ids` at this length keeps every token (`encode_windows` cuts them)
ENCODE_CHUNK = 16_384  # texts per encode call: large enough for all cores, small enough for a progress bar
EVAL_TOKEN_FACTOR = 4  # evaluation keeps no activations for backward, so its batches may hold this many times more
# Inference batches on a GPU: ~1,000 AG News texts. Measured on an H200 (MiniLM, bf16 autocast, 2026-11-27):
# 15,900 texts/s at 64 texts a batch, 62,100 at this budget, 118,000 with the batches in pinned memory.
GPU_PREDICT_TOKENS = 65_536
GPU_WORKERS = 2  # DataLoader processes preparing batches ahead on a GPU; a CPU pads in the main process (~0.1 ms a batch)
WARMUP_STEPS = 5  # steps left out of the steady-state figure: compilation, allocator growth


# ---- tokenisation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenIds:
    """Token ids of many texts as two compact arrays: every text's ids end to end, and where each starts.

    `ids` is (total tokens,) int32; `offsets` is (texts + 1,) int64, text i being `ids[offsets[i]:offsets[i+1]]`.
    Indexing gives one text's ids, so it also serves where a list of id lists is expected.
    """

    ids: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_lists(cls, sequences: Iterable[Sequence[int]]) -> TokenIds:
        arrays = [np.asarray(ids, dtype=np.int32) for ids in sequences]
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        ids = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)
        return cls(ids, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> np.ndarray:
        return self.ids[self.offsets[row] : self.offsets[row + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per text, (texts,)."""
        return np.diff(self.offsets)

    def pad(self, rows: Sequence[int] | np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """`input_ids` and `attention_mask` of `rows`, right-padded to their longest text rounded up to a
        multiple of 8; both (batch, seq) int64."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.offsets[rows], self.lengths[rows]
        width = int(round_up(int(lengths.max(initial=1))))
        mask = np.arange(width)[None, :] < lengths[:, None]  # (batch, seq)
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        # the real tokens of every row, in row-major order: exactly the positions `mask` selects
        positions = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
        input_ids[mask] = self.ids[positions]
        return input_ids, mask.astype(np.int64)


# Copies of Rust tokenizers by (Hugging Face or Rust tokenizer, max_length): a copy costs about 30 ms
# (a JSON round trip), which inference on a few texts would otherwise pay on every call.
_RUST_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def rust_tokenizer(tokenizer: Any, max_length: int | None = FULL_LENGTH) -> Any | None:
    """A copy of the `tokenizers.Tokenizer` behind `tokenizer` (itself one, or a Hugging Face fast
    tokenizer), without padding, truncating at `max_length` (None: keeping every token), so the
    original is left alone and its serialisation names the tokenizer alone; None for a slow tokenizer.
    Made once per tokenizer and length and never changed after, so threads may share it."""
    try:
        copies = _RUST_COPIES.setdefault(tokenizer, {})
    except TypeError:  # an object that takes no weak reference: a fresh copy each call
        copies = {}
    if max_length not in copies:
        copies[max_length] = _rust_copy(tokenizer, max_length)
    return copies[max_length]


def _rust_copy(tokenizer: Any, max_length: int | None) -> Any | None:
    from tokenizers import Tokenizer

    if not isinstance(tokenizer, Tokenizer):
        tokenizer = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if tokenizer is None:
        return None
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.no_truncation()
    if max_length is not None:
        copy.enable_truncation(max_length)
    return copy


def pad_id(tokenizer: Any) -> int:
    """The id a Hugging Face tokenizer pads with; 0 when it names none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def encode_ids(
    tokenizer: Any, texts: Sequence[str], max_length: int | None, *, cache: bool = True, desc: str = "tokenising"
) -> TokenIds:
    """Ids of `texts` with the model's special tokens, cut to `max_length`; read from the cache when
    these texts were tokenised before with this tokenizer and length.

    `tokenizer` is a `tokenizers.Tokenizer` or a Hugging Face tokenizer (a slow one is called on the list).
    """
    texts = list(texts)
    path = _cache_path(texts, rust_tokenizer(tokenizer), tokenizer, max_length) if cache and texts else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                cached = TokenIds(stored["ids"], stored["offsets"])
            if len(cached) == len(texts):
                log.info("%s: %d texts' token ids read from the cache %s", desc, len(texts), path)
                return cached
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # a damaged cache file is only a lost shortcut
            log.warning("ignoring the unreadable token cache %s (%s); tokenising again", path, error)
    started = time.perf_counter()
    token_ids = _encode(rust_tokenizer(tokenizer, max_length), tokenizer, texts, max_length, desc)
    seconds = time.perf_counter() - started
    log.log(
        logging.INFO if cache else logging.DEBUG,  # inference tokenises small batches often: no log line each time
        "%s: %d texts in %.2f s (%.0f texts/s)", desc, len(texts), seconds, len(texts) / max(seconds, 1e-9),
    )
    if path is not None:
        try:
            write_atomic(path, lambda temporary: _save_npz(temporary, token_ids))
        except OSError as error:  # a read-only or full cache folder costs speed, not the run
            log.warning("could not cache token ids in %s (%s)", path, error)
    return token_ids


def _encode(rust: Any, tokenizer: Any, texts: list[str], max_length: int | None, desc: str) -> TokenIds:
    """Ids of `texts`, cut to `max_length` tokens (by `rust`, a copy truncating there, or by the slow
    `tokenizer` when there is none); all of each text's ids when `max_length` is None."""
    from tqdm.auto import tqdm

    chunks = [texts[start : start + ENCODE_CHUNK] for start in range(0, len(texts), ENCODE_CHUNK)]
    encoded: list[Sequence[int]] = []
    if rust is not None:
        encode = getattr(rust, "encode_batch_fast", rust.encode_batch)  # _fast: no character offsets
    for chunk in tqdm(chunks, desc=desc, unit="chunk", disable=len(chunks) < 2, leave=False):
        if rust is not None:
            encoded.extend(encoding.ids for encoding in encode(chunk))
        else:
            encoded.extend(tokenizer(chunk, truncation=max_length is not None, max_length=max_length)["input_ids"])
    return TokenIds.from_lists(encoded)


def encode_windows(
    tokenizer: Any, texts: Sequence[str], windowing: Windowing, *, cache: bool = True, desc: str = "tokenising"
) -> tuple[TokenIds, Windows]:
    """Whole texts tokenised (cached like `encode_ids`, under no length), then cut into the model's inputs
    by `windowing` (`--long-text`): the windows' ids, and which text each window belongs to.

    Training (`cache`) logs how many texts exceed max_length and by how much.
    """
    full = encode_ids(tokenizer, texts, FULL_LENGTH, cache=cache, desc=desc)
    rust = rust_tokenizer(tokenizer)
    if rust is not None:
        prefix, suffix = special_tokens(lambda text: rust.encode(text).ids)
    else:
        prefix, suffix = special_tokens(lambda text: tokenizer(text)["input_ids"])
    windows = windowing.cut(full, prefix, suffix)
    if cache:
        log.info("%s", log_line(windows.stats(), windowing, desc))
    return TokenIds.from_lists(windows.sequences), windows


def _save_npz(path: Path, token_ids: TokenIds) -> None:
    with open(path, "wb") as handle:  # a handle: np.savez would append ".npz" to a file name
        np.savez(handle, ids=token_ids.ids, offsets=token_ids.offsets)


def cache_dir() -> Path:
    """Where token ids are cached: $TEXTCLS_CACHE_DIR, else ~/.cache/textcls/token-ids."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "textcls" / "token-ids"


def _cache_path(texts: list[str], rust: Any, tokenizer: Any, max_length: int) -> Path:
    """The cache file of these texts under this tokenizer and length: a change in any of them is a new file."""
    digest = hashlib.sha256(f"textcls-token-ids {CACHE_FORMAT} {max_length}\n".encode())
    recipe = rust.to_str() if rust is not None else f"{type(tokenizer).__name__} {getattr(tokenizer, 'name_or_path', '')}"
    digest.update(hashlib.sha256(recipe.encode()).digest())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return cache_dir() / f"{digest.hexdigest()[:40]}.npz"


# ---- batches --------------------------------------------------------------------------------
class TokenizedRows(torch.utils.data.Dataset):
    """Tokenised rows that a `DataLoader` reads a whole batch at a time (`__getitems__`), padded in numpy.

    A batch is `{"input_ids", "attention_mask"}` (batch, seq) int64, plus `"labels"` (batch,) int64 when
    labelled, or (batch, labels) float32 0/1 when `labels` is a multi-hot matrix (`--multi-label`).
    With `windows` (`--long-text chunk`), a row is a text and `token_ids` holds its windows: a batch then
    holds every window of its texts, (windows, seq), and `"window_owner"` (windows,) int64, the text
    (0..batch-1) each window belongs to, so the loss is taken on the pooled logits of each text.
    """

    def __init__(self, token_ids: TokenIds, labels: Sequence[int] | None, pad_id: int, windows: Windows | None = None):
        self.token_ids = token_ids
        if labels is not None and not (isinstance(labels, np.ndarray) and labels.ndim == 2):
            labels = np.asarray(labels, dtype=np.int64)
        self.labels = labels  # (rows,) int64, or (rows, labels) float32 multi-hot
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
        rows = np.asarray(rows, dtype=np.int64)
        batch: dict[str, torch.Tensor] = {}
        windows = rows
        if self.windows is not None:
            starts, ends = self.windows.offsets[rows], self.windows.offsets[rows + 1]
            windows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
            batch["window_owner"] = torch.from_numpy(np.repeat(np.arange(len(rows)), ends - starts))
        input_ids, attention_mask = self.token_ids.pad(windows, self.pad_id)
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask), **batch}
        if self.labels is not None:
            batch["labels"] = torch.from_numpy(self.labels[rows])
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
        self._count = len(self.plan(0))

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
        return self._count


def batch_loader(rows: TokenizedRows, batches: Iterable[Any], config: TrainConfig) -> torch.utils.data.DataLoader:
    """A `DataLoader` over ready batches of row indices: pinned memory and prefetching workers on a GPU."""
    workers = config.num_workers or 0
    if not isinstance(batches, (EpochBatches, CountedBatches)):  # accelerate's DDP sharding wants lists of ints, not arrays
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


def pooled_logits(
    tokenizer: Any,
    texts: Sequence[str],
    windowing: Windowing,
    forward: Callable[[np.ndarray, np.ndarray], Any],
    *,
    pad_id: int,
    batch_size: int,
    batch_tokens: int | None = None,
    pool: Executor | None = None,
    workers: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """Logits (texts, classes) in input order for inference: texts cut by `windowing`, the windows run
    through `forward(input_ids, attention_mask)` (both (batch, seq) int64, returning (batch, classes)
    as numpy or a torch tensor) in length order, `batch_size` at a time (or by a token budget when
    `batch_tokens` is given), then pooled per text. Torch outputs are read back only after the last
    batch, so a GPU runs the batches without a host sync each.

    With `pool` (an executor of `workers` threads) the batches run concurrently, the next batch in
    length order going to whichever thread is free; a call with fewer than `workers` x `batch_size`
    windows is cut into smaller batches so that every thread gets one, and a single batch runs on the
    calling thread (a hand-off would only add latency to a one-text call). `forward` must then be
    thread-safe (ONNX Runtime's `run` is)."""
    from tqdm.auto import tqdm

    token_ids, windows = encode_windows(tokenizer, texts, windowing, cache=False)
    if pool is not None and workers > 1 and batch_tokens is None:
        batch_size = max(1, min(batch_size, -(-len(token_ids) // workers)))
    batches = sorted_plan(token_ids.lengths, batch_size=None if batch_tokens else batch_size, batch_tokens=batch_tokens)

    def run(rows: np.ndarray) -> Any:
        return forward(*token_ids.pad(rows, pad_id))

    results = pool.map(run, batches) if pool is not None and len(batches) > 1 else map(run, batches)  # one batch: no hand-off
    bar = tqdm(results, total=len(batches), desc="predicting", unit="batch", disable=not progress, leave=False)
    outputs = list(zip(batches, bar))
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    logits = np.zeros((len(token_ids), outputs[0][1].shape[-1]), dtype=np.float32)
    for rows, batch_logits in outputs:
        logits[rows] = batch_logits.cpu().numpy() if isinstance(batch_logits, torch.Tensor) else batch_logits
    return windows.pool(logits)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch on `device`; from pinned memory the copies do not block the host."""
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def array_to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy array as a tensor on `device`; to a GPU through pinned memory, so the copy waits for no queued work."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


# ---- the device -----------------------------------------------------------------------------
def for_this_device(config: TrainConfig) -> TrainConfig:
    """`config` with its device-dependent defaults resolved here (batching, lr, workers, compile), and
    a GPU set up by `environment.tune_cuda`."""
    gpu = torch.cuda.is_available()
    if gpu:
        tune_cuda()
    resolved = config.on_device(gpu=gpu, workers=GPU_WORKERS if gpu else 0)
    if config.compile and not resolved.compile:
        # measured on a 2-core AMD EPYC (benchmarks/cpu_compile.py): MiniLM's step was no faster compiled, after ~2 min compiling
        log.warning("--compile is ignored on a CPU (measured no faster there, after minutes of compiling: benchmarks/cpu_compile.py); training runs eager")
    log.log(
        logging.INFO if resolved != config else logging.DEBUG,  # a config resolved before (by `runs.train`) was logged then
        "batches: %s, lr %g, %s, compile %s", describe_batching(resolved), resolved.lr,
        "GPU" if gpu else "CPU", "on" if resolved.compile else "off",
    )
    return resolved


def describe_batching(config: TrainConfig) -> str:
    if config.batch_tokens is not None:
        return f"a budget of {config.batch_tokens} tokens (texts grouped by length, padded to multiples of 8)"
    return f"{config.batch_size} texts" + (" grouped by length" if config.group_by_length else "")


class ThroughputMeter:
    """Steady-state training samples/s: the time between consecutive step ends within an epoch, leaving
    out each epoch's first step, the run's first `WARMUP_STEPS` steps and whatever `pause()` brackets
    (evaluation, checkpoints)."""

    def __init__(self, warmup_steps: int = WARMUP_STEPS):
        self.warmup_steps = warmup_steps
        self.steps = 0
        self.seconds = 0.0
        self.samples = 0
        self._last: float | None = None

    def step_end(self, samples: int) -> None:
        now = time.perf_counter()
        self.steps += 1
        if self._last is not None and self.steps > self.warmup_steps:
            self.seconds += now - self._last
            self.samples += samples
        self._last = now

    def pause(self) -> None:
        """Stop the clock until the next step ends (before evaluating or saving). The time since the last
        step end counts: on a GPU that is where the queued steps finish (synchronised here first)."""
        if self._last is not None and self.steps > self.warmup_steps:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - self._last
        self._last = None

    @property
    def samples_per_second(self) -> float | None:
        return round(self.samples / self.seconds, 2) if self.seconds > 0 and self.samples else None
