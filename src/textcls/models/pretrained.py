"""Hugging Face encoders fine-tuned with `Trainer`: the lesson's BERT recipe, made fast.

What makes it fast (measured by `benchmarks/train_throughput.py`): texts are tokenised once by the
Rust tokenizer into compact arrays (cached), padded per batch to the longest one rounded up to a
multiple of 8 instead of to 512 tokens, batches hold texts of similar length and, on a GPU, are cut
by a token budget; the matrix multiplies run in bf16 autocast where the processor has bf16 units.
The data path is `textcls.training`'s, shared with the from-scratch families: `Trainer` runs the
steps (measured: its own overhead is small beside a step; it keeps DDP, checkpoints and resume)
and is handed the engine's data loaders. On a GPU: pinned memory and worker processes, fused
AdamW, TF32, `torch.compile` when asked (`--compile`), and no host sync per step for logging.

Example:
    >>> clf = PretrainedClassifier.load(Path("runs/agnews/model"))   # doctest: +SKIP
    >>> clf.predict_proba(["Stocks fell sharply."]).shape            # doctest: +SKIP
    (1, 4)
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from textcls.config import TrainConfig
from textcls.data.imbalance import loss_weights, with_metric
from textcls.data.loading import Split
from textcls.data.multilabel import targets, training_targets
from textcls.data.windows import Windowing, model_token_limit
from textcls.errors import RunFolderError, TextclsError
from textcls.models.base import (
    BALANCED_SAMPLER,
    CHECKPOINT_AVERAGING,
    DISTILL,
    DISTRIBUTED,
    EXPLAIN,
    EXPORT_HF,
    EXPORT_ONNX,
    GRADIENT_HYPERPARAMETERS,
    LAYER_LR_DECAY,
    LONG_TEXT,
    MULTI_LABEL,
    PREDICT,
    Classifier,
    EpochRow,
    TrainSummary,
    check_training_options,
)
from textcls.models.encoders import EMBEDDED_MODEL_NAME, check_model_found, quiet_transformers, resolve_model
from textcls.reporting.explanations import Explanation, check_text, from_attention_maps
from textcls.reporting.metrics import headline_metrics, predicted_labels
from textcls.runfolder import RUN_FILE, damaged
from textcls.training.device import device, for_this_device, inference_precision, resolve_precision
from textcls.training.loaders import EpochBatches, TokenizedRows, array_to_device, eval_plan
from textcls.training.objectives import Objective, distillation_of, probabilities
from textcls.training.prediction import GPU_PREDICT_TOKENS, pooled_logits
from textcls.training.tokens import encode_windows, pad_id

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from textcls.training.trainer import (
    EpochDevLogits,
    average_checkpoints,
    engine_trainer,
    epoch_scores_reused,
    run_trainer,
    training_arguments,
    training_callbacks,
)

log = logging.getLogger(__name__)


def _from_pretrained_error(model_name: str, error: Exception) -> TextclsError:
    cause = " ".join(str(error).split())  # transformers' messages run over several lines; the CLI prints one
    return TextclsError(
        f"could not load model {model_name!r}: {cause}. If it is a hub id and this machine is offline, "
        "pass a local folder (--model DIR), omit --model for the embedded all-MiniLM-L6-v2, or set "
        "HF_HUB_OFFLINE=1 with the model already in the Hugging Face cache"
    )


def clamp_max_length(requested: int, tokenizer: PreTrainedTokenizerBase, model_config: PretrainedConfig) -> int:
    """`requested`, or the model's own limit when that is smaller (with a warning)."""
    # not every architecture's config names a position limit
    limit = model_token_limit(tokenizer.model_max_length, getattr(model_config, "max_position_embeddings", None))
    clamped = requested if limit is None else min(requested, limit)
    if clamped < requested:
        log.warning("max_length %d exceeds the model's limit; using %d", requested, clamped)
    return clamped


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
    capabilities = frozenset(
        {
            PREDICT,
            EXPLAIN,
            EXPORT_ONNX,
            EXPORT_HF,
            BALANCED_SAMPLER,
            LONG_TEXT,
            MULTI_LABEL,
            DISTRIBUTED,
            DISTILL,
            LAYER_LR_DECAY,
            CHECKPOINT_AVERAGING,
        }
    )
    inference_precisions = ("fp32", "bf16")
    hyperparameters = GRADIENT_HYPERPARAMETERS

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        label_names: Sequence[str],
        max_length: int,
        precision: str = "fp32",
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
    def check_sources(cls, config: TrainConfig) -> None:
        """A --model that is neither a folder here nor a hub model within reach fails here."""
        if config.model is not None:
            check_model_found(config.model)

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
        tokenizer, model = _load_tokenizer_and_model(
            model_name, label_names, config.trust_remote_code, train.multi_label
        )
        max_length = clamp_max_length(config.max_length, tokenizer, model.config)
        precision = resolve_precision(config.precision)
        log.info("model %s, max_length %d, precision %s", model_name, max_length, precision)

        padding = pad_id(tokenizer)
        windowing = Windowing.from_config(config, max_length)
        train_ids, train_windows = encode_windows(tokenizer, train.texts, windowing, desc=f"tokenising {train.name}")
        dev_ids, dev_windows = encode_windows(tokenizer, dev.texts, windowing, desc=f"tokenising {dev.name}")
        train_rows = TokenizedRows(train_ids, training_targets(train, len(label_names)), padding, train_windows)
        dev_rows = TokenizedRows(dev_ids, targets(dev.labels, len(label_names), dev.multi_label), padding, dev_windows)
        batches = EpochBatches(train_rows.text_lengths(config.batch_tokens), config, sample_weights)

        args = training_arguments(
            checkpoint_dir,
            config,
            precision,
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
            # the best checkpoint and the last `average_last` stay on disk (Trainer keeps the best besides)
            save_total_limit=max(2, config.average_last + 1),
        )

        dev_plan = eval_plan(dev_rows.text_lengths(), config, args.world_size)
        # the final model's dev scoring comes from its epoch's evaluation where that ran as `predict_proba` would
        reused = epoch_scores_reused(precision, config.average_last, args.world_size)
        epoch_logits = EpochDevLogits(dev_plan if reused else None, dev_rows.labels)

        def compute_metrics(prediction: Any) -> dict[str, float]:
            epoch_logits.record(trainer.state.global_step, prediction.predictions, prediction.label_ids)
            return headline_metrics(prediction.label_ids, predicted_labels(prediction.predictions, train.multi_label))

        callbacks = training_callbacks(config.time_budget)
        if config.early_stopping_patience > 0:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))

        trainer = engine_trainer(
            train_rows,
            batches,
            dev_rows,
            dev_plan,
            config,
            objective=Objective.of(weights, config.pooling, train.multi_label, distillation_of(train)),
            model=model,
            args=args,
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
            callbacks=callbacks,
        )
        result, resume_from, train_seconds = run_trainer(trainer, checkpoint_dir, config.resume, config.batch_tokens)

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
        if config.average_last > 1:
            summary["averaged_checkpoints"] = _average_last(best, checkpoint_dir, config.average_last)
        best.eval()
        classifier = cls(best, tokenizer, label_names, max_length, windowing=windowing)
        scored = epoch_logits.of_checkpoint(trainer.state.best_model_checkpoint)
        if scored is not None:
            classifier.fit_dev_probabilities = probabilities(scored, train.multi_label)
        return classifier, summary

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
            inputs = {
                "input_ids": array_to_device(input_ids, device),
                "attention_mask": array_to_device(attention_mask, device),
            }
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                return self.model(
                    **inputs
                ).logits.float()  # (batch, classes), left on the device: no host sync per batch

        logits = pooled_logits(
            self.tokenizer,
            texts,
            self.windowing,
            forward,
            pad_id=pad_id(self.tokenizer),
            batch_size=batch_size,
            batch_tokens=GPU_PREDICT_TOKENS if device.type == "cuda" else None,
            progress=progress,
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
        kernel = getattr(model.config, "_attn_implementation", None)
        previous = kernel if kernel not in (None, "eager") else None  # only eager attention returns its weights
        if previous is not None:
            set_attention_implementation(model, "eager")
        was_training = model.training
        model.eval()
        try:
            output = model(**{k: v.to(target) for k, v in encoded.items()}, output_attentions=True)
        finally:
            model.train(was_training)
            if previous is not None:
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
            raise damaged(
                Path(model_dir), str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            ) from error
        target, precision = device(), inference_precision(precision)
        model.to(target).eval()
        if precision == "bf16" and target.type == "cuda":
            model.to(torch.bfloat16)
        if label_names is None:
            label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if len(label_names) != model.config.num_labels:
            raise RunFolderError(
                f"expected {model.config.num_labels} label names for the model in {model_dir} (its classifier has "
                f"{model.config.num_labels} outputs), found {len(label_names)} ({list(label_names)[:10]}); the run "
                f"folder's {RUN_FILE} does not match its model: train again or restore the folder"
            )
        return cls(model, tokenizer, label_names, max_length, precision, windowing)

    # ---- export ---------------------------------------------------------------------------
    def onnx_graph(self) -> tuple[torch.nn.Module, list[str]]:
        """The model itself (token ids, attention mask and token types where the tokenizer makes them -> logits),
        moved to the CPU, for `textcls.inference.onnx`."""
        model = self.model.to("cpu").eval()  # type: ignore[arg-type]  # transformers' decorator on `to` loses its signature
        # Plain MatMul/Softmax attention exports to a graph ONNX Runtime fuses and quantises well.
        set_attention_implementation(model, "eager")
        names = ("input_ids", "attention_mask", "token_type_ids")
        return model, [name for name in names if name in self.tokenizer.model_input_names]


def _average_last(model: Any, checkpoint_dir: Path, count: int) -> list[int]:
    """Put the mean of the last `count` checkpoints' weights into `model`; returns their steps."""
    averaged, chosen = average_checkpoints(checkpoint_dir, count)
    if len(chosen) < count:
        log.warning("--average-last %d: only %d epoch-end checkpoints were written; averaging them", count, len(chosen))
    target = next(model.parameters()).device
    missing, unexpected = model.load_state_dict({k: v.to(target) for k, v in averaged.items()}, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or set(missing) - tied:
        raise TextclsError(
            f"average_last: the checkpoints in {checkpoint_dir} do not match the model (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}); pass --average-last 1"
        )
    steps = [int(path.name.rsplit("-", 1)[1]) for path in chosen]
    log.info("final weights: the mean of the checkpoints at steps %s", steps)
    return steps


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


_ENCODER_LAYER = re.compile(r"^(.*\.layer\.)(\d+)(\..*)$")  # "bert.encoder.layer.3.attention..." -> prefix, 3, rest


def evenly_chosen_layers(total: int, count: int) -> list[int]:
    """`count` of `total` layers (0-based), the last of each of `count` equal groups: the top layer is always kept.

    Example:
        >>> evenly_chosen_layers(6, 2), evenly_chosen_layers(2, 1)
        ([2, 5], [1])
    """
    return [(group + 1) * total // count - 1 for group in range(count)]


def encoder_layers(model_dir: Path) -> int | None:
    """How many encoder layers the Hugging Face model in `model_dir` has (its config's), or None."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_dir), "num_hidden_layers", None)


def cut_encoder(model_dir: Path, count: int, out_dir: Path, label_names: Sequence[str]) -> list[int]:
    """Write to `out_dir` the classifier of `model_dir` cut to `count` of its encoder layers, picked evenly
    (`evenly_chosen_layers`), with its embeddings, pooler, head and tokenizer; the head's rows follow
    `label_names` (a permutation of the model's own). Returns the layers kept (0-based).

    Example:
        >>> labels = ["Business", "Sci/Tech", "Sports", "World"]
        >>> cut_encoder(Path("runs/agnews/model"), 2, Path("student"), labels)   # doctest: +SKIP
        [2, 5]
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
    total = getattr(teacher.config, "num_hidden_layers", None)
    if total is None or not 1 <= count <= total:
        raise TextclsError(
            f"expected a student of 1 to {total} layers (the teacher's encoder in {model_dir} has {total}), found "
            f"{count}; pass --student layers:N with N <= {total}"
        )
    chosen = evenly_chosen_layers(total, count)
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = count
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    student = AutoModelForSequenceClassification.from_config(config)
    source = teacher.state_dict()
    order = torch.tensor([teacher.config.label2id[name] for name in label_names])
    weights, found_layers = {}, False
    for name in student.state_dict():
        match = _ENCODER_LAYER.match(name)
        if match is not None:
            found_layers = True
            name_in_teacher = f"{match.group(1)}{chosen[int(match.group(2))]}{match.group(3)}"
        else:
            name_in_teacher = name
        value = source[name_in_teacher]
        on_head = not name.startswith(teacher.base_model_prefix) and value.shape[:1] == (len(label_names),)
        weights[name] = value[order] if on_head else value  # head rows (classes, ...) in `label_names` order
    if not found_layers:
        raise TextclsError(
            f"expected an encoder whose weights are named '...layer.<n>...', found none in {model_dir} "
            f"({type(teacher).__name__}); pass a model folder or a family name as --student"
        )
    student.load_state_dict(weights)
    student.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    log.info("student: layers %s of the teacher's %d, %.1fM parameters", chosen, total, student.num_parameters() / 1e6)
    return chosen


def mean_pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq, hidden) states -> (batch, hidden) unit vectors: the mean over the unmasked tokens, L2-normalised
    in fp32 (sentence-transformers' mean pooling, as all-MiniLM-L6-v2 is read; setfit's embeddings too).

    Example:
        >>> hidden = torch.tensor([[[0.0, 2.0], [0.0, 4.0], [9.0, 9.0]], [[5.0, 0.0], [7.0, 7.0], [1.0, 1.0]]])
        >>> mean_pooled(hidden, torch.tensor([[1, 1, 0], [1, 0, 0]])).tolist()  # padding counts for nothing
        [[0.0, 1.0], [1.0, 0.0]]
    """
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (batch, hidden)
    return torch.nn.functional.normalize(mean.float(), dim=-1)


# Texts per forward pass for frozen sentence embeddings on a CPU (sorted by length, little padding).
EMBEDDING_BATCH_SIZE = 64


@torch.inference_mode()
def sentence_embeddings(
    texts: Sequence[str],
    model: str | None = None,
    max_length: int = 128,
    batch_size: int = EMBEDDING_BATCH_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Frozen, mean-pooled, unit-length sentence embeddings (texts, hidden) in input order, from the encoder
    `model` (None: the embedded all-MiniLM-L6-v2; a hub id, folder or `textcls pretrain` run as for --model).

    Texts run through the one prediction batch path (`pooled_logits`), truncated to `max_length` tokens.

    Example:
        >>> sentence_embeddings(["Stocks fell sharply.", "A late goal won it."]).shape   # doctest: +SKIP
        (2, 384)
    """
    from transformers import AutoModel, AutoTokenizer

    name = resolve_model(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        with quiet_transformers():
            encoder = AutoModel.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise _from_pretrained_error(name, error) from error
    encoder.eval()
    on = device()
    encoder.to(on)
    max_length = clamp_max_length(max_length, tokenizer, encoder.config)

    def forward(input_ids: np.ndarray, attention_mask: np.ndarray) -> torch.Tensor:
        mask = array_to_device(attention_mask, on)
        hidden = encoder(input_ids=array_to_device(input_ids, on), attention_mask=mask).last_hidden_state
        return mean_pooled(hidden, mask)

    if not len(texts):
        return np.zeros((0, int(encoder.config.hidden_size)), dtype=np.float32)
    return pooled_logits(
        tokenizer,
        list(texts),
        Windowing(max_length),
        forward,
        pad_id=pad_id(tokenizer),
        batch_size=batch_size,
        batch_tokens=GPU_PREDICT_TOKENS if on.type == "cuda" else None,
        progress=progress,
    )


# Texts whose token counts scale the measured speed to each max_length (`training_speed`).
SPEED_SAMPLE_TEXTS = 2000


def training_speed(
    model: str | None,
    texts: Sequence[str],
    max_lengths: Sequence[int],
    config: TrainConfig,
    steps: int = 2,
) -> dict[int, tuple[float, float]]:
    """Samples/s of this machine for `model` (as `--model` takes it) at each of `max_lengths`: training steps
    (forward, backward, AdamW step, in `config`'s precision and batch size) and prediction.

    One batch of texts drawn from `texts` (seeded) is timed at the longest max_length, over `steps` calls after
    a warm-up one, as tokens a second; a max_length then gets that rate over the tokens a text keeps under it
    (padded to a multiple of 8, the mean over a sample of `texts`): batches are grouped by length, so a step
    costs about its tokens.

    Example:
        >>> training_speed(None, texts, [64, 128], TrainConfig())   # doctest: +SKIP
        {64: (41.2, 160.3), 128: (30.5, 121.0)}
    """
    import random

    from textcls.training.cpu_speed import lean_cpu_training

    config = for_this_device(config)
    tokenizer, network = _load_tokenizer_and_model(resolve_model(model), ["first", "second"], config.trust_remote_code)
    on = device()
    network.to(on)
    precision = resolve_precision(config.precision)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-6)  # the weights are thrown away afterwards
    pool, longest = list(texts) or ["text"], max(max_lengths)
    rows = config.batch_size or max(1, (config.batch_tokens or longest) // longest)
    chosen = random.Random(config.seed).choices(pool, k=rows)
    batch = tokenizer(chosen, truncation=True, max_length=longest, padding=True, return_tensors="pt").to(on)
    batch["labels"] = torch.zeros(rows, dtype=torch.long, device=on)
    network.train()
    with lean_cpu_training(network):
        step = functools.partial(_training_step, network, optimizer)
        training = _samples_per_second(step, batch, steps, dtype)
    network.eval()
    with torch.inference_mode():
        predicting = _samples_per_second(network, {k: v for k, v in batch.items() if k != "labels"}, steps, dtype)
    tokens_per_text = batch["input_ids"].shape[1]  # what the timed batch held: padded to its longest
    sample = random.Random(config.seed).sample(pool, min(len(pool), SPEED_SAMPLE_TEXTS))
    lengths = np.array([len(ids) for ids in tokenizer(sample, truncation=True, max_length=longest)["input_ids"]])
    speeds = {}
    for max_length in max_lengths:
        kept = float(np.mean(-(-np.minimum(lengths, max_length) // 8) * 8))  # tokens a text keeps, padded to 8s
        scale = tokens_per_text / max(kept, 1.0)
        speeds[max_length] = (training * scale, predicting * scale)
        log.info("speed at max_length %d: %.1f samples/s training, %.1f predicting", max_length, *speeds[max_length])
    return speeds


def _training_step(network: Any, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> None:
    network(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _samples_per_second(step: Any, batch: dict[str, torch.Tensor], steps: int, dtype: torch.dtype | None) -> float:
    """Rows of `batch` a second through `step(**batch)` or `step(batch)`, over `steps` calls after a warm-up one."""
    import time

    on = batch["input_ids"].device
    started = time.perf_counter()
    for index in range(steps + 1):  # call 0 warms up (allocations, kernels)
        if index == 1:
            if on.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast(on.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            step(**batch) if isinstance(step, torch.nn.Module) else step(batch)
    if on.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(batch["input_ids"]) / max(time.perf_counter() - started, 1e-9)
