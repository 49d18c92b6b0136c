"""Hugging Face encoders fine-tuned with `Trainer`: the lesson's BERT recipe, made fast.

What makes it fast (measured by `benchmarks/train_throughput.py`): texts are tokenised once by the
Rust tokenizer into compact arrays (cached), padded per batch to the longest one rounded up to a
multiple of 8 instead of to 512 tokens, batches hold texts of similar length and, on a GPU, are cut
by a token budget; the matrix multiplies run in bf16 autocast where the processor has bf16 units.
The data path is `textcls.engine`'s, shared with the from-scratch families: `Trainer` runs the
steps (measured: its own overhead is small beside a step; it keeps DDP, checkpoints and resume)
and is handed the engine's data loaders. On a GPU: pinned memory and worker processes, fused
AdamW, TF32, `torch.compile` when asked (`--compile`), and no host sync per step for logging.

Example:
    >>> clf = PretrainedClassifier.load(Path("runs/agnews/model"))   # doctest: +SKIP
    >>> clf.predict_proba(["Stocks fell sharply."]).shape            # doctest: +SKIP
    (1, 4)
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textcls.config import TrainConfig
from textcls.cpu_speed import lean_cpu_training
from textcls.data import Split
from textcls.engine import (
    GPU_PREDICT_TOKENS,
    EpochBatches,
    ThroughputMeter,
    TokenizedRows,
    array_to_device,
    batch_loader,
    encode_windows,
    eval_plan,
    for_this_device,
    pad_id,
    pooled_logits,
)
from textcls.environment import (
    EMBEDDED_MODEL_NAME, device, inference_precision, quiet_transformers, resolve_model, resolve_precision, tune_cuda,
)
from textcls.errors import TextclsError
from textcls.evaluation import headline_metrics, predicted_labels
from textcls.explain import Explanation, check_text, from_attention_maps
from textcls.families import FAMILIES
from textcls.files import write_json
from textcls.runfolder import damaged
from textcls.imbalance import loss_weights, with_metric
from textcls.models.base import (
    BALANCED_SAMPLER,
    DISTRIBUTED,
    EXPLAIN,
    EXPORT_ONNX,
    LONG_TEXT,
    MULTI_LABEL,
    PREDICT,
    Classifier,
    EpochRow,
    TrainSummary,
    check_training_options,
)
from textcls.multilabel import targets
from textcls.objectives import Objective, probabilities
from textcls.windows import Windowing, model_token_limit

log = logging.getLogger("textcls.pretrained")

def _from_pretrained_error(model_name: str, error: Exception) -> TextclsError:
    return TextclsError(
        f"could not load model {model_name!r}: {error}. If it is a hub id and this machine is offline, "
        "pass a local folder (--model DIR), omit --model for the embedded all-MiniLM-L6-v2, or set "
        "HF_HUB_OFFLINE=1 with the model already in the Hugging Face cache"
    )


def clamp_max_length(requested: int, tokenizer: Any, model_config: Any) -> int:
    """`requested`, or the model's own limit when that is smaller (with a warning)."""
    limit = model_token_limit(getattr(tokenizer, "model_max_length", None), getattr(model_config, "max_position_embeddings", None))
    clamped = requested if limit is None else min(requested, limit)
    if clamped < requested:
        log.warning("max_length %d exceeds the model's limit; using %d", requested, clamped)
    return clamped


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
        (int(match.group(1)), path) for path in checkpoint_dir.iterdir()
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
                if args.should_save:  # the process that writes checkpoints
                    mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")
                return control

        self.callback = Callback()


def training_arguments(checkpoint_dir: Path, config: Any, precision: str, **options: Any) -> Any:
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
        report_to="none",
        # the NaN/inf filter reads every step's loss on the host: a sync per step on a GPU
        logging_nan_inf_filter=False,
        torch_compile=bool(getattr(config, "compile", False)) and gpu,
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
    """The Trainer callbacks every textcls run uses: complete-checkpoint markers, and the time budget."""
    callbacks = [_CheckpointGuard().callback]
    if time_budget is not None:
        callbacks.append(_TimeBudget(time_budget).callback)
    return callbacks


def run_trainer(trainer: Any, checkpoint_dir: Path, resume: bool) -> tuple[Any, str | None, float]:
    """`trainer.train()`, from the last complete checkpoint when `resume`; (result, resumed from, seconds)."""
    should_save = trainer.args.should_save
    resume_from = None
    if resume:
        last = last_complete_checkpoint(checkpoint_dir, remove_incomplete=should_save)
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
                f"--batch-tokens (a GPU's default is {FAMILIES['pretrained'].gpu_defaults['batch_tokens']} tokens a "
                "batch for pretrained models) or --batch-size, or a shorter --max-length"
            ) from error
        raise
    return result, resume_from, time.perf_counter() - started


def engine_trainer(
    train_rows: TokenizedRows, batches: EpochBatches, dev_rows: TokenizedRows, dev_batches: Sequence[Any],
    config: TrainConfig, objective: Objective | None = None, **trainer_options: Any,
) -> Any:
    """A `Trainer` fed by the engine's data loaders: the token-budget (or count) batches of `batches`,
    evaluation in `dev_batches`, padding in numpy; accelerate shards the batches under DDP. With an
    `objective`, the loss is its own (class weights; window logits pooled per text) instead of the model's."""
    from transformers import Trainer

    class EngineTrainer(Trainer):
        def get_train_dataloader(self) -> Any:
            return self.accelerator.prepare(batch_loader(train_rows, batches, config))

        def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
            return self.accelerator.prepare(batch_loader(dev_rows, dev_batches, config))

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
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
        train_dataset=train_rows, eval_dataset=dev_rows,
        callbacks=[*trainer_options.pop("callbacks", []), meter.callback], **trainer_options,
    )
    trainer.throughput = meter.meter  # read back by fit() for metrics.json
    return trainer


class _SteadyThroughput:
    """Trainer callback: steady-state samples/s (`engine.ThroughputMeter`), the clock paused over
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


def epoch_history(log_history: list[dict[str, Any]]) -> list[EpochRow]:
    """One row per evaluation: epoch, step, the last training loss before it, dev loss/accuracy/F1."""
    rows, last_loss = [], None
    for entry in log_history:
        if "loss" in entry:
            last_loss = entry["loss"]
        if "eval_accuracy" in entry:
            rows.append(
                EpochRow(
                    epoch=round(float(entry["epoch"]), 4),
                    step=int(entry["step"]),
                    train_loss=last_loss,
                    dev_loss=entry.get("eval_loss"),
                    dev_accuracy=entry["eval_accuracy"],
                    dev_macro_f1=entry.get("eval_macro_f1"),
                )
            )
    return rows


class PretrainedClassifier(Classifier):
    """A Hugging Face `AutoModelForSequenceClassification` with its tokenizer."""

    family = "pretrained"
    capabilities = frozenset({PREDICT, EXPLAIN, EXPORT_ONNX, BALANCED_SAMPLER, LONG_TEXT, MULTI_LABEL, DISTRIBUTED})
    inference_precisions = ("fp32", "bf16")

    def __init__(
        self, model: Any, tokenizer: Any, label_names: Sequence[str], max_length: int, precision: str = "fp32",
        windowing: Windowing | None = None,
    ):
        self.model = model
        # the model's config says so (problem_type), so a saved model reloads as what it was trained for
        self.multi_label = getattr(model.config, "problem_type", None) == MULTI_LABEL_PROBLEM
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length
        self.precision = precision  # fp32, or bf16 autocast at inference
        self.windowing = windowing or Windowing(max_length)  # what reads texts longer than max_length

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        train: Split,
        dev: Split,
        label_names: Sequence[str],
        config: TrainConfig,
        checkpoint_dir: Path,
    ) -> tuple[PretrainedClassifier, TrainSummary]:
        """Fine-tune on `train`, evaluating on `dev` every epoch; returns the best model and a summary.

        Checkpoints go to `checkpoint_dir`; with `config.resume` training continues from the last one.
        Works unchanged under `torchrun`/`accelerate launch` (Trainer's own DDP).
        """
        from transformers import EarlyStoppingCallback, set_seed

        check_training_options(cls, config, train.multi_label)
        config = for_this_device(with_metric(config, train.labels, label_names))
        weights, sample_weights = loss_weights(config, train.labels, label_names)
        model_name = resolve_model(config.model)
        set_seed(config.seed)  # the fresh classification head is drawn now, before Trainer seeds anything
        tokenizer, model = _load_tokenizer_and_model(model_name, label_names, config.trust_remote_code, train.multi_label)
        max_length = clamp_max_length(config.max_length, tokenizer, model.config)
        precision = resolve_precision(config.precision)
        log.info("model %s, max_length %d, precision %s", model_name, max_length, precision)

        padding = pad_id(tokenizer)
        windowing = Windowing.from_config(config, max_length)
        train_ids, train_windows = encode_windows(tokenizer, train.texts, windowing, desc=f"tokenising {train.name}")
        dev_ids, dev_windows = encode_windows(tokenizer, dev.texts, windowing, desc=f"tokenising {dev.name}")
        train_rows = TokenizedRows(train_ids, targets(train.labels, len(label_names), train.multi_label), padding, train_windows)
        dev_rows = TokenizedRows(dev_ids, targets(dev.labels, len(label_names), dev.multi_label), padding, dev_windows)
        batches = EpochBatches(train_rows.text_lengths(config.batch_tokens), config, sample_weights)

        args = training_arguments(
            checkpoint_dir, config, precision,
            # Trainer reads only its logs and its fallbacks from this: the batches are the engine's
            per_device_train_batch_size=max(1, round(len(train_rows) / len(batches))),
            per_device_eval_batch_size=config.eval_batch_size,
            eval_strategy="epoch",
            load_best_model_at_end=True,
            metric_for_best_model=config.metric,
            greater_is_better=True,
            dataloader_num_workers=config.num_workers,
            # every parameter of an encoder + head takes part in the loss; skip DDP's extra graph walk
            ddp_find_unused_parameters=False,
            disable_tqdm=False,
        )

        def compute_metrics(prediction: Any) -> dict[str, float]:
            return headline_metrics(prediction.label_ids, predicted_labels(prediction.predictions, train.multi_label))

        callbacks = training_callbacks(config.time_budget)
        if config.early_stopping_patience > 0:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))

        trainer = engine_trainer(
            train_rows, batches, dev_rows, eval_plan(dev_rows.text_lengths(), config, args.world_size), config,
            objective=Objective.of(weights, config.pooling, train.multi_label),
            model=model, args=args, processing_class=tokenizer, compute_metrics=compute_metrics, callbacks=callbacks,
        )
        result, resume_from, train_seconds = run_trainer(trainer, checkpoint_dir, config.resume)

        summary = TrainSummary(
            model=model_name if config.model is not None else EMBEDDED_MODEL_NAME,
            max_length=max_length,
            precision=precision,
            world_size=args.world_size,
            train_seconds=round(train_seconds, 2),
            train_samples_per_second=result.metrics.get("train_samples_per_second"),
            steady_samples_per_second=trainer.throughput.samples_per_second,
            train_loss=result.metrics.get("train_loss"),
            global_step=trainer.state.global_step,
            best_checkpoint_metric=trainer.state.best_metric,
            stopped_by_time_budget=bool(getattr(trainer.state, "stopped_by_time_budget", False)),
            resumed_from=resume_from,
            epochs=epoch_history(trainer.state.log_history),
        )
        # load_best_model_at_end put the best weights in trainer.model; for mixed precision, accelerate
        # also wrapped its forward in autocast, which we drop so inference matches a reloaded model.
        best = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False, keep_torch_compile=False)
        best.eval()
        return cls(best, tokenizer, label_names, max_length, windowing=windowing), summary

    # ---- inference ------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Class probabilities in input order; texts are sorted by length so batches carry little padding,
        and texts longer than max_length are read as the run's `--long-text` says. On a GPU the batches
        are cut by a budget of `GPU_PREDICT_TOKENS` tokens instead of `batch_size` texts."""
        if not len(texts):
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        device = next(self.model.parameters()).device
        self.model.eval()

        # bf16 weights (`load` casts them once on a GPU) need no autocast; fp32 weights get it for "bf16"
        autocast = self.precision == "bf16" and next(self.model.parameters()).dtype == torch.float32

        def forward(input_ids: np.ndarray, attention_mask: np.ndarray) -> torch.Tensor:
            inputs = {"input_ids": array_to_device(input_ids, device), "attention_mask": array_to_device(attention_mask, device)}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                return self.model(**inputs).logits.float()  # (batch, classes), left on the device: no host sync per batch

        logits = pooled_logits(
            self.tokenizer, texts, self.windowing, forward, pad_id=pad_id(self.tokenizer), batch_size=batch_size,
            batch_tokens=GPU_PREDICT_TOKENS if device.type == "cuda" else None, progress=progress,
        )
        return probabilities(logits, self.multi_label)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        """Every layer's attention maps for `text`; `layer`/`head` pick the one whose [CLS] row is shown.

        The maps are of the first `max_length` tokens; under `--long-text head-tail` or `chunk` the label and
        probabilities are the whole text's, as `predict` reads it."""
        tokens, maps, probs = self.attention_maps(check_text(text))
        if self.windowing.strategy != "truncate":
            probs = self.predict_proba([text])[0]
        return from_attention_maps(text, self.family, self.label_names, probs, tokens, maps, layer, head)

    @torch.inference_mode()
    def attention_maps(self, text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Tokens, attention maps (layers, heads, tokens, tokens) and class probabilities of one text."""
        model, tokenizer = self.model, self.tokenizer
        encoded = tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt")
        target = next(model.parameters()).device
        # SDPA and flash kernels never materialise the maps, so switch to eager for this one call.
        previous = getattr(model.config, "_attn_implementation", None)
        switched = previous not in (None, "eager")
        if switched:
            set_attention_implementation(model, "eager")
        was_training = model.training
        model.eval()
        try:
            output = model(**{k: v.to(target) for k, v in encoded.items()}, output_attentions=True)
        finally:
            model.train(was_training)
            if switched:
                set_attention_implementation(model, previous)
        attentions = getattr(output, "attentions", None)
        if not attentions or any(a is None for a in attentions):
            raise TextclsError(
                f"expected attention maps from {type(model).__name__}, found none; this architecture does not "
                "return them (output_attentions=True); explain a BERT-like encoder or another family"
            )
        maps = torch.stack([a[0] for a in attentions]).float().cpu().numpy()  # (layers, heads, tokens, tokens)
        probs = probabilities(output.logits.float().cpu().numpy(), self.multi_label)[0]  # (classes,)
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
        return list(tokens), maps, probs

    # ---- persistence ----------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        """The model and its tokenizer, as a Hugging Face folder; only fp32 weights (casting a bf16
        inference model back would save weights that lost their low bits)."""
        dtype = next(self.model.parameters()).dtype
        if dtype != torch.float32:
            raise TextclsError(
                f"expected fp32 weights to save, found {dtype} (a model loaded for bf16 inference on a GPU); "
                "load it with precision fp32 to save it"
            )
        model_dir.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(model_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(model_dir)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        max_length: int = 128,
        label_names: Sequence[str] | None = None,
        precision: str = "fp32",
        windowing: Windowing | None = None,
        **_: Any,
    ) -> PretrainedClassifier:
        """Rebuild from `save`'s folder; `precision` "bf16" (or "auto" where supported) runs in bf16: on a
        GPU the weights are cast to bf16 once (autocast would cast every weight on every batch), on a CPU
        in bf16 autocast (its layer norms and softmax stay fp32)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
        except Exception as error:  # safetensors, JSON and tokenizer parsers each raise their own kind
            raise damaged(Path(model_dir), str(error).splitlines()[0][:200] if str(error) else type(error).__name__) from error
        target, precision = device(), inference_precision(precision)
        model.to(target).eval()
        if precision == "bf16" and target.type == "cuda":
            model.to(torch.bfloat16)
        if label_names is None:
            label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        return cls(model, tokenizer, label_names, max_length, precision, windowing)


def set_attention_implementation(model: Any, name: str) -> None:
    """Switch a transformers model's attention kernel ("eager" materialises the maps; "sdpa" is faster)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(name)
    else:  # older transformers read the private config field at every forward
        model.config._attn_implementation = name


# transformers' name for one sigmoid per label and BCE (`problem_type`), saved in the model's config.json
MULTI_LABEL_PROBLEM = "multi_label_classification"


def _load_tokenizer_and_model(
    model_name: str, label_names: Sequence[str], trust_remote_code: bool, multi_label: bool = False
) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    id2label = dict(enumerate(label_names))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name, trust_remote_code=trust_remote_code)
        # The fresh classification head is expected to be missing from an encoder checkpoint;
        # silence that load report so the real warnings stay visible.
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                model_name,
                num_labels=len(label_names),
                # never regression, whatever the label count or the checkpoint's own config says
                problem_type=MULTI_LABEL_PROBLEM if multi_label else "single_label_classification",
                id2label=id2label,
                label2id={name: i for i, name in id2label.items()},
                # A checkpoint fine-tuned for another task has a head of another size: start it afresh.
                ignore_mismatched_sizes=True,
                trust_remote_code=trust_remote_code,
            )
    except (OSError, ValueError) as error:
        raise _from_pretrained_error(model_name, error) from error
    log.info("loaded %s (%.1fM parameters)", model_name, model.num_parameters() / 1e6)
    return tokenizer, model
