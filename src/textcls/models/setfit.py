"""SetFit: few-shot classification by contrastive fine-tuning of a sentence encoder, then a small head.

Tunstall et al. 2022 ("Efficient Few-Shot Learning Without Prompts"), written on transformers and torch:

1. pairs: for each iteration and labelled row, one partner that shares a label with it (similarity 1)
   and one that shares none (similarity 0), drawn with `seed` (`sample_pairs`);
2. the encoder body (mean pooling of the last hidden states, L2-normalised, as sentence-transformers
   does for all-MiniLM-L6-v2) is fine-tuned on the pairs with SetFit's `CosineSimilarityLoss`: the
   squared error between the pair's cosine similarity and its label, on the one loop (`training.loop`);
3. a head on the embeddings: logistic regression (scikit-learn, one-vs-rest for multi-label) by
   default, or `--setfit-head differentiable`, a linear layer trained end to end with the body, on the
   same loop, starting from the logistic regression's weights.
4. with `--setfit-unlabeled`, the logistic head self-trains on unlabelled texts by curriculum labelling
   (Cascante-Bonilla et al. 2021): each of R rounds labels them with the current head and fits the
   head again on the labelled rows plus the r/R most confident share of each predicted class
   (`self_trained_head`);
5. with `--setfit-student-epochs` as well, encoder and head then train end to end, dropout on, on the
   labelled rows (their labels) and the unlabelled texts (the self-trained head's class probabilities as
   soft targets): the model becomes the student of its own self-trained head (self-distillation, as in
   Xie et al. 2020's noisy student), the unlabelled texts now reaching the encoder too.

Either head is saved as a linear layer (`head.safetensors`: weight (classes, hidden), bias (classes,))
beside the body's Hugging Face folder; nothing is pickled. `textcls export --format onnx` writes body,
pooling, normalisation and head as one graph from token ids to logits, for the onnx backends.

Example:
    >>> clf = SetFitClassifier.load(Path("runs/few/model"))   # doctest: +SKIP
    >>> clf.predict(["Stocks fell sharply."])                 # doctest: +SKIP
    ['Business']
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textcls.config import TrainConfig
from textcls.data.imbalance import class_counts, loss_weights, with_metric
from textcls.data.loading import LabelRows, Split, row_labels
from textcls.data.multilabel import targets
from textcls.data.unlabeled import read_unlabeled_texts
from textcls.errors import DataError, RunFolderError, TextclsError
from textcls.files import write_text_atomic
from textcls.models.base import (
    EXPLAIN,
    EXPORT_ONNX,
    MULTI_LABEL,
    PREDICT,
    SELF_TRAINING,
    Classifier,
    EpochRow,
    TrainSummary,
    check_training_options,
)
from textcls.models.encoders import EMBEDDED_MODEL_NAME, check_model_found, quiet_transformers, resolve_model
from textcls.models.pretrained import clamp_max_length, mean_pooled, set_attention_implementation
from textcls.reporting.explanations import Explanation, check_text, from_attention_maps
from textcls.reporting.metrics import headline_metrics, predicted_labels
from textcls.runfolder import damaged
from textcls.training.device import device, for_this_device, inference_precision, resolve_precision
from textcls.training.loop import EpochEnd, LoopHooks, LoopResult, LoopSettings, run_loop
from textcls.training.objectives import probabilities

log = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"
SETTINGS_FILE = "setfit.json"
# The differentiable head trains this many epochs over the labelled rows, its layer at HEAD_LR (SetFit's
# head learning rate) and the body at --lr.
HEAD_EPOCHS = 10
HEAD_LR = 1e-2
MAX_GRAD_NORM = 1.0
SELF_TRAINING_ROUNDS = 5  # --setfit-self-training-rounds' default
# The student phase's head learns at this multiple of the encoder's rate (--lr): 1e-3 against 2e-5
STUDENT_HEAD_LR_SCALE = 50.0
# Unlabelled texts embedded between looks at the clock under --time-budget
UNLABELED_CHUNK = 1024


def sample_pairs(labels: LabelRows, iterations: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contrastive pairs as SetFit draws them: for each of `iterations` passes and each row, one partner
    sharing a label with it (similarity 1.0) and one sharing none (0.0), where such a row exists.

    Returns (first rows, second rows, similarities), each (pairs,).

    Example:
        >>> first, second, similarity = sample_pairs([0, 0, 1, 1], iterations=1, seed=0)
        >>> similarity.tolist()
        [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    """
    rng = np.random.default_rng(seed)
    label_sets = [set(row_labels(row)) for row in labels]
    members: dict[int, list[int]] = {}
    for row, names in enumerate(label_sets):
        for label in names:
            members.setdefault(label, []).append(row)
    rows_of = {label: np.asarray(rows) for label, rows in members.items()}
    pairs: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for row, names in enumerate(label_sets):
            label = sorted(names)[rng.integers(len(names))]
            partners = rows_of[label][rows_of[label] != row]
            if len(partners):
                pairs.append((row, int(rng.choice(partners)), 1.0))
            for _try in range(100):  # a row sharing no label: rare to miss with more than one class
                other = int(rng.integers(len(labels)))
                if not label_sets[other] & names:
                    pairs.append((row, other, 0.0))
                    break
    first, second, similarity = zip(*pairs) if pairs else ((), (), ())
    return np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64), np.asarray(similarity, np.float32)


def check_rows_per_class(labels: LabelRows, label_names: Sequence[str], split: str = "train") -> None:
    """A `DataError` naming every class with fewer than 2 rows: a pair needs two rows of a class."""
    counts = class_counts(labels, len(label_names))
    few = {name: int(count) for name, count in zip(label_names, counts) if count < 2}
    if few:
        raise DataError(
            f"the setfit family needs at least 2 {split} rows of every class, found "
            f"{', '.join(f'{name!r} ({count})' for name, count in few.items())}; label more rows of "
            "them or drop those classes"
        )


class MeanPooledEncoder(nn.Module):
    """A transformers encoder read as sentence-transformers reads all-MiniLM-L6-v2: the mean of the last
    hidden states over the real tokens, L2-normalised."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body: Any = body  # a transformers `PreTrainedModel` (AutoModel)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (batch, seq, hidden)
        return mean_pooled(hidden, attention_mask)


class EndToEnd(nn.Module):
    """The encoder and a linear head: logits (batch, classes)."""

    def __init__(self, encoder: MeanPooledEncoder, head: nn.Linear) -> None:
        super().__init__()
        self.encoder: MeanPooledEncoder = encoder
        self.head: nn.Linear = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(input_ids, attention_mask))


class SetFitClassifier(Classifier):
    """A sentence encoder tuned on contrastive pairs, with a linear head on its embeddings."""

    family = "setfit"
    capabilities = frozenset({PREDICT, EXPLAIN, EXPORT_ONNX, MULTI_LABEL, SELF_TRAINING})
    no_option_reason = {
        "sampler": "pairs are drawn per row, each class's rows alike; ",
        "long_text": "an embedding reads the first --max-length tokens; ",
    }
    inference_precisions = ("fp32", "bf16")

    def __init__(
        self,
        encoder: MeanPooledEncoder,
        head: nn.Linear,
        tokenizer: Any,
        label_names: Sequence[str],
        max_length: int,
        multi_label: bool = False,
        precision: str = "fp32",
        head_kind: str = "logistic",
        self_training: dict[str, Any] | None = None,
    ) -> None:
        self.encoder, self.head, self.tokenizer = encoder, head, tokenizer
        self.self_training = self_training  # what `self_trained_head` did, kept in setfit.json
        self.label_names = list(label_names)
        self.max_length = max_length
        self.multi_label = multi_label
        self.precision = precision
        self.head_kind = head_kind
        self.reader = _Texts(tokenizer, max_length, precision)  # tokenises and embeds in `precision`

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def check_sources(cls, config: TrainConfig) -> None:
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
    ) -> tuple[SetFitClassifier, TrainSummary]:
        """Contrastive fine-tuning on pairs of `train` rows, then the head; dev scores the head each epoch."""
        from transformers import AutoModel, AutoTokenizer, set_seed

        # --time-budget bounds the whole fit: the contrastive phase, embedding unlabelled texts, the head phase
        deadline = None if config.time_budget is None else time.perf_counter() + 60.0 * config.time_budget
        check_training_options(cls, config, train.multi_label)
        check_rows_per_class(train.labels, label_names)
        # bad unlabelled text fails before the encoder trains
        unlabeled = read_unlabeled_texts(config.setfit_unlabeled) if config.setfit_unlabeled else None
        config = for_this_device(with_metric(config, train.labels, label_names))
        model_name = resolve_model(config.model)
        set_seed(config.seed)
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(model_name, trust_remote_code=config.trust_remote_code)
            body = AutoModel.from_pretrained(model_name, trust_remote_code=config.trust_remote_code)
        max_length = clamp_max_length(config.max_length, tokenizer, body.config)
        lr = config.lr or 2e-5  # the family's default fills --lr; the encoder's rate in every phase
        precision = resolve_precision(config.precision)
        if precision == "fp16":
            log.warning("fp16 needs loss scaling, which the loop does not do; training in fp32")
            precision = "fp32"
        encoder = MeanPooledEncoder(body).to(device())
        texts = _Texts(tokenizer, max_length)
        weights, _ = loss_weights(config, train.labels, label_names)

        def fit_head(model: MeanPooledEncoder) -> nn.Linear:
            embeddings = texts.embed(model, train.texts)
            return logistic_head(embeddings, train.labels, len(label_names), weights, config.seed, train.multi_label)

        def score(head_logits: np.ndarray) -> dict[str, float]:
            gold = targets(dev.labels, len(label_names), dev.multi_label)
            return headline_metrics(gold, predicted_labels(head_logits, train.multi_label))

        first, second, similarity = sample_pairs(train.labels, config.setfit_iterations or 1, config.seed)
        log.info(
            "setfit: %d pairs (%d similar) from %d rows, %s, max_length %d, precision %s",
            len(similarity),
            int(similarity.sum()),
            len(train),
            model_name,
            max_length,
            precision,
        )
        pair_texts = (train.texts, first, second, similarity)
        contrastive = _train(
            encoder,
            # each evaluation fits the logistic head on the train embeddings and scores it on dev
            _contrastive_hooks(
                texts, pair_texts, config, lambda model: score(texts.logits(model, fit_head(model), dev.texts))
            ),
            config,
            config.epochs,
            precision,
            checkpoint_dir / "contrastive",
            {"family": cls.family, "phase": "contrastive", "pairs": len(similarity), "model": model_name},
            optimizer=torch.optim.AdamW(encoder.parameters(), lr=lr, weight_decay=config.weight_decay),
        )
        self_training, embedded, cut = None, None, False
        if unlabeled is not None:
            log.info("setfit: embedding %d unlabelled texts for self-training", len(unlabeled))
            embedded = texts.embed_until(encoder, unlabeled, deadline)
            cut = len(embedded) < len(unlabeled)
            if cut:
                log.warning(
                    "setfit: the time budget of %.3g min ran out after embedding %d of %d unlabelled texts; %s",
                    config.time_budget,
                    len(embedded),
                    len(unlabeled),
                    "self-training on those" if len(embedded) else "no self-training",
                )
        if embedded is None or not len(embedded):
            head = fit_head(encoder)
        else:  # the self-training starts from the same logistic head, fitted once on these train embeddings
            head, self_training = self_trained_head(
                texts.embed(encoder, train.texts),
                train.labels,
                embedded,
                len(label_names),
                weights,
                config.seed,
                config.setfit_self_training_rounds or SELF_TRAINING_ROUNDS,
                dev_embeddings=texts.embed(encoder, dev.texts),
                score=lambda head_logits: score(head_logits)["accuracy"],
            )
        if self_training is not None and cut and unlabeled is not None:
            self_training["unlabeled_texts_read"] = len(unlabeled)
        results = [contrastive]
        if config.setfit_student_epochs and unlabeled is not None and embedded is not None and len(embedded):
            student_groups: list[dict[str, Any]] = [
                {"params": list(encoder.parameters())},
                {"params": list(head.parameters()), "lr_scale": STUDENT_HEAD_LR_SCALE},
            ]
            results.append(
                _train(
                    EndToEnd(encoder, head),
                    _head_hooks(
                        texts,
                        [*train.texts, *unlabeled[: len(embedded)]],
                        _student_targets(train.labels, head, embedded),
                        False,
                        weights,
                        config,
                        lambda model: score(texts.logits(model.encoder, model.head, dev.texts)),
                    ),
                    _within(config, deadline),
                    config.setfit_student_epochs,
                    precision,
                    checkpoint_dir / "student",
                    {"family": cls.family, "phase": "student", "model": model_name, "unlabeled": len(embedded)},
                    optimizer=torch.optim.AdamW(student_groups, lr=lr, weight_decay=config.weight_decay),
                )
            )
            if self_training is not None:
                self_training["student_epochs"] = config.setfit_student_epochs
        if config.setfit_head == "differentiable":
            end_to_end = EndToEnd(encoder, head)
            groups: list[dict[str, Any]] = [
                {"params": list(encoder.parameters()), "lr": lr},
                {"params": list(head.parameters()), "lr": HEAD_LR},
            ]
            optimizer = torch.optim.AdamW(
                groups,
                weight_decay=config.weight_decay,
            )
            results.append(
                _train(
                    end_to_end,
                    _head_hooks(
                        texts,
                        train.texts,
                        torch.from_numpy(np.asarray(targets(train.labels, len(label_names), train.multi_label))),
                        train.multi_label,
                        weights,
                        config,
                        lambda model: score(texts.logits(model.encoder, model.head, dev.texts)),
                    ),
                    _within(config, deadline),
                    HEAD_EPOCHS,
                    precision,
                    checkpoint_dir / "head",
                    {"family": cls.family, "phase": "head", "model": model_name},
                    optimizer=optimizer,
                    fixed_lr=True,
                )
            )
        history = [row for result in results for row in result.state.history]
        summary = TrainSummary(
            model=model_name if config.model is not None else EMBEDDED_MODEL_NAME,
            max_length=max_length,
            precision=precision,
            world_size=1,
            train_seconds=round(sum(result.seconds for result in results), 2),
            train_samples_per_second=results[0].samples_per_second,
            steady_samples_per_second=results[0].steady_samples_per_second,
            train_loss=results[-1].train_loss,
            global_step=sum(result.state.step for result in results),
            best_checkpoint_metric=results[-1].state.best_metric,
            stopped_by_time_budget=cut or any(result.stopped_by == "time_budget" for result in results),
            resumed_from=results[0].resumed_from,
            epochs=history,
        )
        encoder.eval()
        classifier = cls(
            encoder,
            head,
            tokenizer,
            label_names,
            max_length,
            train.multi_label,
            head_kind=config.setfit_head,
            self_training=self_training,
        )
        return classifier, summary

    # ---- inference ------------------------------------------------------------------------
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length sentence embeddings, (texts, hidden), in input order."""
        return self.reader.embed(self.encoder, texts, batch_size)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Class probabilities (multi-label: each label's sigmoid score), in input order."""
        if not len(texts):
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        logits = self.reader.logits(self.encoder, self.head, texts, batch_size)
        return probabilities(logits, self.multi_label)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.encoder.parameters()) + sum(p.numel() for p in self.head.parameters())

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        """The body's attention maps for `text`; `layer`/`head` pick the one whose [CLS] row is shown."""
        tokens, maps = self.attention_maps(check_text(text))
        probs = self.predict_proba([text])[0]
        return from_attention_maps(text, self.family, self.label_names, probs, tokens, maps, layer, head)

    @torch.inference_mode()
    def attention_maps(self, text: str) -> tuple[list[str], np.ndarray]:
        """Tokens and the body's attention maps (layers, heads, tokens, tokens) of one text."""
        body = self.encoder.body
        encoded = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt")
        target = next(body.parameters()).device
        kernel = getattr(body.config, "_attn_implementation", None)
        previous = kernel if kernel not in (None, "eager") else None  # only eager attention returns its weights
        if previous is not None:
            set_attention_implementation(body, "eager")
        try:
            output = body(**{k: v.to(target) for k, v in encoded.items()}, output_attentions=True)
        finally:
            if previous is not None:
                set_attention_implementation(body, previous)
        attentions = getattr(output, "attentions", None)
        if not attentions or any(a is None for a in attentions):
            raise TextclsError(
                f"expected attention maps from {type(body).__name__}, found none; this architecture does not "
                "return them (output_attentions=True); explain a BERT-like encoder or another family"
            )
        maps = torch.stack([a[0] for a in attentions]).float().cpu().numpy()  # (layers, heads, tokens, tokens)
        return list(self.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())), maps

    # ---- persistence ----------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        """The body and tokenizer as a Hugging Face folder, the head as safetensors, the rest as JSON."""
        from safetensors.torch import save_file

        model_dir.mkdir(parents=True, exist_ok=True)
        self.encoder.body.save_pretrained(model_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(model_dir)
        head = {name: tensor.detach().float().cpu().contiguous() for name, tensor in self.head.state_dict().items()}
        save_file(head, str(model_dir / HEAD_FILE))
        settings = {
            "label_names": self.label_names,
            "multi_label": self.multi_label,
            "head": self.head_kind,
            "pooling": "mean",
            "normalize": True,
        }
        if self.self_training is not None:
            settings["self_training"] = self.self_training
        write_text_atomic(model_dir / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")

    @classmethod
    def load(
        cls,
        model_dir: Path,
        max_length: int = 128,
        label_names: Sequence[str] | None = None,
        precision: str = "fp32",
        **_: Any,
    ) -> SetFitClassifier:
        """Rebuild from `save`'s folder; `precision` "bf16" (or "auto" where supported) embeds in bf16 autocast."""
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        model_dir = Path(model_dir)
        try:
            settings = json.loads((model_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            body = AutoModel.from_pretrained(model_dir, use_safetensors=True)
            state = load_file(str(model_dir / HEAD_FILE))
        except Exception as error:  # JSON, safetensors and tokenizer parsers each raise their own kind
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise damaged(model_dir, reason) from error
        classes, hidden = state["weight"].shape
        head = nn.Linear(hidden, classes)
        head.load_state_dict(state)
        names = list(label_names) if label_names is not None else list(settings["label_names"])
        if len(names) != classes:
            raise RunFolderError(
                f"expected {classes} label names for the head in {model_dir}, found {len(names)} ({names[:10]}); "
                "the run folder does not match its model: train again or restore the folder"
            )
        target = device()
        encoder = MeanPooledEncoder(body).to(target).eval()
        head.to(target).eval()
        return cls(
            encoder,
            head,
            tokenizer,
            names,
            max_length,
            bool(settings.get("multi_label", False)),
            inference_precision(precision),
            str(settings.get("head", "logistic")),
            settings.get("self_training"),
        )

    # ---- export ---------------------------------------------------------------------------
    def onnx_graph(self) -> tuple[nn.Module, list[str]]:
        """Body, mean pooling, normalisation and head in one module ((input_ids, attention_mask) -> logits),
        moved to the CPU, for `textcls.inference.onnx`; the body reads no token types (all zeros)."""
        self.encoder.to("cpu").eval()
        self.head.to("cpu").eval()
        set_attention_implementation(self.encoder.body, "eager")  # plain MatMul/Softmax: fused and quantised well
        return EndToEnd(self.encoder, self.head).eval(), ["input_ids", "attention_mask"]


class _Texts:
    """Tokenises texts into padded batches and runs them through an encoder (and head)."""

    def __init__(self, tokenizer: Any, max_length: int, precision: str = "fp32") -> None:
        self.tokenizer, self.max_length, self.precision = tokenizer, max_length, precision

    def batch(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    @torch.inference_mode()
    def embed(
        self, encoder: nn.Module, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """(texts, hidden) embeddings; batches of similar lengths, rows back in input order; a tqdm bar
        with `progress`."""
        from tqdm.auto import tqdm

        target = next(encoder.parameters()).device
        was_training = encoder.training
        encoder.eval()
        order = np.argsort([len(text) for text in texts], kind="stable")
        out = np.zeros((len(texts), 0), dtype=np.float32)
        parts = []
        try:
            starts = range(0, len(texts), batch_size)
            for start in tqdm(starts, desc="embedding", unit="batch", disable=not progress, leave=False):
                batch = self.batch([texts[i] for i in order[start : start + batch_size]])
                with torch.autocast(target.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    parts.append(encoder(**{k: v.to(target) for k, v in batch.items()}).float().cpu().numpy())
        finally:
            encoder.train(was_training)
        if parts:
            out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
            out[order] = np.concatenate(parts)
        return out

    def embed_until(
        self, encoder: nn.Module, texts: Sequence[str], deadline: float | None, chunk: int | None = None
    ) -> np.ndarray:
        """`embed` of `texts[:n]`, (n, hidden), with a progress bar: `chunk` texts (default `UNLABELED_CHUNK`)
        at a time, in order, starting none once `time.perf_counter()` is past `deadline` (None: all of them)."""
        from tqdm.auto import tqdm

        chunk = chunk or UNLABELED_CHUNK
        parts = []
        with tqdm(total=len(texts), desc="embedding unlabelled texts", unit="text", leave=False) as bar:
            for start in range(0, len(texts), chunk):
                if deadline is not None and time.perf_counter() >= deadline:
                    break
                parts.append(self.embed(encoder, texts[start : start + chunk]))
                bar.update(len(parts[-1]))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    @torch.inference_mode()
    def logits(self, encoder: nn.Module, head: nn.Linear, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(texts, classes) logits of `head` on the embeddings."""
        embeddings = torch.from_numpy(self.embed(encoder, texts, batch_size)).to(head.weight.device)
        return head(embeddings).float().cpu().numpy()


def logistic_head(
    embeddings: np.ndarray,
    labels: LabelRows,
    num_classes: int,
    class_weights: np.ndarray | None,
    seed: int,
    multi_label: bool = False,
) -> nn.Linear:
    """Logistic regression (scikit-learn) on the embeddings, as a linear layer: softmax over the classes,
    or for multi-label one binary regression per label (one-vs-rest) read through a sigmoid."""
    from sklearn.linear_model import LogisticRegression

    weight = np.zeros((num_classes, embeddings.shape[1]), dtype=np.float64)
    bias = np.zeros(num_classes, dtype=np.float64)
    weights = None if class_weights is None else {i: float(w) for i, w in enumerate(class_weights)}
    if multi_label:
        gold = targets(labels, num_classes, True)  # (rows, labels) 0/1
        for label in range(num_classes):
            column = gold[:, label].astype(np.int64)
            if column.min() == column.max():  # every row has it, or none: a constant score
                bias[label] = 10.0 if column[0] else -10.0
                continue
            model = LogisticRegression(max_iter=1000, random_state=seed).fit(embeddings, column)
            weight[label], bias[label] = model.coef_[0], model.intercept_[0]
    else:
        model = LogisticRegression(max_iter=1000, random_state=seed, class_weight=weights)
        model.fit(embeddings, np.asarray(labels, dtype=np.int64))
        if num_classes == 2:  # one row of coefficients: the logit of class 1 against class 0
            weight[1], bias[1] = model.coef_[0], model.intercept_[0]
        else:
            weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    head = nn.Linear(embeddings.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return head.to(device())


def self_trained_head(
    embeddings: np.ndarray,
    labels: LabelRows,
    unlabeled: np.ndarray,
    num_classes: int,
    class_weights: np.ndarray | None,
    seed: int,
    rounds: int,
    dev_embeddings: np.ndarray | None = None,
    score: Callable[[np.ndarray], float] | None = None,
) -> tuple[nn.Linear, dict[str, Any]]:
    """The logistic head self-trained on `unlabeled` embeddings by curriculum labelling: round r of
    `rounds` labels every unlabelled text with the last head and keeps, of the texts predicted as each
    class, the most confident r/rounds x (unlabelled texts) x (the class's share of the labelled rows),
    so a class the head over-predicts does not crowd out the others; then it fits a head on the
    labelled rows plus those. With
    `dev_embeddings` and `score` (dev logits -> a number), each round's head is scored and logged.
    Returns the last head and a record of the rounds (texts added per class, scores)."""
    head = logistic_head(embeddings, labels, num_classes, class_weights, seed)
    record: dict[str, Any] = {"unlabeled_texts": len(unlabeled), "rounds": []}

    def scored(model: nn.Linear) -> float | None:
        if dev_embeddings is None or score is None:
            return None
        with torch.no_grad():
            logits = model(torch.from_numpy(dev_embeddings).to(model.weight.device)).float().cpu().numpy()
        return round(float(score(logits)), 6)

    record["dev_before"] = scored(head)
    shares = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes) / len(labels)
    for number in range(1, rounds + 1):
        chances = head_probabilities(head, unlabeled).numpy()
        predicted = chances.argmax(axis=1)
        kept = []
        for label in range(num_classes):
            rows = np.flatnonzero(predicted == label)
            quota = math.ceil(len(unlabeled) * shares[label] * number / rounds)
            kept.append(rows[np.argsort(-chances[rows, label], kind="stable")[:quota]])
        chosen = np.concatenate(kept)
        head = logistic_head(
            np.concatenate([embeddings, unlabeled[chosen]]),
            [*labels, *(int(label) for label in predicted[chosen])],
            num_classes,
            class_weights,
            seed,
        )
        dev = scored(head)
        record["rounds"].append({"added_per_class": [len(rows) for rows in kept], "dev": dev})
        log.info(
            "setfit self-training round %d/%d: %d unlabelled texts added%s",
            number,
            rounds,
            len(chosen),
            "" if dev is None else f", dev {dev:.4f}",
        )
    return head, record


def _within(config: TrainConfig, deadline: float | None) -> TrainConfig:
    """`config` with the minutes left before `deadline` as its time budget (at least a second's worth: a
    phase that starts at the deadline still runs one step and is evaluated)."""
    if deadline is None:
        return config
    return dataclasses.replace(config, time_budget=max(1 / 60, (deadline - time.perf_counter()) / 60.0))


def _train(
    model: nn.Module,
    hooks: LoopHooks[Any, EpochRow],
    config: TrainConfig,
    epochs: float,
    precision: str,
    checkpoint_dir: Path,
    identity: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    fixed_lr: bool = False,
) -> LoopResult[EpochRow]:
    settings = LoopSettings(
        epochs=epochs,
        seed=config.seed,
        metric=config.metric or "accuracy",
        identity=identity,
        unit="step",
        peak_lr=None if fixed_lr else config.lr,
        warmup_ratio=config.warmup_ratio,
        early_stopping_patience=config.early_stopping_patience,
        time_budget=config.time_budget,
        resume=config.resume,
        bf16_autocast=precision == "bf16",
        compile=config.compile,
        logging_steps=config.logging_steps,
        max_grad_norm=MAX_GRAD_NORM,
    )
    return run_loop(model, optimizer, hooks, settings, checkpoint_dir)


def _batches(rows: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """Shuffled batches of row indices, a function of the seed."""
    order = np.random.default_rng(seed).permutation(rows)
    return [order[start : start + batch_size] for start in range(0, rows, batch_size)]


def _contrastive_hooks(
    texts: _Texts,
    pairs: tuple[list[str], np.ndarray, np.ndarray, np.ndarray],
    config: TrainConfig,
    evaluate: Any,
) -> LoopHooks[dict[str, torch.Tensor], EpochRow]:
    """SetFit's CosineSimilarityLoss over batches of pairs."""
    train_texts, first, second, similarity = pairs
    batch_size = config.batch_size or 16

    def load(batches: Sequence[np.ndarray]) -> Iterator[dict[str, torch.Tensor]]:
        for rows in batches:
            # both sides of every pair in one forward pass: (2 x pairs) texts
            batch = texts.batch([train_texts[i] for i in np.concatenate([first[rows], second[rows]])])
            yield {**batch, "similarity": torch.from_numpy(similarity[rows])}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target = next(model.parameters()).device
        embeddings = model(batch["input_ids"].to(target), batch["attention_mask"].to(target))  # (2 x pairs, hidden)
        left, right = embeddings.float().chunk(2)
        cosine = (left * right).sum(-1)  # unit vectors: the dot product is the cosine
        return nn.functional.mse_loss(cosine, batch["similarity"].to(target))

    steps = -(-len(similarity) // batch_size)
    return LoopHooks(
        steps_per_epoch=steps,
        plan=lambda epoch: _batches(len(similarity), batch_size, config.seed + epoch),
        load=load,
        loss=loss,
        evaluate=evaluate,
        epoch_row=_epoch_row,
    )


def head_probabilities(head: nn.Linear, embeddings: np.ndarray) -> torch.Tensor:
    """(rows, classes) float32 on the CPU: `head`'s softmax over the classes of the `embeddings`."""
    pool = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    with torch.no_grad():
        return torch.softmax(head(pool.to(head.weight.device)).float(), dim=-1).cpu()


def _student_targets(labels: LabelRows, head: nn.Linear, unlabeled: np.ndarray) -> torch.Tensor:
    """(labelled + unlabelled rows, classes) float32: the labels one-hot, then `head`'s class probabilities of
    the `unlabeled` embeddings."""
    soft = head_probabilities(head, unlabeled)
    hard = nn.functional.one_hot(torch.as_tensor(np.asarray(labels, dtype=np.int64)), soft.shape[1]).float()
    return torch.cat([hard, soft])


def _head_hooks(
    texts: _Texts,
    row_texts: Sequence[str],
    gold: torch.Tensor,
    multi_label: bool,
    class_weights: np.ndarray | None,
    config: TrainConfig,
    evaluate: Any,
) -> LoopHooks[dict[str, torch.Tensor], EpochRow]:
    """Cross-entropy of the end-to-end model over `row_texts` towards `gold`: class indices, or (rows,
    classes) probabilities; multi-label: binary cross-entropy per label of (rows, labels) 0/1."""
    batch_size = config.batch_size or 16

    def load(batches: Sequence[np.ndarray]) -> Iterator[dict[str, torch.Tensor]]:
        for rows in batches:
            yield {**texts.batch([row_texts[i] for i in rows]), "labels": gold[torch.from_numpy(rows)]}

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target = next(model.parameters()).device
        logits = model(batch["input_ids"].to(target), batch["attention_mask"].to(target)).float()
        labels = batch["labels"].to(target)
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32, device=target)
        if multi_label:
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
        return nn.functional.cross_entropy(logits, labels, weight=weight)

    return LoopHooks(
        steps_per_epoch=-(-len(row_texts) // batch_size),
        plan=lambda epoch: _batches(len(row_texts), batch_size, config.seed + epoch),
        load=load,
        loss=loss,
        evaluate=evaluate,
        epoch_row=_epoch_row,
    )


def _epoch_row(end: EpochEnd, dev: Mapping[str, float]) -> EpochRow:
    row = EpochRow(
        epoch=end.epoch,
        step=end.step,
        train_loss=end.train_loss,
        dev_loss=None,
        dev_accuracy=dev["accuracy"],
        dev_macro_f1=dev.get("macro_f1"),
    )
    log.info(
        "epoch %.2f (step %d): train loss %s, dev accuracy %.4f",
        end.epoch,
        end.step,
        f"{end.train_loss:.4f}" if end.train_loss is not None else "-",
        dev["accuracy"],
    )
    return row
