"""The one training loop, driven directly: a tiny torch model, hooks written here, no family and no data files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from textcls.errors import RunFolderError
from textcls.training.checkpoints import last_checkpoint
from textcls.training.loop import (
    EpochEnd,
    LoopHooks,
    LoopResult,
    LoopSettings,
    Schedule,
    learning_rate,
    run_loop,
)

ROWS, BATCH = 48, 8  # 6 steps an epoch


class Interrupted(Exception):
    """Stands for a kill: raised from inside the loop, it leaves only what was already on disk."""


class Task:
    """A linearly separable 2-class problem, a small MLP with dropout (so the dropout seeds matter) and hooks."""

    def __init__(self, interrupt_at_step: int | None = None, scores: Sequence[float] | None = None):
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(ROWS, 4, generator=generator)
        self.labels = (self.inputs[:, 0] + self.inputs[:, 1] > 0).long()
        self.dev_inputs = torch.randn(16, 4, generator=generator)
        self.dev_labels = (self.dev_inputs[:, 0] + self.dev_inputs[:, 1] > 0).long()
        self.interrupt_at_step = interrupt_at_step
        self.steps = 0
        self.scores: Iterator[float] | None = iter(scores) if scores is not None else None
        self.weights_seen: list[dict[str, torch.Tensor]] = []  # the model's weights at each evaluation
        self.learning_rates: list[float] = []

    @staticmethod
    def model() -> nn.Module:
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))

    def plan(self, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng(100 + epoch).permutation(ROWS)
        return [order[start : start + BATCH] for start in range(0, ROWS, BATCH)]

    def loss(self, model: nn.Module, rows: np.ndarray) -> torch.Tensor:
        if self.steps == self.interrupt_at_step:
            raise Interrupted
        self.steps += 1
        index = torch.from_numpy(rows)
        return F.cross_entropy(model(self.inputs[index]), self.labels[index])

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        logits = model(self.dev_inputs)
        model.train(was_training)
        self.weights_seen.append({name: tensor.clone() for name, tensor in model.state_dict().items()})
        accuracy = float((logits.argmax(-1) == self.dev_labels).float().mean())
        if self.scores is not None:  # a scripted dev score, to drive best-epoch choice and early stopping
            accuracy = next(self.scores)
        return {"loss": float(F.cross_entropy(logits, self.dev_labels)), "accuracy": accuracy}

    def epoch_row(self, end: EpochEnd, dev: Mapping[str, float]) -> dict[str, float | None]:
        return {"epoch": end.epoch, "step": end.step, "train_loss": end.train_loss, "dev_accuracy": dev["accuracy"]}

    def hooks(self) -> LoopHooks[np.ndarray, dict[str, float | None]]:
        return LoopHooks(
            steps_per_epoch=ROWS // BATCH,
            plan=self.plan,
            load=lambda batches: batches,
            loss=self.loss,
            evaluate=self.evaluate,
            epoch_row=self.epoch_row,
        )


def train(
    checkpoint_dir: Path, task: Task | None = None, model: nn.Module | None = None, **settings: object
) -> tuple[nn.Module, LoopResult[dict[str, float | None]]]:
    task = task or Task()
    model = model or Task.model()
    options: dict = {"epochs": 3, "seed": 7, "metric": "accuracy", "identity": {"task": "toy"}, **settings}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, run_loop(model, optimizer, task.hooks(), LoopSettings(**options), checkpoint_dir)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


# ---- resume ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", ["step", "epoch"])
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path, unit):
    whole, whole_result = train(tmp_path / "whole", unit=unit, peak_lr=1e-2, warmup_ratio=0.2)
    with pytest.raises(Interrupted):  # in epoch 2, after epoch 1's checkpoint
        train(tmp_path / "cut", Task(interrupt_at_step=9), unit=unit, peak_lr=1e-2, warmup_ratio=0.2)
    assert last_checkpoint(tmp_path / "cut").name == ("checkpoint-6" if unit == "step" else "checkpoint-1")
    resumed, result = train(tmp_path / "cut", unit=unit, peak_lr=1e-2, warmup_ratio=0.2, resume=True)
    assert result.resumed_from == str(tmp_path / "cut" / ("checkpoint-6" if unit == "step" else "checkpoint-1"))
    assert result.state.history == whole_result.state.history  # every row, train losses included
    assert result.state.step == whole_result.state.step == 18
    assert_same_weights(resumed, whole)  # the optimizer's moments, lr schedule and dropout masks were replayed


def test_a_time_budget_cut_epoch_is_finished_by_the_resumed_run_when_counting_steps(tmp_path):
    _, cut = train(tmp_path, epochs=2, time_budget=1e-9)  # runs out after the first step
    assert cut.stopped_by == "time_budget" and cut.state.step == 1
    assert [row["epoch"] for row in cut.state.history] == [round(1 / 6, 4)]
    _, resumed = train(tmp_path, epochs=2, resume=True)
    assert [row["step"] for row in resumed.state.history] == [1, 6, 12]  # the rest of epoch 1, then epoch 2
    assert resumed.stopped_by == "epochs"


def test_a_time_budget_cut_epoch_counts_as_run_when_counting_epochs(tmp_path):
    _, cut = train(tmp_path, epochs=2, unit="epoch", time_budget=1e-9)
    assert cut.state.step == 1 and [row["epoch"] for row in cut.state.history] == [1]
    assert last_checkpoint(tmp_path).name == "checkpoint-1"
    _, resumed = train(tmp_path, epochs=2, unit="epoch", resume=True)
    assert [(row["epoch"], row["step"]) for row in resumed.state.history] == [(1, 1), (2, 7)]  # epoch 2 whole


def test_resume_refuses_a_checkpoint_of_other_settings_and_leaves_it(tmp_path):
    train(tmp_path, epochs=1)
    with pytest.raises(RunFolderError, match="cannot resume from .*checkpoint-6.*'task': 'other'"):
        train(tmp_path, epochs=2, resume=True, identity={"task": "other"})
    assert last_checkpoint(tmp_path).name == "checkpoint-6"


def test_resume_skips_a_partial_checkpoint_and_starts_afresh_without_one(tmp_path, caplog):
    _, fresh = train(tmp_path / "empty", epochs=1, resume=True)
    assert fresh.resumed_from is None and fresh.state.step == 6
    assert "no complete checkpoint" in caplog.text
    train(tmp_path / "run", epochs=1)
    partial = tmp_path / "run" / ".checkpoint-12.partial"
    partial.mkdir()  # what a kill while writing leaves
    _, resumed = train(tmp_path / "run", epochs=2, resume=True)
    assert resumed.resumed_from.endswith("checkpoint-6") and not partial.exists()


def test_a_checkpoint_holds_the_loop_state_without_pickle(tmp_path):
    train(tmp_path, epochs=2)
    checkpoint = last_checkpoint(tmp_path)
    assert sorted(path.name for path in checkpoint.iterdir()) == [
        "best.safetensors", "model.safetensors", "optimizer.safetensors", "state.json",
    ]  # fmt: skip
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["identity"] == {"task": "toy"} and state["step"] == 12 and len(state["history"]) == 2
    assert state["seeds"] == {"seed": 7, "batch_order": 8, "dropout": 13}  # epoch 2 began at step 6
    assert len(list(tmp_path.iterdir())) == 1  # only the last checkpoint is kept


# ---- time budget --------------------------------------------------------------------------------
def test_the_time_budget_stops_training_and_still_evaluates(tmp_path):
    task = Task()
    _, result = train(tmp_path, task, epochs=50, time_budget=1e-9)
    assert result.stopped_by == "time_budget"
    assert task.steps == 1 and result.state.step == 1
    assert len(result.state.history) == 1 and len(task.weights_seen) == 1
    assert last_checkpoint(tmp_path).name == "checkpoint-1"


def test_without_a_budget_every_epoch_runs(tmp_path):
    _, result = train(tmp_path, epochs=2.5)
    assert result.stopped_by == "epochs" and result.state.step == 15
    assert [row["epoch"] for row in result.state.history] == [1.0, 2.0, 2.5]
    assert result.samples == 15 * BATCH and result.train_loss is not None


# ---- best epoch and early stopping ----------------------------------------------------------------
def test_early_stopping_after_patience_evaluations_and_the_best_epochs_weights_are_kept(tmp_path):
    task = Task(scores=[0.5, 0.7, 0.6, 0.65, 0.9, 0.9])
    model, result = train(tmp_path, task, epochs=6, early_stopping_patience=2, unit="epoch")
    assert [row["dev_accuracy"] for row in result.state.history] == [0.5, 0.7, 0.6, 0.65]
    assert result.stopped_by == "early_stopping"
    assert result.state.best_metric == 0.7 and result.state.best_epoch == 2
    for name, tensor in model.state_dict().items():  # epoch 2's weights, not the last epoch's
        torch.testing.assert_close(tensor, task.weights_seen[1][name], rtol=0, atol=0)
    assert not model.training


def test_a_tie_is_no_improvement_and_patience_zero_never_stops(tmp_path):
    task = Task(scores=[0.5, 0.5, 0.5, 0.5])
    model, result = train(tmp_path, task, epochs=4, early_stopping_patience=0)
    assert result.stopped_by == "epochs" and len(result.state.history) == 4
    assert result.state.best_epoch == 1.0 and result.state.epochs_without_improvement == 3
    torch.testing.assert_close(model.state_dict()["0.weight"], task.weights_seen[0]["0.weight"], rtol=0, atol=0)


def test_a_run_that_stopped_early_trains_no_further_when_resumed(tmp_path):
    train(tmp_path, Task(scores=[0.5, 0.4, 0.3]), epochs=6, early_stopping_patience=2)
    task = Task()
    _, resumed = train(tmp_path, task, epochs=6, early_stopping_patience=2, resume=True)
    assert task.steps == 0 and resumed.stopped_by == "early_stopping" and resumed.state.step == 18


# ---- learning rate ------------------------------------------------------------------------------
def test_the_scheduled_learning_rate_reaches_the_optimizer_and_a_fixed_one_stays(tmp_path):
    seen: list[float] = []

    class Recording(Task):
        def loss(self, model: nn.Module, rows: np.ndarray) -> torch.Tensor:
            seen.append(optimizer_lr())
            return super().loss(model, rows)

    model = Task.model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def optimizer_lr() -> float:
        return optimizer.param_groups[0]["lr"]

    settings = LoopSettings(epochs=2, seed=0, metric="accuracy", peak_lr=0.1, warmup_ratio=0.25)
    run_loop(model, optimizer, Recording().hooks(), settings, tmp_path / "scheduled")
    schedule = Schedule.of(6, 2, 0.25)
    assert seen == [learning_rate(step, schedule.total_steps, schedule.warmup_steps, 0.1) for step in range(12)]
    seen.clear()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run_loop(model, optimizer, Recording().hooks(), LoopSettings(epochs=1, seed=0, metric="accuracy"), tmp_path / "x")
    assert seen == [1e-3] * 6


def test_a_param_groups_lr_scale_keeps_it_at_a_multiple_of_the_schedule(tmp_path):
    model = Task.model()
    first, last = model[0], model[3]
    optimizer = torch.optim.AdamW(
        [{"params": first.parameters()}, {"params": last.parameters(), "lr_scale": 10.0}], lr=1e-3
    )
    seen: list[tuple[float, float]] = []

    class Recording(Task):
        def loss(self, model: nn.Module, rows: np.ndarray) -> torch.Tensor:
            seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"]))
            return super().loss(model, rows)

    run_loop(
        model,
        optimizer,
        Recording().hooks(),
        LoopSettings(epochs=1, seed=0, metric="accuracy", peak_lr=0.1, warmup_ratio=0.5),
        tmp_path / "scaled",
    )
    schedule = Schedule.of(6, 1, 0.5)
    assert [base for base, _ in seen] == [
        learning_rate(step, schedule.total_steps, schedule.warmup_steps, 0.1) for step in range(6)
    ]
    assert [scaled for _, scaled in seen] == pytest.approx([10.0 * base for base, _ in seen])
    assert max(scaled for _, scaled in seen) > 0.5  # the peak: 10 x 0.1
