"""The encoder-decoder's training: its batches, loss and dev scores, trained on the one loop
(`textcls.training.loop`) with the from-scratch families' conventions:

- seeded batches of pairs of similar source length (`seed + epoch`), dropout seeded by `seed + step`;
- teacher forcing, cross-entropy over target tokens (padding ignored), AdamW at a constant learning
  rate, gradient clipping at 1.0;
- after every epoch a dev evaluation (loss, and greedy decoding scored by token accuracy, exact match
  and BLEU), the best weights by dev token accuracy kept, early stopping, a time budget;
- a checkpoint per epoch (safetensors + JSON), which `resume` continues from; an epoch cut by the
  time budget counts as run.

Example:
    >>> summary = train_loop(model, train, dev, config, Path("ckpt"), identity={}, score_dev=fn)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textcls.seq2seq.config import Seq2SeqConfig
from textcls.seq2seq.model import Seq2Seq
from textcls.seq2seq.pairs import BOS, EOS, PAD
from textcls.training.batching import length_sorted_batches
from textcls.training.loop import EpochEnd, LoopHooks, LoopSettings, run_loop

log = logging.getLogger(__name__)

CHUNK_BATCHES = 50  # batches per length-sorted chunk: little padding, yet a random batch order
MAX_GRAD_NORM = 1.0
LOGGING_STEPS = 20  # steps between progress-bar loss updates


@dataclass(frozen=True)
class Encoded:
    """A split as ids: each source and target ends in `</s>`."""

    sources: list[list[int]]
    targets: list[list[int]]


# ---- batches ----------------------------------------------------------------------------------
def pad_ids(sequences: Sequence[Sequence[int]], start: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: ids and mask (1 = real token), both (batch, longest [+1 with `start`])."""
    rows = [([start] if start is not None else []) + list(ids) for ids in sequences]
    longest = max(len(ids) for ids in rows)
    ids = torch.full((len(rows), longest), PAD, dtype=torch.long)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = torch.as_tensor(tokens)
    return ids, (ids != PAD).long()


def training_batches(lengths: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """One epoch's batches of row indices, a pure function of `seed` (a resumed run replays them):
    shuffled, sorted by source length within chunks of 50 batches, cut, and the batch order shuffled."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = batch_size * CHUNK_BATCHES
    parts = [order[start : start + chunk] for start in range(0, len(order), chunk)]
    order = np.concatenate([part[np.argsort(lengths[part], kind="stable")] for part in parts])
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def max_output_steps(source_length: int) -> int:
    """How long a translation may run before it is cut: twice the source, plus 10."""
    return 2 * source_length + 10


def decode(
    module: Seq2Seq, sources: Sequence[Sequence[int]], batch_size: int, progress: bool = False
) -> tuple[list[list[int]], list[np.ndarray | None]]:
    """Greedy output ids (up to and with `</s>`) per source in input order, and each one's weights
    (output, source) without padding, or None without attention."""
    from tqdm.auto import tqdm

    was_training = module.training
    module.eval()
    outputs: list[list[int]] = [[] for _ in sources]
    weights: list[np.ndarray | None] = [None for _ in sources]
    batches = list(length_sorted_batches([len(ids) for ids in sources], batch_size))
    for rows in tqdm(batches, desc="translating", unit="batch", disable=not progress, leave=False):
        source_ids, source_mask = pad_ids([sources[i] for i in rows])  # (batch, source)
        ids, attention = module.greedy(source_ids, source_mask, max_output_steps(source_ids.shape[1]))
        for k, row in enumerate(rows):
            tokens = ids[k].tolist()
            # through </s>, else cut at this source's own limit (the batch ran to its longest source's)
            length = tokens.index(EOS) + 1 if EOS in tokens else len(tokens)
            length = min(length, max_output_steps(len(sources[row])))
            outputs[row] = tokens[:length]
            if attention is not None:
                weights[row] = attention[k, :length, : len(sources[row])].float().numpy()
    module.train(was_training)
    return outputs, weights


def batch_loss(
    module: nn.Module, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy per target token under teacher forcing, and the number of tokens."""
    source_ids, source_mask = pad_ids(sources)  # (batch, source)
    target_in, _ = pad_ids([ids[:-1] for ids in targets], start=BOS)  # (batch, target): <s> y1 .. yn
    target_out, _ = pad_ids(targets)  # (batch, target): y1 .. yn </s>
    logits, _ = module(source_ids, source_mask, target_in)  # (batch, target, vocab)
    loss = F.cross_entropy(logits.flatten(0, 1), target_out.flatten(), ignore_index=PAD)
    return loss, int((target_out != PAD).sum())


@torch.no_grad()
def dev_loss(module: Seq2Seq, data: Encoded, batch_size: int) -> float:
    """Mean cross-entropy per target token of `data` under teacher forcing, in eval mode."""
    was_training = module.training
    module.eval()
    total, tokens = 0.0, 0
    for rows in length_sorted_batches([len(ids) for ids in data.sources], batch_size):
        loss, count = batch_loss(module, [data.sources[i] for i in rows], [data.targets[i] for i in rows])
        total, tokens = total + loss.item() * count, tokens + count
    module.train(was_training)
    return total / max(tokens, 1)


# ---- training on the one loop -----------------------------------------------------------------
def train_loop(
    module: Seq2Seq,
    train: Encoded,
    dev: Encoded,
    config: Seq2SeqConfig,
    checkpoint_dir: Path,
    *,
    identity: Mapping[str, Any],
    score_dev: Callable[[Seq2Seq], Mapping[str, Any]],
) -> dict[str, Any]:
    """Train `module` in place on the one loop (`training.loop`) and leave the best weights (by dev token
    accuracy) in it, in eval mode.

    `score_dev(module)` decodes dev and returns its scores; `identity` (hyper-parameters, vocabulary
    sizes) goes into each checkpoint, and resuming checks it matches. Progress is counted in epochs:
    checkpoints are numbered by epoch, and an epoch cut by the time budget counts as run. Returns the
    training summary.
    """
    lengths = np.array([len(ids) for ids in train.sources])
    steps_per_epoch = -(-len(train.sources) // config.batch_size)

    def loss(model: nn.Module, rows: np.ndarray) -> torch.Tensor:
        return batch_loss(model, [train.sources[i] for i in rows], [train.targets[i] for i in rows])[0]

    def evaluate(_: nn.Module) -> dict[str, float]:  # the loop evaluates `module` itself, the Seq2Seq it is
        scores = score_dev(module)
        return {**scores, "loss": dev_loss(module, dev, config.eval_batch_size)}

    hooks: LoopHooks[np.ndarray, dict[str, Any]] = LoopHooks(
        steps_per_epoch=steps_per_epoch,
        plan=lambda epoch: training_batches(lengths, config.batch_size, config.seed + epoch),
        load=lambda batches: batches,  # a batch is its row indices; `loss` pads them
        loss=loss,
        evaluate=evaluate,
        epoch_row=_epoch_row,
    )
    settings = LoopSettings(
        epochs=config.epochs,
        seed=config.seed,
        metric="token_accuracy",
        identity=identity,
        unit="epoch",
        early_stopping_patience=config.early_stopping_patience,
        time_budget=config.time_budget,
        resume=config.resume,
        logging_steps=LOGGING_STEPS,
        max_grad_norm=MAX_GRAD_NORM,
    )
    log.info(
        "training %d pairs, %d steps per epoch, at most %d epochs, batch %d, lr %g",
        len(train.sources),
        steps_per_epoch,
        config.epochs,
        config.batch_size,
        config.lr,
    )
    # a constant learning rate: the loop leaves the optimizer's own
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result = run_loop(module, optimizer, hooks, settings, checkpoint_dir)
    state = result.state
    return {
        "epochs_run": state.epoch,
        "steps": state.step,
        "best_epoch": state.best_epoch,
        "best_dev_token_accuracy": state.best_metric,
        "stopped_by": result.stopped_by,
        "train_seconds": round(state.train_seconds, 2),
        "history": state.history,
    }


def _epoch_row(end: EpochEnd, dev: Mapping[str, float]) -> dict[str, Any]:
    """The history row of one dev evaluation, logged."""
    row = {
        "epoch": end.epoch,
        "step": end.step,
        "train_loss": end.train_loss,
        "dev_loss": dev["loss"],
        "dev_token_accuracy": dev["token_accuracy"],
        "dev_exact_match": dev["exact_match"],
        "dev_bleu": dev["bleu"],
        "seconds": round(end.train_seconds, 2),
    }
    log.info(
        "epoch %d (step %d, %.0fs): train loss %.4f, dev loss %.4f, token accuracy %.4f, exact match %.4f, BLEU %.2f",
        end.epoch,
        end.step,
        end.train_seconds,
        end.train_loss if end.train_loss is not None else float("nan"),
        dev["loss"],
        dev["token_accuracy"],
        dev["exact_match"],
        dev["bleu"],
    )
    return row
