"""What the from-scratch torch families share: tokenizer, training on the one loop, `TorchClassifier`.

The families `lstm`, `lstm-attention` and `scratch-transformer` differ only in their `nn.Module`;
everything around it lives here, once:

- texts become WordPiece ids with the embedded all-MiniLM-L6-v2 tokenizer (vocab 30,522, uncased,
  pad id 0), cut to `max_length` and padded per batch to its longest text (rounded up to a multiple
  of 8), never to a fixed length;
- training runs on `textcls.training.loop` (early stopping, time budget, checkpoints, resume); what
  this module gives it: AdamW with weight decay on matrices only, linear warm-up then linear decay,
  batches of texts of similar length, the classification loss, and dev loss and headline metrics after
  every epoch, the best weights by `--metric`. Its data path is `textcls.training`'s, the same as the
  pretrained family's: cached Rust tokenisation, token-budget batches on a GPU, pinned memory and
  prefetching workers, and `torch.compile` on a GPU with `--compile`;
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
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textcls.config import TrainConfig
from textcls.data.imbalance import loss_weights, with_metric
from textcls.data.loading import Split
from textcls.data.multilabel import targets, training_targets
from textcls.data.windows import Windowing
from textcls.errors import ConfigError, RunFolderError, TextclsError
from textcls.models.base import (
    BALANCED_SAMPLER,
    DISTILL,
    GRADIENT_HYPERPARAMETERS,
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
from textcls.training.checkpoints import clone_state
from textcls.training.cpu_speed import lean_cpu_training
from textcls.training.device import describe_batching, device, for_this_device, resolve_precision
from textcls.training.loaders import EpochBatches, TokenizedRows, batch_loader, eval_plan, to_device
from textcls.training.loop import EpochEnd, LoopHooks, LoopSettings, Schedule, run_loop
from textcls.training.objectives import Objective, distillation_of, probabilities
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


# ---- training -----------------------------------------------------------------------------
def training_batches(lengths: np.ndarray, batch_size: int, seed: int, group_by_length: bool = True) -> list[np.ndarray]:
    """One epoch's batches of `batch_size` row indices, a pure function of `seed` (so a resumed run
    replays them): `batching.training_plan` by count, texts of similar length together, in random order."""
    return training_plan(lengths, seed, batch_size=batch_size, group_by_length=group_by_length)


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
    if logits is None:  # no batches: no texts
        return np.zeros((0, 0), dtype=np.float32)
    return logits


def evaluate(
    module: nn.Module, rows: TokenizedRows, batches: Sequence[np.ndarray], objective: Objective
) -> dict[str, float]:
    """Dev loss and headline metrics of `module` on encoded texts, their windows scored in `batches` of
    window indices and pooled per text."""
    if rows.labels is None:
        raise ValueError("evaluate needs labelled rows")
    logits = predict_logits(module, rows.token_ids, 0, batches=batches)
    if rows.windows is not None:
        logits = rows.windows.pool(logits)  # (texts, classes)
    loss = objective.loss(torch.from_numpy(logits), torch.from_numpy(rows.labels)).item()
    return {"loss": loss, **headline_metrics(rows.labels, predicted_labels(logits, objective.multi_label))}


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
    """Train `module` in place on the one loop (`training.loop`) and leave the best weights (by dev
    `config.metric`) in it, in eval mode.

    `config` is resolved for this device (`device.for_this_device`). Evaluates on dev after every
    epoch (and when stopped early) and writes a checkpoint there, numbered by step. `identity` (family,
    hyper-parameters, batching) goes into each checkpoint; resuming checks it matches. Batch order
    and dropout are seeded from `config.seed` and the step, so a resumed run replays the batches an
    uninterrupted one would have, the rest of an epoch the time budget cut included.
    """
    if config.epochs is None or config.lr is None or config.metric is None:
        # the family's defaults, `for_this_device` and `with_metric` set these before training
        raise ConfigError(
            f"epochs, lr and metric: expected values once the defaults apply, found {config.epochs}, "
            f"{config.lr}, {config.metric}; pass them explicitly"
        )
    epochs = EpochBatches(rows.text_lengths(config.batch_tokens), config, sample_weights)
    dev_batches = eval_plan(dev_rows.token_ids.lengths, config)
    target = next(module.parameters()).device

    def loss(forward: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # input_ids, attention_mask (windows, seq); labels (texts,); window_owner (windows,) when texts have several
        batch = to_device(batch, target)
        logits, _ = forward(batch["input_ids"], batch["attention_mask"])  # (windows, classes)
        return objective.text_loss(logits, batch)[0]

    hooks: LoopHooks[dict[str, torch.Tensor], EpochRow] = LoopHooks(
        steps_per_epoch=len(epochs),
        plan=epochs.plan,
        load=lambda batches: batch_loader(rows, batches, config),
        loss=loss,
        # `evaluate` is looked up when called, so tests can stand in for the dev scores
        evaluate=lambda model: evaluate(model, dev_rows, dev_batches, objective),
        epoch_row=_epoch_row,
    )
    settings = LoopSettings(
        epochs=config.epochs,
        seed=config.seed,
        metric=config.metric,
        identity=identity,
        unit="step",
        peak_lr=config.lr,
        warmup_ratio=config.warmup_ratio,
        early_stopping_patience=config.early_stopping_patience,
        time_budget=config.time_budget,
        resume=config.resume,
        bf16_autocast=precision == "bf16",
        compile=config.compile,
        logging_steps=config.logging_steps,
        max_grad_norm=MAX_GRAD_NORM,
    )
    schedule = Schedule.of(len(epochs), config.epochs, config.warmup_ratio)
    log.info(
        "training %d rows, %d steps (%d per epoch), batches of %s, lr %g, %s",
        len(rows),
        schedule.total_steps,
        schedule.steps_per_epoch,
        describe_batching(config),
        config.lr,
        "bf16 autocast" if precision == "bf16" else "fp32",
    )
    result = run_loop(module, make_optimizer(module, config.lr, config.weight_decay), hooks, settings, checkpoint_dir)
    return TrainSummary(
        model=description,
        max_length=config.max_length,
        precision=precision,
        world_size=1,
        train_seconds=round(result.seconds, 2),
        train_samples_per_second=result.samples_per_second,
        steady_samples_per_second=result.steady_samples_per_second,
        train_loss=result.train_loss,
        global_step=result.state.step,
        best_checkpoint_metric=result.state.best_metric,
        stopped_by_time_budget=result.stopped_by == "time_budget",
        resumed_from=result.resumed_from,
        epochs=result.state.history,
    )


def _epoch_row(end: EpochEnd, dev: Mapping[str, float]) -> EpochRow:
    """The history row of one dev evaluation, logged."""
    row = EpochRow(
        epoch=end.epoch,
        step=end.step,
        train_loss=end.train_loss,
        dev_loss=dev["loss"],
        dev_accuracy=dev["accuracy"],
        dev_macro_f1=dev["macro_f1"],
    )
    log.info(
        "epoch %.2f (step %d): train loss %.4f, dev loss %.4f, dev accuracy %.4f, dev macro-F1 %.4f",
        end.epoch,
        end.step,
        end.train_loss if end.train_loss is not None else float("nan"),
        dev["loss"],
        dev["accuracy"],
        dev["macro_f1"],
    )
    return row


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
    capabilities = frozenset({PREDICT, BALANCED_SAMPLER, LONG_TEXT, MULTI_LABEL, DISTILL})
    hyperparameters = GRADIENT_HYPERPARAMETERS
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
                TokenizedRows(train_ids, training_targets(train, len(label_names)), PAD_ID, train_windows),
                TokenizedRows(dev_ids, targets(dev.labels, len(label_names), dev.multi_label), PAD_ID, dev_windows),
                config,
                checkpoint_dir,
                precision=precision,
                description=description,
                objective=Objective.of(weights, config.pooling, train.multi_label, distillation_of(train)),
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
        save_file(clone_state(self.model), str(model_dir / WEIGHTS_FILE))
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
