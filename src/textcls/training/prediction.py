"""The one batch path of prediction for torch and ONNX models: texts cut into windows, run in
length order (by count, or by a token budget on a GPU), logits pooled back per text in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
import torch

from textcls.data.windows import Windowing
from textcls.training.batching import sorted_plan
from textcls.training.tokens import TextTokenizer, encode_windows

# Inference batches on a GPU: ~1,000 AG News texts. Several times the rate of 64-text batches, and more
# again with the batches in pinned memory (measured by benchmarks/gpu_settings.py).
GPU_PREDICT_TOKENS = 65_536


def pooled_logits(
    tokenizer: TextTokenizer,
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

    results = (
        pool.map(run, batches) if pool is not None and len(batches) > 1 else map(run, batches)
    )  # one batch: no hand-off
    bar = tqdm(results, total=len(batches), desc="predicting", unit="batch", disable=not progress, leave=False)
    outputs = list(zip(batches, bar))
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    logits = np.zeros((len(token_ids), outputs[0][1].shape[-1]), dtype=np.float32)
    for rows, batch_logits in outputs:
        logits[rows] = batch_logits.cpu().numpy() if isinstance(batch_logits, torch.Tensor) else batch_logits
    return windows.pool(logits)
