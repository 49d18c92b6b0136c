"""The Hugging Face `Trainer` as textcls runs it: shared `TrainingArguments`, the engine's data
loaders, complete-checkpoint markers (a kill mid-save leaves nothing resume would trust), resume,
the time budget (agreed across DDP processes) and the throughput meter.

Used by the pretrained family's fine-tuning and by masked-word pre-training.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from textcls.config import PretrainConfig, TrainConfig
from textcls.errors import TextclsError
from textcls.files import write_json
from textcls.training.cpu_speed import lean_cpu_training
from textcls.training.device import tune_cuda
from textcls.training.loaders import EpochBatches, TokenizedRows, batch_loader
from textcls.training.objectives import Objective
from textcls.training.throughput import ThroughputMeter
from textcls.training.tracking import active

if TYPE_CHECKING:
    from transformers import TrainingArguments

log = logging.getLogger(__name__)


# Trainer writes a checkpoint file by file; this marker, written last (atomically), lists what a
# complete one holds, so a kill or a full disk mid-write leaves a folder that resume skips.
CHECKPOINT_MARKER = "textcls-complete.json"


# Trainer's pickled TrainingArguments: never read back on resume, so never kept (no pickle at rest).
PICKLED_ARGS = "training_args.bin"


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path) -> None:
    """Record every file of a finished checkpoint, with its size, in its marker."""
    (folder / PICKLED_ARGS).unlink(missing_ok=True)
    files = {str(path.relative_to(folder)): path.stat().st_size for path in sorted(folder.rglob("*")) if path.is_file()}
    write_json(folder / CHECKPOINT_MARKER, {"files": files})


def is_complete(folder: Path) -> bool:
    """Whether `folder` holds its marker and every file the marker lists, at the recorded size."""
    try:
        files = json.loads((folder / CHECKPOINT_MARKER).read_text(encoding="utf-8"))["files"]
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def last_complete_checkpoint(checkpoint_dir: Path, remove_incomplete: bool = True) -> Path | None:
    """The complete checkpoint with the highest step; incomplete ones (a kill or a full disk while
    Trainer wrote them) are removed when `remove_incomplete`, with a warning naming each."""
    if not checkpoint_dir.is_dir():
        return None
    found = sorted(
        (int(match.group(1)), path)
        for path in checkpoint_dir.iterdir()
        if path.is_dir() and (match := _CHECKPOINT.match(path.name))
    )
    complete = [path for _, path in found if is_complete(path)]
    for _, path in found:
        if path not in complete and remove_incomplete:
            log.warning("removing %s: it was not written completely (interrupted, or the disk was full)", path)
            shutil.rmtree(path, ignore_errors=True)
    return complete[-1] if complete else None


class _CheckpointGuard:
    """Trainer callback: mark each checkpoint complete once Trainer has written all of it."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                if args.world_size > 1:
                    # each process writes its own random state into the checkpoint: list it once it is there
                    import torch.distributed as dist

                    dist.barrier()
                if args.should_save:  # the process that writes checkpoints
                    mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")
                return control

        self.callback = Callback()


class _Evaluations:
    """Each evaluation's metrics, as `dev/NAME`, to the observers of the active run: what the loop families
    log per epoch."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                dev = {f"dev/{name.removeprefix('eval_')}": value for name, value in (metrics or {}).items()}
                active().log_evaluation(dev, state.global_step)
                return control

        self.callback = Callback()


def epoch_scores_reused(precision: str, average_last: int, processes: int) -> bool:
    """Whether a `pretrained` run's final dev scoring takes its kept epoch's evaluation (`EpochDevLogits`)
    instead of predicting dev once more: in fp32 (bf16 and fp16 runs evaluate under Trainer's autocast, the
    classifier they return predicts in fp32), without checkpoint averaging (a mean that was never evaluated),
    on one process (Trainer gathers several processes' rows in no plan order)."""
    return precision == "fp32" and average_last <= 1 and processes == 1


class EpochDevLogits:
    """Each epoch-end evaluation's dev logits, by global step, in dev order: the run's final dev scoring takes
    the loaded checkpoint's (`of_checkpoint`) instead of predicting dev once more.

    Kept only for a single-process run whose evaluation batches are a plan of dev rows (`eval_plan`'s list),
    and only when the labels Trainer gathered, put back in dev order, are dev's own: anything else (several
    processes, a resumed run's earlier epochs) leaves nothing to take, and the run predicts dev itself.

    Example:
        >>> scores = EpochDevLogits([np.array([1]), np.array([0])], np.array([3, 5]))
        >>> scores.record(7, np.array([[0.1], [0.9]]), np.array([5, 3]))
        >>> scores.of_checkpoint("runs/x/checkpoints/checkpoint-7").tolist()
        [[0.9], [0.1]]
    """

    def __init__(self, plan: Sequence[np.ndarray] | Any, gold: np.ndarray | None):
        has_order = isinstance(plan, list) and plan and gold is not None
        self.order = np.concatenate(plan) if has_order else None
        self.gold = np.asarray(gold if gold is not None else [], dtype=np.float64)
        self.by_step: dict[int, np.ndarray] = {}

    def record(self, step: int, logits: Any, label_ids: Any) -> None:
        """Keep one evaluation's `logits` (rows in plan order) under `step`, if they can be put in dev order."""
        if self.order is None or not isinstance(logits, np.ndarray) or len(logits) != len(self.order):
            return
        labels = np.asarray(label_ids, dtype=np.float64)
        if labels.shape != self.gold.shape:
            return
        in_order, gold_order = np.empty_like(logits), np.empty_like(labels)
        in_order[self.order], gold_order[self.order] = logits, labels
        if np.array_equal(gold_order, self.gold):
            self.by_step[step] = in_order

    def of_checkpoint(self, checkpoint: str | Path | None) -> np.ndarray | None:
        """The logits of the evaluation that went with checkpoint folder `checkpoint`, if recorded."""
        match = _CHECKPOINT.match(Path(checkpoint).name) if checkpoint else None
        return self.by_step.get(int(match.group(1))) if match else None


def training_arguments(
    checkpoint_dir: Path, config: TrainConfig | PretrainConfig, precision: str, **options: Any
) -> TrainingArguments:
    """The `TrainingArguments` every textcls Trainer run shares (schedule, checkpoints each epoch,
    precision, seeds, the GPU's fast step) from a config with epochs, batch_size, lr, weight_decay,
    warmup_ratio, logging_steps and seed (and `compile`, where it has one); `options` add or override the rest."""
    from transformers import TrainingArguments

    gpu = torch.cuda.is_available()

    shared = dict(
        output_dir=str(checkpoint_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        # a float in (0, 1) is a ratio of all steps in transformers 5.x
        warmup_steps=config.warmup_ratio if config.warmup_ratio > 0 else 0,
        save_strategy="epoch",
        save_total_limit=2,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not gpu,
        seed=config.seed,
        data_seed=config.seed,
        # the run's `--report-to` services, through Trainer's own callbacks, into the run's MLflow run and
        # TensorBoard folder (`tracking.tracking` opened them)
        report_to=active().hf_report_to(),
        # the NaN/inf filter reads every step's loss on the host: a sync per step on a GPU
        logging_nan_inf_filter=False,
        torch_compile=isinstance(config, TrainConfig) and config.compile and gpu,  # pretraining never compiles
    )
    if gpu:
        tune_cuda()  # TF32 and attention without cuDNN's, for `textcls pretrain` as for fine-tuning
        shared.update(
            optim="adamw_torch_fused",  # one kernel for all parameters
            dataloader_pin_memory=True,
            accelerator_config={"non_blocking": True},  # copies from pinned memory overlap the step
        )
    return TrainingArguments(**{**shared, **options})


def training_callbacks(time_budget: float | None) -> list[Any]:
    """The Trainer callbacks every textcls run uses: complete-checkpoint markers, evaluations to the run's
    observers (`tracking.observing`), and the time budget."""
    callbacks: list[Any] = [_CheckpointGuard().callback, _Evaluations().callback]  # made on first use
    if time_budget is not None:
        callbacks.append(_TimeBudget(time_budget).callback)
    return callbacks


def run_trainer(
    trainer: Any, checkpoint_dir: Path, resume: bool, batch_tokens: int | None = None
) -> tuple[Any, str | None, float]:
    """`trainer.train()`, from the last complete checkpoint when `resume`; (result, resumed from, seconds).
    `batch_tokens`, the token budget a batch in use, is named in the out-of-memory error."""
    should_save = trainer.args.should_save
    resume_from = None
    if resume:
        last = _agreed_checkpoint(last_complete_checkpoint(checkpoint_dir, remove_incomplete=should_save))
        if last is None:
            log.warning("--resume: no complete checkpoint in %s; starting from scratch", checkpoint_dir)
        else:
            resume_from = str(last)
            log.info("resuming from %s", resume_from)
    started = time.perf_counter()
    try:
        with lean_cpu_training(trainer.model):
            result = trainer.train(resume_from_checkpoint=resume_from)
    except BaseException as error:
        # A checkpoint cut short (full disk, Ctrl+C while saving) must not be the one resume finds.
        if should_save:
            last_complete_checkpoint(checkpoint_dir, remove_incomplete=True)
        if isinstance(error, torch.OutOfMemoryError):
            raise TextclsError(
                f"out of GPU memory while training ({str(error).splitlines()[0][:160]}); pass a smaller "
                + (
                    f"--batch-tokens (this run's is {batch_tokens} tokens a batch)"
                    if batch_tokens
                    else "--batch-tokens"
                )
                + " or --batch-size, or a shorter --max-length"
            ) from error
        raise
    return result, resume_from, time.perf_counter() - started


def _agreed_checkpoint(found: Path | None) -> Path | None:
    """`found`, once every process of a launcher has found the same checkpoint to resume from (or none).

    Each process reads the checkpoints itself: on nodes that do not share the run folder's storage, one
    would resume while another started over, and the two would train different steps against each other.
    Every process raises the same error instead."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return found
    seen: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(seen, None if found is None else str(found))
    others = {rank: path for rank, path in enumerate(seen) if path != seen[0]}
    if others:
        shown = ", ".join(f"process {rank} {path or 'none'}" for rank, path in others.items())
        raise TextclsError(
            f"--resume: expected every process to find the checkpoint process 0 resumes from ({seen[0] or 'none'}), "
            f"found {shown}; every node must see the same run folder: put --out on storage shared by all "
            "nodes (docs/cluster.md)"
        )
    return found


def engine_trainer(
    train_rows: TokenizedRows,
    batches: EpochBatches,
    dev_rows: TokenizedRows,
    dev_batches: Sequence[Any],
    config: TrainConfig,
    objective: Objective | None = None,
    **trainer_options: Any,
) -> Any:
    """A `Trainer` fed by the engine's data loaders: the token-budget (or count) batches of `batches`,
    evaluation in `dev_batches`, padding in numpy; accelerate shards the batches under DDP. With an
    `objective`, the loss is its own (class weights; window logits pooled per text) instead of the model's."""
    from transformers import Trainer

    class EngineTrainer(Trainer):
        throughput: ThroughputMeter  # steady-state samples/s, read back by fit() for metrics.json

        def get_train_dataloader(self) -> Any:
            return self.accelerator.prepare(batch_loader(train_rows, batches, config))

        def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
            return self.accelerator.prepare(batch_loader(dev_rows, dev_batches, config))

        def create_optimizer(self, model: Any = None) -> Any:
            if config.layer_lr_decay == 1.0 or self.optimizer is not None:
                return super().create_optimizer(model)
            # Trainer's own optimizer (fused AdamW on a GPU), one parameter group per depth and weight decay
            target: Any = self.model if model is None else model
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, target)
            groups = layer_lr_groups(
                target,
                self.args.learning_rate,
                config.layer_lr_decay,
                self.args.weight_decay,
                set(self.get_decay_parameter_names(target)),
            )
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
            return self.optimizer

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            if objective is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # windows (windows, seq) in, the loss on each text's pooled logits (texts, classes): a per-batch mean
            inputs = dict(inputs)
            labels, owner = inputs.pop("labels"), inputs.pop("window_owner", None)
            window_logits = model(**inputs).logits
            loss, logits = objective.text_loss(window_logits, {"labels": labels, "window_owner": owner})
            return (loss, {"logits": logits}) if return_outputs else loss

    meter = _SteadyThroughput(len(train_rows) / len(batches))
    trainer = EngineTrainer(
        train_dataset=train_rows,
        eval_dataset=dev_rows,
        callbacks=[*trainer_options.pop("callbacks", []), meter.callback],
        **trainer_options,
    )
    trainer.throughput = meter.meter  # read back by fit() for metrics.json
    return trainer


class _SteadyThroughput:
    """Trainer callback: steady-state samples/s (`throughput.ThroughputMeter`), the clock paused over
    evaluation and saving. Trainer does not show callbacks a batch, so a step counts the plan's mean
    rows per batch (times the processes)."""

    def __init__(self, rows_per_batch: float):
        from transformers import TrainerCallback

        meter = self.meter = ThroughputMeter()

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                meter.step_end(round(rows_per_batch * args.world_size))
                return control

            def on_epoch_end(self, args, state, control, **kwargs):
                meter.pause()  # evaluation and the checkpoint follow
                return control

        self.callback = Callback()


def any_process(flag: bool) -> bool:
    """Whether `flag` holds in any process of the torch.distributed group (one small all-reduce)."""
    import torch.distributed as dist

    on_gpu = dist.get_backend() == "nccl"
    value = torch.tensor([int(flag)], device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


class _TimeBudget:
    """Trainer callback: after `minutes`, stop at the next step (under DDP, once any process's clock is past).

    Stopping ends the epoch early, and the epoch-end flow then evaluates and saves as usual.
    """

    def __init__(self, minutes: float):
        from transformers import TrainerCallback

        budget_seconds = minutes * 60.0

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                self.start = time.monotonic()

            def on_step_end(self, args, state, control, **kwargs):
                over = time.monotonic() - self.start >= budget_seconds
                if args.world_size > 1:
                    # every process stops at the same step: one that went on would wait in the next all-reduce
                    over = any_process(over)
                if over and not control.should_training_stop:
                    log.warning("time budget of %.3g min reached at step %d; stopping", minutes, state.global_step)
                    control.should_training_stop = True
                    state.stopped_by_time_budget = True  # read back by fit() for metrics.json
                return control

        self.callback = Callback()


_LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")  # "bert.encoder.layer.3.attention..." -> 3


def parameter_depth(name: str, num_layers: int) -> int:
    """How many layers below the top a parameter sits: 0 for the top encoder layer, the pooler and the head,
    `num_layers - 1 - i` for encoder layer i, `num_layers` for the embeddings.

    Example:
        >>> [parameter_depth(n, 6) for n in ("classifier.weight", "bert.encoder.layer.1.output.dense.bias",
        ...                                   "bert.embeddings.word_embeddings.weight")]
        [0, 4, 6]
    """
    match = _LAYER_INDEX.search(name)
    if match is not None:
        return max(0, num_layers - 1 - int(match.group(1)))
    return num_layers if "embeddings" in name else 0


def layer_lr_groups(
    model: Any, lr: float, decay: float, weight_decay: float, decayed_names: set[str]
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for layer-wise learning-rate decay: a parameter `depth` layers below the top
    (`parameter_depth`) learns at `lr * decay**depth`; weight decay only on `decayed_names` (Trainer's choice:
    no bias, no norm). A `TextclsError` when the model has no weights named `...layer.<n>...`."""
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    found = [int(match.group(1)) for name, _ in named if (match := _LAYER_INDEX.search(name))]
    if not found:
        raise TextclsError(
            f"layer_lr_decay: expected an encoder whose weights are named '...layer.<n>...', found none in "
            f"{type(model).__name__}; drop --layer-lr-decay for this model"
        )
    num_layers = max(found) + 1
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in named:
        depth, decayed = parameter_depth(name, num_layers), name in decayed_names
        group = groups.setdefault(
            (depth, decayed),
            {"params": [], "lr": lr * math.pow(decay, depth), "weight_decay": weight_decay if decayed else 0.0},
        )
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


WEIGHTS_FILE = "model.safetensors"  # the weights of a Trainer checkpoint


def average_checkpoints(checkpoint_dir: Path, count: int) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """The element-wise mean of the weights of the last `count` complete checkpoints in `checkpoint_dir` (fewer
    when fewer were written), and those checkpoints; tensors that are not floating point come from the last.
    Only safetensors weights are read."""
    from safetensors.torch import load_file

    found = sorted(
        (int(match.group(1)), path)
        for path in (checkpoint_dir.iterdir() if checkpoint_dir.is_dir() else [])
        if path.is_dir() and (match := _CHECKPOINT.match(path.name)) and is_complete(path)
    )
    chosen = [path for _, path in found[-count:]]
    if not chosen or not all((path / WEIGHTS_FILE).is_file() for path in chosen):
        raise TextclsError(
            f"average_last: expected {WEIGHTS_FILE} in the last {count} checkpoints of {checkpoint_dir}, found "
            f"{[path.name for path in chosen] or 'no checkpoint'}; pass --average-last 1"
        )
    total: dict[str, torch.Tensor] = {}
    for path in chosen:
        for name, tensor in load_file(str(path / WEIGHTS_FILE)).items():
            if not tensor.is_floating_point():
                total[name] = tensor
            elif name in total:
                total[name] += tensor.double()
            else:
                total[name] = tensor.double()
    template = load_file(str(chosen[-1] / WEIGHTS_FILE))
    averaged = {
        name: (tensor / len(chosen)).to(template[name].dtype) if tensor.is_floating_point() else tensor
        for name, tensor in total.items()
    }
    return averaged, chosen
