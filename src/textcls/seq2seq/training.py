"""The encoder-decoder's training loop, with the from-scratch families' conventions:

- seeded batches of pairs of similar source length (`seed + epoch`), dropout seeded by `seed + step`;
- teacher forcing, cross-entropy over target tokens (padding ignored), AdamW, gradient clipping at 1.0;
- after every epoch a dev evaluation (loss, and greedy decoding scored by token accuracy, exact match
  and BLEU), the best weights by dev token accuracy kept, early stopping, a time budget;
- a checkpoint per epoch written without pickle (safetensors + JSON) into a partial folder renamed into
  place, which `resume` continues from;
- a tqdm progress bar per epoch.

Example:
    >>> summary = train_loop(model, train_data, dev_data, config, Path("ckpt"), identity={}, score_dev=fn)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textcls.errors import RunFolderError
from textcls.seq2seq.config import Seq2SeqConfig
from textcls.seq2seq.model import Seq2Seq
from textcls.seq2seq.pairs import BOS, EOS, PAD
from textcls.training.batching import length_sorted_batches
from textcls.training.checkpoints import (
    BEST_WEIGHTS_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    last_checkpoint,
    write_checkpoint,
)
from textcls.training.checkpoints import clone_state as _clone_state
from textcls.training.checkpoints import load_optimizer_tensors as _load_optimizer_tensors

log = logging.getLogger(__name__)

CHUNK_BATCHES = 50  # batches per length-sorted chunk: little padding, yet a random batch order
MAX_GRAD_NORM = 1.0


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
    module: Seq2Seq, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]
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
    was_training = module.training
    module.eval()
    total, tokens = 0.0, 0
    for rows in length_sorted_batches([len(ids) for ids in data.sources], batch_size):
        loss, count = batch_loss(module, [data.sources[i] for i in rows], [data.targets[i] for i in rows])
        total, tokens = total + loss.item() * count, tokens + count
    module.train(was_training)
    return total / max(tokens, 1)


# ---- checkpoints ------------------------------------------------------------------------------


# ---- the loop ---------------------------------------------------------------------------------
@dataclass
class LoopState:
    """Where training stands; written into each checkpoint and read back by `resume`."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    train_seconds: float = 0.0


def train_loop(
    module: Seq2Seq,
    train: Encoded,
    dev: Encoded,
    config: Seq2SeqConfig,
    checkpoint_dir: Path,
    *,
    identity: Mapping[str, Any],
    score_dev: Callable[[Seq2Seq], dict[str, Any]],
) -> dict[str, Any]:
    """Train `module` in place and leave the best weights (by dev token accuracy) in it, in eval mode.

    `score_dev(module)` decodes dev and returns its scores; `identity` (hyper-parameters, vocabulary
    sizes) goes into each checkpoint, and resuming checks it matches. Returns the training summary.
    """
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lengths = np.array([len(ids) for ids in train.sources])
    state, best_state = LoopState(), _clone_state(module)
    if config.resume:
        state, best_state = _resume(checkpoint_dir, module, optimizer, identity, best_state)
    steps_per_epoch = -(-len(train.sources) // config.batch_size)
    log.info(
        "training %d pairs, %d steps per epoch, at most %d epochs, batch %d, lr %g",
        len(train.sources),
        steps_per_epoch,
        config.epochs,
        config.batch_size,
        config.lr,
    )
    deadline = time.perf_counter() + config.time_budget * 60.0 if config.time_budget is not None else None
    patience, stop_reason = config.early_stopping_patience, "epochs"
    while state.epoch < config.epochs:
        started = time.perf_counter()
        batches = training_batches(lengths, config.batch_size, config.seed + state.epoch)
        torch.manual_seed(config.seed + state.step)  # dropout masks, replayed by a run resumed here
        train_loss, out_of_time = _train_epoch(module, optimizer, batches, train, state, deadline)
        state.epoch += 1
        state.train_seconds += time.perf_counter() - started
        if _evaluate_epoch(module, dev, config, state, train_loss, score_dev):
            best_state = _clone_state(module)
        write_checkpoint(
            checkpoint_dir,
            state.epoch,
            module,
            best_state,
            optimizer,
            {
                "identity": dict(identity),
                **{k: v for k, v in vars(state).items()},
                "seeds": {"seed": config.seed, "batch_order": config.seed + state.epoch - 1},
            },
        )
        if out_of_time:
            stop_reason = "time_budget"
            log.warning("time budget of %.3g min reached in epoch %d; stopping", config.time_budget, state.epoch)
            break
        if patience and state.epochs_without_improvement >= patience:
            stop_reason = "early_stopping"
            log.info("no dev improvement for %d epochs; stopping early after epoch %d", patience, state.epoch)
            break
    module.load_state_dict(best_state)
    module.eval()
    return {
        "epochs_run": state.epoch,
        "steps": state.step,
        "best_epoch": state.best_epoch,
        "best_dev_token_accuracy": state.best_metric,
        "stopped_by": stop_reason,
        "train_seconds": round(state.train_seconds, 2),
        "history": state.history,
    }


def _train_epoch(
    module: Seq2Seq,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[np.ndarray],
    train: Encoded,
    state: LoopState,
    deadline: float | None,
) -> tuple[float, bool]:
    """One epoch; advances `state.step`. Returns the mean loss and whether the time budget ran out."""
    from tqdm.auto import tqdm

    module.train()
    total, steps = 0.0, 0
    bar = tqdm(batches, desc=f"epoch {state.epoch + 1}", unit="batch", leave=False)
    for rows in bar:
        loss, _ = batch_loss(module, [train.sources[i] for i in rows], [train.targets[i] for i in rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        state.step, total, steps = state.step + 1, total + loss.item(), steps + 1
        if steps % 20 == 0:
            bar.set_postfix(loss=f"{total / steps:.4f}")
        if deadline is not None and time.perf_counter() >= deadline:
            bar.close()
            return total / steps, True
    bar.close()
    return total / max(steps, 1), False


def _evaluate_epoch(
    module: Seq2Seq,
    dev: Encoded,
    config: Seq2SeqConfig,
    state: LoopState,
    train_loss: float,
    score_dev: Callable[[Seq2Seq], dict[str, Any]],
) -> bool:
    """Score dev, append the epoch's row to the history; True when this epoch is the best so far."""
    dev_scores = score_dev(module)
    row = {
        "epoch": state.epoch,
        "step": state.step,
        "train_loss": train_loss,
        "dev_loss": dev_loss(module, dev, config.eval_batch_size),
        "dev_token_accuracy": dev_scores["token_accuracy"],
        "dev_exact_match": dev_scores["exact_match"],
        "dev_bleu": dev_scores["bleu"],
        "seconds": round(state.train_seconds, 2),
    }
    state.history.append(row)
    log.info(
        "epoch %d (step %d, %.0fs): train loss %.4f, dev loss %.4f, token accuracy %.4f, exact match %.4f, BLEU %.2f",
        state.epoch,
        state.step,
        state.train_seconds,
        train_loss,
        row["dev_loss"],
        row["dev_token_accuracy"],
        row["dev_exact_match"],
        row["dev_bleu"],
    )
    if state.best_metric is None or row["dev_token_accuracy"] > state.best_metric:
        state.best_metric, state.best_epoch, state.epochs_without_improvement = (
            row["dev_token_accuracy"],
            state.epoch,
            0,
        )
        return True
    state.epochs_without_improvement += 1
    return False


def _resume(
    checkpoint_dir: Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    identity: Mapping[str, Any],
    best_state: dict[str, torch.Tensor],
) -> tuple[LoopState, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    for partial in checkpoint_dir.glob(".checkpoint-*.partial"):
        log.warning("removing the incomplete checkpoint %s", partial)
        shutil.rmtree(partial, ignore_errors=True)
    checkpoint = last_checkpoint(checkpoint_dir)
    if checkpoint is None:
        log.warning("--resume: no complete checkpoint in %s; starting from the beginning", checkpoint_dir)
        return LoopState(), best_state
    saved = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    if saved["identity"] != dict(identity):
        raise RunFolderError(
            f"{checkpoint}: --resume expected a checkpoint of {dict(identity)}, found {saved['identity']}; "
            "train without --resume or with the same settings"
        )
    module.load_state_dict(load_file(str(checkpoint / WEIGHTS_FILE)))
    _load_optimizer_tensors(optimizer, load_file(str(checkpoint / OPTIMIZER_FILE)))
    state = LoopState(**{name: saved[name] for name in vars(LoopState())})
    log.info("resuming from %s after epoch %d (step %d)", checkpoint, state.epoch, state.step)
    return state, load_file(str(checkpoint / BEST_WEIGHTS_FILE))
