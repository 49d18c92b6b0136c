"""What the from-scratch torch families share: tokenizer, one training loop, `TorchClassifier`.

The families `lstm`, `lstm-attention` and `scratch-transformer` differ only in their `nn.Module`;
everything around it lives here, once:

- texts become WordPiece ids with the embedded all-MiniLM-L6-v2 tokenizer (vocab 30,522, uncased,
  pad id 0), cut to `max_length` and padded per batch to its longest text (rounded up to a multiple
  of 8), never to a fixed length;
- one training loop: AdamW, linear warm-up then linear decay, gradient clipping at 1.0, batches of
  texts of similar length, a dev evaluation after every epoch, the best weights by dev accuracy,
  early stopping, a time budget, and resumable checkpoints written without pickle (safetensors + JSON).
  Its data path is `textcls.training`'s, the same as the pretrained family's: cached Rust tokenisation,
  token-budget batches on a GPU, pinned memory and prefetching workers, `torch.compile` on a GPU with `--compile`, and
  a loss read back from the device only when it is logged;
- `TorchClassifier` turns a subclass's `build_module(hparams, vocab_size, num_labels)` into a full
  `Classifier` (fit, predict_proba, save, load).

Every module's `forward(input_ids, attention_mask)` returns `(logits, attention_weights)`, with
`attention_weights` None where the family has none.

Example:
    >>> from textcls.models.rnn import LSTMClassifier
    >>> config = TrainConfig(family="lstm")  # doctest: +SKIP
    >>> clf, summary = LSTMClassifier.fit(train, dev, label_names, config, Path("ckpt"))  # doctest: +SKIP
    >>> clf.predict_proba(["Stocks fell sharply."]).shape  # doctest: +SKIP
    (1, 4)
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textcls.config import TrainConfig
from textcls.data.imbalance import loss_weights, with_metric
from textcls.data.loading import Split
from textcls.data.multilabel import targets
from textcls.data.windows import Windowing
from textcls.errors import ConfigError, RunFolderError, TextclsError
from textcls.models.base import (
    BALANCED_SAMPLER,
    LONG_TEXT,
    MULTI_LABEL,
    PREDICT,
    Classifier,
    EpochRow,
    TrainSummary,
    check_training_options,
)
from textcls.models.encoders import embedded_model_path
from textcls.reporting.metrics import headline_metrics, predicted_labels
from textcls.runfolder import damaged
from textcls.training.batching import sorted_plan, training_plan
from textcls.training.checkpoints import (
    BEST_WEIGHTS_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    last_checkpoint,
    write_checkpoint,
)
from textcls.training.checkpoints import clone_state as _clone_state
from textcls.training.checkpoints import load_optimizer_tensors as _load_optimizer_tensors
from textcls.training.cpu_speed import lean_cpu_training
from textcls.training.device import describe_batching, device, for_this_device, resolve_precision
from textcls.training.loaders import EpochBatches, TokenizedRows, batch_loader, eval_plan, to_device
from textcls.training.objectives import Objective, probabilities
from textcls.training.throughput import ThroughputMeter
from textcls.training.tokens import TokenIds, encode_windows

log = logging.getLogger(__name__)

PAD_ID = 0  # [PAD] in the all-MiniLM-L6-v2 vocabulary
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "neural.json"
FORMAT_VERSION = 1
MAX_GRAD_NORM = 1.0


# ---- tokenizer ------------------------------------------------------------------------------
def load_tokenizer(path: Path | None = None) -> Any:
    """The WordPiece `tokenizers.Tokenizer` in `path` (default: the embedded all-MiniLM-L6-v2 one).

    Example:
        >>> load_tokenizer().get_vocab_size()  # doctest: +SKIP
        30522
    """
    from tokenizers import Tokenizer

    path = Path(path) if path is not None else embedded_model_path() / TOKENIZER_FILE
    if not path.is_file():
        raise RunFolderError(f"expected a tokenizer file at {path}, found none; save the model again or train again")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()  # the embedded file pads every text to 128; batches are padded to their longest instead
    if tokenizer.token_to_id("[PAD]") != PAD_ID:
        raise TextclsError(f"{path}: expected '[PAD]' at id {PAD_ID}, found {tokenizer.token_to_id('[PAD]')}")
    return tokenizer


def pad_batch(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence: `input_ids` and `attention_mask` (1 = real token), both (batch, seq)."""
    lengths = torch.tensor([len(ids) for ids in sequences])
    input_ids = torch.full((len(sequences), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.as_tensor(ids)
    attention_mask = (torch.arange(input_ids.shape[1]) < lengths[:, None]).long()
    return input_ids, attention_mask


# ---- training loop --------------------------------------------------------------------------
def training_batches(lengths: np.ndarray, batch_size: int, seed: int, group_by_length: bool = True) -> list[np.ndarray]:
    """One epoch's batches of `batch_size` row indices, a pure function of `seed` (so a resumed run
    replays them): `batching.training_plan` by count, texts of similar length together, in random order."""
    return training_plan(lengths, seed, batch_size=batch_size, group_by_length=group_by_length)


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def make_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW where matrices (embeddings included) decay and biases and LayerNorm gains do not."""
    parameters = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]
    # fused: one kernel over all parameters, ~10x faster than the per-tensor loop for a 30k-row embedding on a CPU
    return torch.optim.AdamW(groups, lr=lr, fused=True)


@torch.inference_mode()
def predict_logits(
    module: nn.Module,
    sequences: TokenIds | Sequence[Sequence[int]],
    batch_size: int,
    progress: bool = False,
    batches: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Logits (rows, classes) in input order, in fp32; batches of similar length carry little padding.

    `batches` (row indices) replaces the default: `batch_size` rows at a time in length order."""
    from tqdm.auto import tqdm

    token_ids = sequences if isinstance(sequences, TokenIds) else TokenIds.from_lists(sequences)
    was_training = module.training
    module.eval()
    target = next(module.parameters()).device
    logits = None
    batches = batches if batches is not None else sorted_plan(token_ids.lengths, batch_size=batch_size)
    rows_dataset = TokenizedRows(token_ids, None, PAD_ID)
    for rows in tqdm(batches, desc="predicting", unit="batch", disable=not progress, leave=False):
        batch = to_device(rows_dataset.__getitems__(rows), target)
        batch_logits, _ = module(batch["input_ids"], batch["attention_mask"])  # (batch, classes)
        if logits is None:
            logits = np.zeros((len(token_ids), batch_logits.shape[-1]), dtype=np.float32)
        logits[rows] = batch_logits.float().cpu().numpy()
    module.train(was_training)
    return logits


def evaluate(
    module: nn.Module, rows: TokenizedRows, batches: Sequence[np.ndarray], objective: Objective
) -> dict[str, float]:
    """Dev loss and headline metrics of `module` on encoded texts, their windows scored in `batches` of
    window indices and pooled per text."""
    logits = predict_logits(module, rows.token_ids, 0, batches=batches)
    if rows.windows is not None:
        logits = rows.windows.pool(logits)  # (texts, classes)
    loss = objective.loss(torch.from_numpy(logits), torch.from_numpy(rows.labels)).item()
    return {"loss": loss, **headline_metrics(rows.labels, predicted_labels(logits, objective.multi_label))}


@dataclass
class LoopState:
    """Where training stands: written into each checkpoint, read back by `--resume`."""

    step: int = 0
    history: list[EpochRow] = field(default_factory=list)
    best_metric: float | None = None
    epochs_without_improvement: int = 0
    loss_sum: float = 0.0  # over every step of the training, resumed parts included
    loss_steps: int = 0


@dataclass(frozen=True)
class Schedule:
    """The step plan of a training run, fixed by the data size and the config."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def of(cls, steps_per_epoch: int, config: TrainConfig) -> Schedule:
        total_steps = max(1, math.ceil(config.epochs * steps_per_epoch))
        return cls(steps_per_epoch, total_steps, math.ceil(config.warmup_ratio * total_steps))


def train_module(
    module: nn.Module,
    rows: TokenizedRows,
    dev_rows: TokenizedRows,
    config: TrainConfig,
    checkpoint_dir: Path,
    *,
    precision: str,
    description: str,
    identity: Mapping[str, Any],
    objective: Objective,
    sample_weights: np.ndarray | None = None,
) -> TrainSummary:
    """Train `module` in place and leave the best weights (by dev `config.metric`) in it, in eval mode.

    `config` is resolved for this device (`device.for_this_device`). Evaluates on dev after every
    epoch (and when stopped early) and writes a checkpoint there. `identity` (family,
    hyper-parameters, batching) goes into each checkpoint; resuming checks it matches. Batch order
    and dropout are seeded from `config.seed` and the step, so a resumed run replays the batches an
    uninterrupted one would have.
    """
    epochs = EpochBatches(rows.text_lengths(config.batch_tokens), config, sample_weights)
    schedule = Schedule.of(len(epochs), config)
    dev_batches = eval_plan(dev_rows.token_ids.lengths, config)
    optimizer = make_optimizer(module, config.lr, config.weight_decay)
    # compiled for the forward and backward passes only; checkpoints and evaluation use `module` itself
    forward = torch.compile(module) if config.compile else module
    patience = config.early_stopping_patience
    state, best_state, resumed_from = LoopState(), _clone_state(module), None
    if config.resume:
        state, best_state, resumed_from = _resume(checkpoint_dir, module, optimizer, identity, best_state, schedule)

    log.info(
        "training %d rows, %d steps (%d per epoch), batches of %s, lr %g, %s",
        len(rows),
        schedule.total_steps,
        schedule.steps_per_epoch,
        describe_batching(config),
        config.lr,
        "bf16 autocast" if precision == "bf16" else "fp32",
    )
    deadline = time.perf_counter() + config.time_budget * 60.0 if config.time_budget is not None else None
    stopped_by_time_budget, samples_seen, meter = False, 0, ThroughputMeter()
    started = time.perf_counter()
    while state.step < schedule.total_steps and not (patience and state.epochs_without_improvement >= patience):
        epoch = state.step // schedule.steps_per_epoch
        batches = epochs.plan(epoch)
        first = state.step - epoch * schedule.steps_per_epoch
        last = min(schedule.steps_per_epoch, schedule.total_steps - epoch * schedule.steps_per_epoch)
        dropout_seed = config.seed + state.step
        torch.manual_seed(dropout_seed)  # dropout masks, replayed by a run resumed here
        loader = batch_loader(rows, batches[first:last], config)
        epoch_loss, epoch_steps, stopped_by_time_budget = _train_epoch(
            forward, optimizer, loader, state, schedule, config, precision, epoch, deadline, meter, objective
        )
        meter.pause()
        samples_seen += sum(len(batch) for batch in batches[first : first + epoch_steps])
        improved = _evaluate_epoch(
            module, dev_rows, dev_batches, state, schedule, epoch_loss, epoch_steps, objective, config.metric
        )
        if improved:
            best_state = _clone_state(module)
        seeds = {"seed": config.seed, "batch_order": config.seed + epoch, "dropout": dropout_seed}
        write_checkpoint(
            checkpoint_dir,
            state.step,
            module,
            best_state,
            optimizer,
            _checkpoint_state(state, schedule, identity, seeds),
        )
        if patience and state.epochs_without_improvement >= patience:
            log.info("no dev improvement for %d evaluations; stopping early at step %d", patience, state.step)
        if stopped_by_time_budget:
            break

    train_seconds = time.perf_counter() - started
    module.load_state_dict(best_state)
    module.eval()
    return TrainSummary(
        model=description,
        max_length=config.max_length,
        precision=precision,
        world_size=1,
        train_seconds=round(train_seconds, 2),
        train_samples_per_second=round(samples_seen / train_seconds, 2) if samples_seen else None,
        steady_samples_per_second=meter.samples_per_second,
        train_loss=state.loss_sum / state.loss_steps if state.loss_steps else None,
        global_step=state.step,
        best_checkpoint_metric=state.best_metric,
        stopped_by_time_budget=stopped_by_time_budget,
        resumed_from=resumed_from,
        epochs=state.history,
    )


def _resume(
    checkpoint_dir: Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    identity: Mapping[str, Any],
    best_state: dict[str, torch.Tensor],
    schedule: Schedule,
) -> tuple[LoopState, dict[str, torch.Tensor], str | None]:
    """Load the last checkpoint into `module` and `optimizer`; the loop state, best weights and where it came from."""
    from safetensors.torch import load_file

    checkpoint = last_checkpoint(checkpoint_dir)
    if checkpoint is None:
        log.warning("--resume: no checkpoint in %s; starting from scratch", checkpoint_dir)
        return LoopState(), best_state, None
    saved = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    if saved["identity"] != dict(identity):
        raise TextclsError(
            f"cannot resume from {checkpoint}: expected a checkpoint of {dict(identity)}, found "
            f"{saved['identity']}; train without --resume or with the same family and settings"
        )
    module.load_state_dict(load_file(str(checkpoint / WEIGHTS_FILE)))
    _load_optimizer_tensors(optimizer, load_file(str(checkpoint / OPTIMIZER_FILE)))
    state = LoopState(
        step=saved["step"],
        history=saved["history"],
        best_metric=saved["best_metric"],
        epochs_without_improvement=saved["epochs_without_improvement"],
        loss_sum=saved["loss_sum"],
        loss_steps=saved["loss_steps"],
    )
    log.info("resuming from %s at step %d of %d", checkpoint, state.step, schedule.total_steps)
    return state, load_file(str(checkpoint / BEST_WEIGHTS_FILE)), str(checkpoint)


def _train_epoch(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: torch.utils.data.DataLoader,
    state: LoopState,
    schedule: Schedule,
    config: TrainConfig,
    precision: str,
    epoch: int,
    deadline: float | None,
    meter: ThroughputMeter,
    objective: Objective,
) -> tuple[float, int, bool]:
    """One epoch's (remaining) batches; advances `state.step`. Returns the loss sum, steps run, and
    whether the time budget ran out. The loss stays on the device until a logging step reads it."""
    from tqdm.auto import tqdm

    parameters = [p for p in forward.parameters() if p.requires_grad]
    target = parameters[0].device
    forward.train()
    loss_sum, epoch_steps, out_of_time = torch.zeros((), device=target), 0, False
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False)
    for batch in bar:
        # input_ids, attention_mask (windows, seq); labels (texts,); window_owner (windows,) when texts have several
        batch = to_device(batch, target)
        lr = learning_rate(state.step, schedule.total_steps, schedule.warmup_steps, config.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(target.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits, _ = forward(batch["input_ids"], batch["attention_mask"])  # (windows, classes)
        loss, _ = objective.text_loss(logits, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
        optimizer.step()

        state.step += 1
        loss_sum += loss.detach()
        epoch_steps += 1
        meter.step_end(len(batch["labels"]))
        if state.step % config.logging_steps == 0:
            mean_loss = loss_sum.item() / epoch_steps  # the one host sync, every logging_steps steps
            bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
            log.debug("step %d: loss %.4f, lr %.3g", state.step, mean_loss, lr)
        if deadline is not None and time.perf_counter() >= deadline:
            log.warning("time budget of %.3g min reached at step %d; stopping", config.time_budget, state.step)
            out_of_time = True
            break
    bar.close()
    return float(loss_sum.item()), epoch_steps, out_of_time


def _evaluate_epoch(
    module: nn.Module,
    dev_rows: TokenizedRows,
    dev_batches: Sequence[np.ndarray],
    state: LoopState,
    schedule: Schedule,
    epoch_loss: float,
    epoch_steps: int,
    objective: Objective,
    metric: str,
) -> bool:
    """Score dev, append the epoch's row to `state.history` and track the best by `metric`; True if this epoch is the best."""
    state.loss_sum, state.loss_steps = state.loss_sum + epoch_loss, state.loss_steps + epoch_steps
    dev = evaluate(module, dev_rows, dev_batches, objective)
    row = EpochRow(
        epoch=round(state.step / schedule.steps_per_epoch, 4),
        step=state.step,
        train_loss=epoch_loss / epoch_steps if epoch_steps else None,
        dev_loss=dev["loss"],
        dev_accuracy=dev["accuracy"],
        dev_macro_f1=dev["macro_f1"],
    )
    state.history.append(row)
    log.info(
        "epoch %.2f (step %d): train loss %.4f, dev loss %.4f, dev accuracy %.4f, dev macro-F1 %.4f",
        row["epoch"],
        state.step,
        row["train_loss"] or float("nan"),
        dev["loss"],
        dev["accuracy"],
        dev["macro_f1"],
    )
    if state.best_metric is None or dev[metric] > state.best_metric:
        state.best_metric, state.epochs_without_improvement = dev[metric], 0
        return True
    state.epochs_without_improvement += 1
    return False


def _checkpoint_state(
    state: LoopState, schedule: Schedule, identity: Mapping[str, Any], seeds: dict[str, int]
) -> dict[str, Any]:
    """The JSON written as a checkpoint's state.json."""
    return {
        "identity": dict(identity),
        "epoch": state.history[-1]["epoch"],
        "step": state.step,
        "total_steps": schedule.total_steps,
        "steps_per_epoch": schedule.steps_per_epoch,
        "best_metric": state.best_metric,
        "epochs_without_improvement": state.epochs_without_improvement,
        "loss_sum": state.loss_sum,
        "loss_steps": state.loss_steps,
        "history": state.history,
        # batches of epoch e come from seed + e, dropout from seed + the step the epoch (or its resumed part) began at
        "seeds": seeds,
    }


# ---- the classifier ------------------------------------------------------------------------
@dataclass
class TokenAttention:
    """One text's attention: its tokens (with [CLS]/[SEP]) and weights over them.

    `weights` is (tokens,) for lstm-attention and (layers, heads, tokens, tokens) for scratch-transformer.
    """

    tokens: list[str]
    weights: np.ndarray


class TorchClassifier(Classifier):
    """A from-scratch torch model over WordPiece ids; subclasses supply the `nn.Module`.

    A subclass sets `family`, returns its hyper-parameters from `default_hparams()` (a small JSON-able
    dict, saved with the weights) and builds the module in `build_module`.
    """

    family = ""
    capabilities = frozenset({PREDICT, BALANCED_SAMPLER, LONG_TEXT, MULTI_LABEL})
    # Whether bf16 autocast pays off on a CPU for this family ("auto" precision); measured per family.
    bf16_on_cpu = True

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        label_names: Sequence[str],
        max_length: int,
        hparams: Mapping[str, Any],
        tokenizer_file: Path,
        windowing: Windowing | None = None,
        multi_label: bool = False,
    ):
        self.model = model
        self.multi_label = multi_label  # a sigmoid per label instead of a softmax over them
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length
        self.hparams = dict(hparams)
        self.tokenizer_file = Path(tokenizer_file)
        self.windowing = windowing or Windowing(max_length)  # what reads texts longer than max_length

    # ---- what a family supplies -----------------------------------------------------------
    @classmethod
    def default_hparams(cls) -> dict[str, Any]:
        """The family's hyper-parameters (sizes, dropout); `fit(hparams=...)` overrides some of them."""
        raise NotImplementedError

    @classmethod
    def build_module(cls, hparams: Mapping[str, Any], vocab_size: int, num_labels: int) -> nn.Module:
        """A freshly initialised module for these hyper-parameters."""
        raise NotImplementedError

    @classmethod
    def describe(cls, hparams: Mapping[str, Any]) -> str:
        """A short description with sizes, for the training summary."""
        return f"{cls.family} (" + ", ".join(f"{name} {value}" for name, value in hparams.items()) + ")"

    @classmethod
    def resolve_hparams(cls, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`default_hparams()` updated with `overrides`; an unknown name is an error."""
        hparams = cls.default_hparams()
        unknown = sorted(set(overrides or {}) - set(hparams))
        if unknown:
            raise ConfigError(f"hparams: expected names among {sorted(hparams)}, found {unknown}; fix the names")
        hparams.update(overrides or {})
        return hparams

    @classmethod
    def training_precision(cls, requested: str) -> str:
        """fp32 or bf16: `requested` resolved for this machine, and for this family on a CPU."""
        resolved = resolve_precision(requested)
        if resolved == "fp16":
            log.warning("fp16 needs loss scaling, which the from-scratch loop does not do; training in fp32")
            return "fp32"
        if resolved == "bf16" and requested == "auto" and device().type == "cpu" and not cls.bf16_on_cpu:
            log.info("%s trains faster in fp32 than in bf16 autocast on this CPU; using fp32", cls.family)
            return "fp32"
        return resolved

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        train: Split,
        dev: Split,
        label_names: Sequence[str],
        config: TrainConfig,
        checkpoint_dir: Path,
        hparams: Mapping[str, Any] | None = None,
    ) -> tuple[TorchClassifier, TrainSummary]:
        """Train from scratch on `train`, evaluating on `dev` every epoch; returns the best model and a summary.

        `hparams` overrides some of `default_hparams()` (tests use tiny ones). Checkpoints go to
        `checkpoint_dir`; with `config.resume` training continues from the last one.
        """
        hparams = cls.resolve_hparams(hparams)
        check_training_options(cls, config, train.multi_label)
        config = for_this_device(with_metric(config, train.labels, label_names))
        weights, sample_weights = loss_weights(config, train.labels, label_names)
        tokenizer_file = embedded_model_path() / TOKENIZER_FILE
        tokenizer = load_tokenizer(tokenizer_file)
        windowing = Windowing.from_config(config)
        train_ids, train_windows = encode_windows(tokenizer, train.texts, windowing, desc=f"tokenising {train.name}")
        dev_ids, dev_windows = encode_windows(tokenizer, dev.texts, windowing, desc=f"tokenising {dev.name}")
        precision = cls.training_precision(config.precision)

        torch.manual_seed(config.seed)
        module = cls.build_module(hparams, tokenizer.get_vocab_size(), len(label_names)).to(device())
        classifier = cls(
            module, tokenizer, label_names, config.max_length, hparams, tokenizer_file, windowing, train.multi_label
        )
        description = f"{cls.describe(hparams)}, {classifier.num_parameters() / 1e6:.2f}M parameters"
        log.info("model %s, max_length %d, precision %s", description, config.max_length, precision)

        with lean_cpu_training(module):
            summary = train_module(
                module,
                TokenizedRows(
                    train_ids, targets(train.labels, len(label_names), train.multi_label), PAD_ID, train_windows
                ),
                TokenizedRows(dev_ids, targets(dev.labels, len(label_names), dev.multi_label), PAD_ID, dev_windows),
                config,
                checkpoint_dir,
                precision=precision,
                description=description,
                objective=Objective.of(weights, config.pooling, train.multi_label),
                sample_weights=sample_weights,
                identity={
                    "family": cls.family,
                    "hparams": hparams,
                    "max_length": config.max_length,
                    **({"multi_label": True} if train.multi_label else {}),  # single-label checkpoints stay resumable
                    # the batches fix the steps per epoch, which a resumed run must share
                    "batching": {
                        "batch_size": config.batch_size,
                        "batch_tokens": config.batch_tokens,
                        "group_by_length": config.group_by_length,
                        "sampler": config.sampler,
                    },
                    "long_text": windowing.describe(),
                },
            )
        return classifier, summary

    # ---- inference ------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Class probabilities in input order; texts are sorted by length so batches carry little padding."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        token_ids, windows = encode_windows(self.tokenizer, texts, self.windowing, cache=False)
        logits = windows.pool(predict_logits(self.model, token_ids, batch_size, progress))  # (texts, classes)
        return probabilities(logits, self.multi_label)

    @torch.inference_mode()
    def _token_attention(self, texts: str | Sequence[str]) -> list[TokenAttention]:
        """Per text, its tokens and the model's attention weights over them (one text at a time, no padding).

        The attention families expose this as `attention(texts)` and explain with it; the plain LSTM has none.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        self.tokenizer.enable_truncation(self.max_length)
        self.model.eval()
        target = next(self.model.parameters()).device
        results = []
        for encoding in self.tokenizer.encode_batch(texts):
            input_ids, attention_mask = pad_batch([encoding.ids])
            _, weights = self.model(input_ids.to(target), attention_mask.to(target))
            if weights is None:
                raise TextclsError(
                    f"the {self.family} family has no attention weights; use lstm-attention or scratch-transformer"
                )
            results.append(TokenAttention(list(encoding.tokens), weights[0].float().cpu().numpy()))
        return results

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    # ---- persistence ----------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        """`model.safetensors`, `neural.json` (how to rebuild it) and the tokenizer's `tokenizer.json`."""
        from safetensors.torch import save_file

        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file(_clone_state(self.model), str(model_dir / WEIGHTS_FILE))
        destination = model_dir / TOKENIZER_FILE
        if not (destination.exists() and destination.samefile(self.tokenizer_file)):
            shutil.copyfile(self.tokenizer_file, destination)
        info = {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "hparams": self.hparams,
            "vocab_size": self.tokenizer.get_vocab_size(),
            "label_names": self.label_names,
            "max_length": self.max_length,
            "multi_label": self.multi_label,
            # the WordPiece vocabulary of the embedded all-MiniLM-L6-v2 (uncased), copied beside the weights
            "tokenizer": {"source": "embedded", "model": "all-MiniLM-L6-v2", "file": TOKENIZER_FILE, "pad_id": PAD_ID},
        }
        (model_dir / CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(
        cls,
        model_dir: Path,
        max_length: int | None = None,
        label_names: Sequence[str] | None = None,
        windowing: Windowing | None = None,
        **_: Any,
    ) -> TorchClassifier:
        """Rebuild a classifier written by `save` from that folder alone; `windowing` (the run's
        `--long-text`) reads texts longer than max_length, by default truncating them."""
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        config_path = model_dir / CONFIG_FILE
        if not config_path.is_file():
            raise RunFolderError(
                f"expected {CONFIG_FILE} in {model_dir}, found none; the run folder is incomplete, train again"
            )
        try:
            info = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise damaged(config_path, error) from error
        if info.get("family") != cls.family:
            raise RunFolderError(f"{config_path}: expected family {cls.family!r}, found {info.get('family')!r}")
        saved_names = info["label_names"]
        names = list(label_names) if label_names is not None else saved_names
        if len(names) != len(saved_names):
            raise RunFolderError(
                f"{config_path}: expected {len(saved_names)} label names, found {len(names)} ({names})"
            )
        tokenizer = load_tokenizer(model_dir / TOKENIZER_FILE)
        module = cls.build_module(info["hparams"], info["vocab_size"], len(saved_names))
        try:
            module.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))
        except Exception as error:  # a cut or overwritten file: safetensors' header, sizes or names
            raise damaged(model_dir / WEIGHTS_FILE, str(error).splitlines()[0][:200]) from error
        module.to(device()).eval()
        max_length = max_length or info["max_length"]
        return cls(
            module,
            tokenizer,
            names,
            max_length,
            info["hparams"],
            model_dir / TOKENIZER_FILE,
            windowing,
            bool(info.get("multi_label", False)),
        )
