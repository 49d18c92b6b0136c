"""The one hand-written training loop: every own-torch model trains through `run_loop`.

The loop owns the mechanisms; a model supplies only what differs, as `LoopHooks`:

- `plan(epoch)`: that epoch's batches as arrays of row indices, a pure function of the seed and the
  epoch, so a resumed run replays the batches an uninterrupted one would have;
- `load(batches)`: those batches ready for `loss` (a `DataLoader`, or the index arrays themselves);
- `loss(model, batch)`: the scalar to minimise;
- `evaluate(model)`: the dev metrics after each epoch, among them `LoopSettings.metric`, the one to maximise;
- `epoch_row(end, dev)`: the history row of that evaluation (and its log line).

Around them the loop does, once for everyone: epochs over batches with gradient clipping and the
optimizer step, an optional linear warm-up-then-decay learning rate, bf16 autocast and `torch.compile`
where asked, dropout seeded by `seed + step` at the start of each epoch (or its resumed part), a dev
evaluation after every epoch, the best weights by the metric, early stopping, a time budget, a
safetensors checkpoint after every evaluation, resume from the last complete one, a tqdm bar per epoch,
the steady-state throughput meter, and reports to the run's trackers (`LoopSettings.tracker`, by default
those `training.tracking` opened for the run): the loss every logging step, the dev metrics every evaluation.

Progress is counted in one of two units (`LoopSettings.unit`):

- "step": checkpoints are numbered by step, an epoch's label is the fraction of epochs done
  (`epochs` may be fractional), and an epoch cut short by the time budget is finished by the resumed run;
- "epoch": checkpoints are numbered by epoch, labels are whole epochs, and an epoch cut short counts
  as run: a resumed run starts the next one.

Example:
    >>> hooks = LoopHooks(steps_per_epoch=len(plan(0)), plan=plan, load=lambda batches: batches,
    ...                   loss=loss, evaluate=evaluate, epoch_row=row)                      # doctest: +SKIP
    >>> settings = LoopSettings(epochs=3, seed=0, metric="accuracy", peak_lr=1e-3)       # doctest: +SKIP
    >>> result = run_loop(model, optimizer, hooks, settings, Path("ckpt"))               # doctest: +SKIP
    >>> result.state.best_metric, result.stopped_by                                      # doctest: +SKIP
    (0.91, 'epochs')
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import numpy as np
import torch
from torch import nn

from textcls.errors import RunFolderError
from textcls.training.checkpoints import (
    clone_state,
    last_checkpoint,
    read_checkpoint_state,
    remove_incomplete_checkpoints,
    restore_checkpoint,
    write_checkpoint,
)
from textcls.training.throughput import ThroughputMeter
from textcls.training.tracking import Trackers, active

log = logging.getLogger(__name__)

BatchT = TypeVar("BatchT")
RowT = TypeVar("RowT", bound=Mapping[str, object])
Unit = Literal["step", "epoch"]
StopReason = Literal["epochs", "time_budget", "early_stopping"]


def learning_rate(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`.

    Example:
        >>> learning_rate(0, total_steps=100, warmup_steps=10, peak=1.0)
        0.1
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


@dataclass(frozen=True)
class Schedule:
    """The step plan of a training run, fixed by the batches per epoch and the settings.

    Example:
        >>> Schedule.of(steps_per_epoch=4, epochs=1.5, warmup_ratio=0.5)
        Schedule(steps_per_epoch=4, total_steps=6, warmup_steps=3)
    """

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def of(cls, steps_per_epoch: int, epochs: float, warmup_ratio: float = 0.0) -> Schedule:
        total_steps = max(1, math.ceil(epochs * steps_per_epoch))
        return cls(steps_per_epoch, total_steps, math.ceil(warmup_ratio * total_steps))

    @property
    def epochs(self) -> int:
        """Epochs begun over the run, the last one possibly cut to `total_steps`."""
        return math.ceil(self.total_steps / self.steps_per_epoch)


@dataclass(frozen=True)
class EpochEnd:
    """Where the loop stands when an epoch (or its resumed or cut part) ends, for `LoopHooks.epoch_row`."""

    epoch: float  # epochs done in the loop's unit: a fraction with unit "step", a whole number with "epoch"
    step: int
    train_loss: float | None  # mean over the steps of this epoch (or part)
    train_seconds: float  # training time so far, resumed parts included, evaluation and checkpoints not


@dataclass(frozen=True)
class LoopHooks(Generic[BatchT, RowT]):
    """What a model supplies to `run_loop`: its batches, its loss, its dev scores and history rows.

    `loss` gets the model to train through (compiled with `LoopSettings.compile`) and runs under bf16
    autocast when asked; `evaluate` gets the model itself, in training mode, and must not change it.

    Example:
        >>> hooks = LoopHooks(
        ...     steps_per_epoch=2,
        ...     plan=lambda epoch: [np.array([0, 1]), np.array([2, 3])],
        ...     load=lambda batches: batches,
        ...     loss=lambda model, rows: model(inputs[rows]).square().mean(),
        ...     evaluate=lambda model: {"accuracy": 0.5},
        ...     epoch_row=lambda end, dev: {"epoch": end.epoch, "dev_accuracy": dev["accuracy"]},
        ... )                                                                             # doctest: +SKIP
    """

    steps_per_epoch: int
    plan: Callable[[int], Sequence[np.ndarray]]
    load: Callable[[Sequence[np.ndarray]], Iterable[BatchT]]
    loss: Callable[[nn.Module, BatchT], torch.Tensor]
    evaluate: Callable[[nn.Module], Mapping[str, float]]
    epoch_row: Callable[[EpochEnd, Mapping[str, float]], RowT]


@dataclass(frozen=True)
class LoopSettings:
    """How `run_loop` trains; see the module docstring for `unit`.

    Example:
        >>> LoopSettings(epochs=2, seed=42, metric="token_accuracy", unit="epoch").peak_lr is None
        True
    """

    epochs: float
    seed: int  # dropout masks of each epoch (or resumed part) come from seed + its first step
    metric: str  # the key of `LoopHooks.evaluate`'s dict that picks the best epoch and drives early stopping
    identity: Mapping[str, object] = field(default_factory=dict)  # what a checkpoint must match to be resumed
    unit: Unit = "step"
    peak_lr: float | None = None  # a linear warm-up-then-decay schedule to this rate; None keeps the optimizer's
    warmup_ratio: float = 0.0
    early_stopping_patience: int = 0  # evaluations without improvement before stopping; 0 never stops early
    time_budget: float | None = None  # minutes of this call; the epoch it runs out in is still evaluated
    resume: bool = False
    bf16_autocast: bool = False
    compile: bool = False
    logging_steps: int = 50  # how often the loss is read back from the device for the progress bar
    max_grad_norm: float = 1.0
    # where the loss (every logging step) and the dev metrics (every evaluation) are reported: the run's open ones
    tracker: Trackers = field(default_factory=active, compare=False, repr=False)


@dataclass
class LoopState(Generic[RowT]):
    """Where training stands: written into each checkpoint, read back on resume."""

    epoch: float = 0  # epochs done in the loop's unit (whole numbers with unit "epoch")
    step: int = 0
    history: list[RowT] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: float | None = None
    epochs_without_improvement: int = 0
    loss_sum: float = 0.0  # over every step of the training, resumed parts included
    loss_steps: int = 0
    train_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "loss_sum": self.loss_sum,
            "loss_steps": self.loss_steps,
            "train_seconds": self.train_seconds,
            "history": self.history,
        }

    @classmethod
    def from_json(cls, saved: Mapping[str, Any]) -> LoopState[RowT]:
        """The state in a checkpoint's JSON; fields it lacks (it may come from an older loop) start afresh."""
        return cls(
            epoch=saved.get("epoch", 0),
            step=saved["step"],
            history=list(saved["history"]),
            best_metric=saved["best_metric"],
            best_epoch=saved.get("best_epoch"),
            epochs_without_improvement=saved["epochs_without_improvement"],
            loss_sum=saved.get("loss_sum", 0.0),
            loss_steps=saved.get("loss_steps", 0),
            train_seconds=saved.get("train_seconds", 0.0),
        )


@dataclass(frozen=True)
class LoopResult(Generic[RowT]):
    """What `run_loop` did: the final state and how this call went."""

    state: LoopState[RowT]
    stopped_by: StopReason
    resumed_from: str | None  # the checkpoint folder this call continued from
    seconds: float  # this call's wall time, evaluation and checkpoints included
    samples: int  # rows trained on in this call
    steady_samples_per_second: float | None  # `ThroughputMeter`'s figure: training steps only

    @property
    def train_loss(self) -> float | None:
        """The mean loss over every step of the training, resumed parts included."""
        return self.state.loss_sum / self.state.loss_steps if self.state.loss_steps else None

    @property
    def samples_per_second(self) -> float | None:
        return round(self.samples / self.seconds, 2) if self.samples else None


def run_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    hooks: LoopHooks[BatchT, RowT],
    settings: LoopSettings,
    checkpoint_dir: Path,
) -> LoopResult[RowT]:
    """Train `model` in place and leave the best weights (by dev `settings.metric`) in it, in eval mode.

    Evaluates after every epoch (and when the time budget stops it) and writes a checkpoint there;
    with `settings.resume` it continues from the last complete checkpoint in `checkpoint_dir`, whose
    identity must equal `settings.identity`.

    Example:
        >>> optimizer = torch.optim.AdamW(model.parameters())                      # doctest: +SKIP
        >>> result = run_loop(model, optimizer, hooks, settings, Path("ckpt"))     # doctest: +SKIP
        >>> [row["epoch"] for row in result.state.history]                         # doctest: +SKIP
        [1.0, 2.0, 3.0]
    """
    schedule = Schedule.of(hooks.steps_per_epoch, settings.epochs, settings.warmup_ratio)
    # compiled for the forward and backward passes only; checkpoints and evaluation use `model` itself
    forward = cast(nn.Module, torch.compile(model)) if settings.compile else model
    state: LoopState[RowT] = LoopState()
    best_weights, resumed_from = clone_state(model), None
    if settings.resume:
        state, best_weights, resumed_from = _resume(checkpoint_dir, model, optimizer, settings, schedule, best_weights)

    deadline = time.perf_counter() + settings.time_budget * 60.0 if settings.time_budget is not None else None
    meter, samples = ThroughputMeter(), 0
    stopped_by: StopReason = "epochs"
    started = time.perf_counter()
    while (part := _next_part(state, schedule, settings.unit)) is not None:
        if _patience_spent(state, settings):  # a resumed run that had already stopped early
            stopped_by = "early_stopping"
            break
        epoch, first, last = part
        part_started = time.perf_counter()
        batches = hooks.plan(epoch)[first:last]
        dropout_seed = settings.seed + state.step
        torch.manual_seed(dropout_seed)  # dropout masks, replayed by a run resumed here
        loss_sum, steps, out_of_time = _train_part(
            forward, optimizer, hooks, batches, epoch, state, schedule, settings, deadline, meter
        )
        meter.pause()
        state.train_seconds += time.perf_counter() - part_started
        samples += sum(len(rows) for rows in batches[:steps])
        if _evaluate(model, hooks, state, schedule, settings, loss_sum, steps):
            best_weights = clone_state(model)
        seeds = {"seed": settings.seed, "batch_order": settings.seed + epoch, "dropout": dropout_seed}
        number = state.step if settings.unit == "step" else int(state.epoch)
        write_checkpoint(
            checkpoint_dir, number, model, best_weights, optimizer, _checkpoint_json(state, schedule, settings, seeds)
        )
        if out_of_time:
            stopped_by = "time_budget"
            break
        if _patience_spent(state, settings):
            stopped_by = "early_stopping"
            log.info(
                "no dev improvement for %d %s; stopping early %s",
                settings.early_stopping_patience,
                "evaluations" if settings.unit == "step" else "epochs",
                f"at step {state.step}" if settings.unit == "step" else f"after epoch {int(state.epoch)}",
            )
            break

    seconds = time.perf_counter() - started
    model.load_state_dict(best_weights)
    model.eval()
    return LoopResult(state, stopped_by, resumed_from, seconds, samples, meter.samples_per_second)


def _next_part(state: LoopState[RowT], schedule: Schedule, unit: Unit) -> tuple[int, int, int] | None:
    """(epoch, first batch, end batch) of the next stretch to train, or None when training is done."""
    if unit == "step":
        if state.step >= schedule.total_steps:
            return None
        epoch = state.step // schedule.steps_per_epoch
        first = state.step - epoch * schedule.steps_per_epoch  # the rest of an epoch the time budget cut
    else:
        epoch, first = int(state.epoch), 0
        if epoch >= schedule.epochs:
            return None
    last = min(schedule.steps_per_epoch, schedule.total_steps - epoch * schedule.steps_per_epoch)
    return epoch, first, last


def _patience_spent(state: LoopState[RowT], settings: LoopSettings) -> bool:
    patience = settings.early_stopping_patience
    return bool(patience) and state.epochs_without_improvement >= patience


def _train_part(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    hooks: LoopHooks[BatchT, RowT],
    batches: Sequence[np.ndarray],
    epoch: int,
    state: LoopState[RowT],
    schedule: Schedule,
    settings: LoopSettings,
    deadline: float | None,
    meter: ThroughputMeter,
) -> tuple[float, int, bool]:
    """Train on `batches`; advances `state.step`. Returns the loss sum, the steps run and whether the time
    budget ran out. The loss stays on the device until a logging step reads it."""
    from tqdm.auto import tqdm

    parameters = [p for p in forward.parameters() if p.requires_grad]
    target = parameters[0].device
    forward.train()
    # float64: a sum over many steps keeps the digits each step's float32 loss has
    loss_sum, steps, out_of_time = torch.zeros((), dtype=torch.float64, device=target), 0, False
    # A `DataLoader` draws its workers' base seed from torch's generator when iterated, so the loader is
    # made and started here, after the dropout seed: a resumed run draws the same numbers.
    bar = tqdm(hooks.load(batches), total=len(batches), desc=f"epoch {epoch + 1}", unit="batch", leave=False)
    for batch, rows in zip(bar, batches):  # `rows`: the batch's row indices, counted by the meter
        lr = None
        if settings.peak_lr is not None:
            lr = learning_rate(state.step, schedule.total_steps, schedule.warmup_steps, settings.peak_lr)
            for group in optimizer.param_groups:  # a group's "lr_scale" keeps it at a multiple of the schedule
                group["lr"] = lr * group.get("lr_scale", 1.0)
        with torch.autocast(target.type, dtype=torch.bfloat16, enabled=settings.bf16_autocast):
            loss = hooks.loss(forward, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
        optimizer.step()

        state.step += 1
        steps += 1
        loss_sum += loss.detach()
        meter.step_end(len(rows))
        if state.step % settings.logging_steps == 0:
            mean_loss = loss_sum.item() / steps  # the one host sync, every logging_steps steps
            bar.set_postfix(loss=f"{mean_loss:.4f}", **({"lr": f"{lr:.2e}"} if lr is not None else {}))
            settings.tracker.log_metrics(
                {"train/loss": mean_loss, **({"train/learning_rate": lr} if lr is not None else {})}, state.step
            )
            log.debug("step %d: loss %.4f, lr %s", state.step, mean_loss, f"{lr:.3g}" if lr is not None else "fixed")
        if deadline is not None and time.perf_counter() >= deadline:
            where = f"at step {state.step}" if settings.unit == "step" else f"in epoch {epoch + 1}"
            log.warning("time budget of %.3g min reached %s; stopping", settings.time_budget, where)
            out_of_time = True
            break
    bar.close()
    return float(loss_sum.item()), steps, out_of_time


def _evaluate(
    model: nn.Module,
    hooks: LoopHooks[BatchT, RowT],
    state: LoopState[RowT],
    schedule: Schedule,
    settings: LoopSettings,
    loss_sum: float,
    steps: int,
) -> bool:
    """Score dev, append the epoch's row to `state.history` and track the best; True if this epoch is the best."""
    state.loss_sum, state.loss_steps = state.loss_sum + loss_sum, state.loss_steps + steps
    state.epoch = round(state.step / schedule.steps_per_epoch, 4) if settings.unit == "step" else int(state.epoch) + 1
    dev = hooks.evaluate(model)
    end = EpochEnd(state.epoch, state.step, loss_sum / steps if steps else None, state.train_seconds)
    state.history.append(hooks.epoch_row(end, dev))
    epoch_loss = {"train/epoch_loss": end.train_loss} if end.train_loss is not None else {}
    settings.tracker.log_metrics({**{f"dev/{name}": value for name, value in dev.items()}, **epoch_loss}, state.step)
    score = dev[settings.metric]
    if state.best_metric is None or score > state.best_metric:
        state.best_metric, state.best_epoch, state.epochs_without_improvement = score, state.epoch, 0
        return True
    state.epochs_without_improvement += 1
    return False


def _checkpoint_json(
    state: LoopState[RowT], schedule: Schedule, settings: LoopSettings, seeds: dict[str, int]
) -> dict[str, Any]:
    """The JSON written as a checkpoint's state.json."""
    return {
        "identity": dict(settings.identity),
        **state.to_json(),
        "total_steps": schedule.total_steps,
        "steps_per_epoch": schedule.steps_per_epoch,
        # batches of epoch e come from seed + e, dropout from seed + the step the epoch (or its resumed part) began at
        "seeds": seeds,
    }


def _resume(
    checkpoint_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    settings: LoopSettings,
    schedule: Schedule,
    fresh_weights: dict[str, torch.Tensor],
) -> tuple[LoopState[RowT], dict[str, torch.Tensor], str | None]:
    """Load the last complete checkpoint into `model` and `optimizer`: the loop state, the best weights so
    far and where they came from; a fresh start when there is none."""
    for partial in remove_incomplete_checkpoints(checkpoint_dir):
        log.warning("removing the incomplete checkpoint %s", partial)
    checkpoint = last_checkpoint(checkpoint_dir)
    if checkpoint is None:
        log.warning("--resume: no complete checkpoint in %s; starting from the beginning", checkpoint_dir)
        return LoopState(), fresh_weights, None
    saved = read_checkpoint_state(checkpoint)
    identity = json.loads(json.dumps(dict(settings.identity)))  # as JSON holds it: tuples are lists there
    if saved.get("identity") != identity:
        raise RunFolderError(
            f"cannot resume from {checkpoint}: expected a checkpoint of {identity}, found {saved.get('identity')}; "
            "train without --resume or with the same settings"
        )
    best_weights = restore_checkpoint(checkpoint, model, optimizer)
    state: LoopState[RowT] = LoopState.from_json(saved)
    if settings.unit == "step":
        log.info("resuming from %s at step %d of %d", checkpoint, state.step, schedule.total_steps)
    else:
        log.info("resuming from %s after epoch %d (step %d)", checkpoint, int(state.epoch), state.step)
    return state, best_weights, str(checkpoint)
