"""TF-IDF word and character n-grams with a multinomial logistic regression: the fast, strong baseline.

Features are word 1-2-grams and character 2-5-grams (`char_wb`, so n-grams stay inside words and
catch spelling variants and word pieces), both with sublinear tf and l2 norm, side by side in one
sparse matrix. On AG News it fits in about a minute on a small CPU, a strong dev accuracy for its cost
(`textcls compare` measures it beside the other families).

With `--multi-label` it fits one binary logistic regression per label on the same features
(one-vs-rest), and a label's score is its own sigmoid.

Saved without pickle, so loading a run never runs code from the folder: `tfidf.json` holds the
vectorizer settings, the vocabularies and the label names; `weights.npz` (read with
`allow_pickle=False`) holds the idf vectors, coefficients, intercepts and class indices.

Example:
    >>> clf, summary = TfidfClassifier.fit(train, dev, label_names, TrainConfig(family="tfidf"), tmp)  # doctest: +SKIP
    >>> clf.predict(["Stocks fell sharply."])                                                          # doctest: +SKIP
    ['Business']
    >>> clf.top_ngrams("Stocks fell sharply.", k=2)                                                    # doctest: +SKIP
    [('stocks', 1.93), ('stoc', 0.41)]
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from textcls.config import TrainConfig
from textcls.data.imbalance import loss_weights, with_metric
from textcls.data.loading import Split
from textcls.data.multilabel import multi_hot
from textcls.errors import RunFolderError, TextclsError
from textcls.models.base import (
    EXPLAIN,
    MULTI_LABEL,
    PREDICT,
    Classifier,
    EpochRow,
    TrainSummary,
    check_training_options,
)
from textcls.reporting.explanations import Explanation, check_text, from_token_weights
from textcls.reporting.metrics import headline_metrics
from textcls.runfolder import RUN_FILE, damaged

log = logging.getLogger(__name__)

SETTINGS_FILE = "tfidf.json"
WEIGHTS_FILE = "weights.npz"
FORMAT_VERSION = 1

# min_df drops one-off n-grams (typos, ids) and max_features caps memory: on AG News the word
# vocabulary is cut to 200k and the char one stays below it (~140k), about 28M non-zeros in float32.
FEATURES: dict[str, dict[str, Any]] = {
    "word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 2, "max_features": 200_000},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 3, "max_features": 200_000},
}
SMALL_DATA_ROWS = 1_000  # below this, min_df would prune most of the vocabulary; keep every n-gram
# Inverse L2 strength, tuned on AG News dev: C 5 / 10 / 20 gave 0.912 / 0.913 / 0.912.
REGULARISATION_C = 10.0
MAX_ITERATIONS = 300  # lbfgs converges in ~100 on AG News
EXPLAIN_TOP_K = 15  # n-grams an explanation shows
PREDICT_CHUNK_ROWS = 4_096  # rows vectorised at once: bounds memory, results do not depend on it
# Everything `transform` depends on is saved, so a run keeps its features if these defaults change.
SAVED_PARAMS = (
    "analyzer",
    "ngram_range",
    "min_df",
    "max_features",
    "lowercase",
    "strip_accents",
    "token_pattern",
    "binary",
    "norm",
    "use_idf",
    "smooth_idf",
    "sublinear_tf",
)


def _vectorizer(settings: dict[str, Any], vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    # sublinear tf (1 + log tf) keeps a word repeated in title and description from dominating
    settings = {"lowercase": True, "sublinear_tf": True, **settings}
    return TfidfVectorizer(**settings, dtype=np.float32, vocabulary=vocabulary)


def _log_loss(probs: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Mean cross-entropy of the gold class, or for multi-hot `labels` (rows, labels) the mean binary one."""
    gold = np.asarray(labels)
    if gold.ndim == 2:
        p = np.clip(probs.astype(np.float64), 1e-15, 1 - 1e-15)  # float32 would round 1 - 1e-15 up to 1
        return float(-np.mean(gold * np.log(p) + (1 - gold) * np.log(1 - p)))
    picked = probs[np.arange(len(gold)), gold]  # (rows,) probability of the gold class
    return float(-np.mean(np.log(np.clip(picked, 1e-15, None))))


def _one_vs_rest(features: Any, gold: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(coef (labels, features), intercept (labels,), most lbfgs iterations) of one binary logistic regression
    per column of `gold` (rows, labels) 0/1. A label every row has, or none has, gets no weights and the
    log-odds of its (clipped) train share as intercept: there is nothing to separate."""
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((gold.shape[1], features.shape[1]), dtype=np.float64)
    intercept = np.zeros(gold.shape[1], dtype=np.float64)
    iterations = 0
    for label in range(gold.shape[1]):
        column = gold[:, label]
        if column.min() == column.max():
            share = np.clip(column.mean(), 1e-3, 1 - 1e-3)
            intercept[label] = np.log(share / (1 - share))
            continue
        model = LogisticRegression(C=REGULARISATION_C, solver="lbfgs", max_iter=MAX_ITERATIONS, random_state=seed)
        model.fit(features, column.astype(np.int64))
        coef[label], intercept[label] = model.coef_[0], model.intercept_[0]
        iterations = max(iterations, int(np.max(model.n_iter_)))
    return coef, intercept, iterations


class TfidfClassifier(Classifier):
    """Fitted TF-IDF vectorizers and the linear weights over their concatenated features."""

    family = "tfidf"
    capabilities = frozenset({PREDICT, EXPLAIN, MULTI_LABEL})
    no_option_reason = {
        "sampler": "lbfgs sees every row at once, so there are no batches to draw; --class-weights balanced "
        "weighs the rows instead; ",
        "long_text": "it reads every word of a text, never a window of tokens; ",
    }
    max_length: int | None = None  # texts are never truncated; kept for the run folder's `max_length`

    def __init__(
        self,
        vectorizers: dict[str, TfidfVectorizer],
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: np.ndarray,
        label_names: Sequence[str],
        multi_label: bool = False,
    ):
        self.multi_label = multi_label  # one-vs-rest: a row of `coef` per label, each scored by its own sigmoid
        self.vectorizers = vectorizers
        self.coef = coef  # (fitted classes, features); a single row for a binary problem
        self.intercept = intercept  # (fitted classes,)
        self.classes = classes  # label index of each fitted class: train may lack some labels
        self.label_names = list(label_names)

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        train: Split,
        dev: Split,
        label_names: Sequence[str],
        config: TrainConfig,
        checkpoint_dir: Path,
    ) -> tuple[TfidfClassifier, TrainSummary]:
        """Fit the vectorizers and the regression on `train`, score on `dev`; returns the model and a summary.

        One pass, nothing to resume, so `checkpoint_dir` stays unused.
        """
        from sklearn.linear_model import LogisticRegression

        check_training_options(cls, config, train.multi_label)
        if len(set(train.labels)) < 2:
            # names, not indices; a multi-label row's set reads as its cell would ("World|Sports")
            found = [
                "|".join(label_names[i] for i in label) if isinstance(label, tuple) else label_names[label]
                for label in sorted(set(train.labels))
            ]
            raise TextclsError(
                f"{train.source}: expected at least 2 classes in the training rows, found only {found}; "
                "use more data or another split"
            )
        config = with_metric(config, train.labels, label_names)
        weights, _ = loss_weights(config, train.labels, label_names)
        started = time.perf_counter()
        vectorizers, blocks = {}, []
        for name, settings in FEATURES.items():
            if len(train) < SMALL_DATA_ROWS:
                settings = {**settings, "min_df": 1}
            vectorizer = _vectorizer(settings)
            try:
                blocks.append(vectorizer.fit_transform(train.texts))
            except ValueError as error:  # scikit-learn: "empty vocabulary" (emoji, one-letter texts have no words)
                if "empty vocabulary" not in str(error):
                    raise
                log.warning("%s n-grams: none in the training texts; the model reads the other features only", name)
                continue
            vectorizers[name] = vectorizer
            log.info("%s n-grams: %d features (%.1f s)", name, blocks[-1].shape[1], time.perf_counter() - started)
        if not blocks:
            raise TextclsError(
                f"{train.source}: expected text in the training rows, found no word or character n-grams; "
                "check --text-column"
            )
        features = sp.hstack(blocks, format="csr")  # (rows, word + char features)

        kind = "one binary logistic regression per label" if train.multi_label else "logistic regression"
        log.info("%s on %d rows x %d features (C=%g)", kind, *features.shape, REGULARISATION_C)
        train_labels: Any = train.labels
        if train.multi_label:
            train_labels = multi_hot(train.labels, len(label_names))
            coef, intercept, iterations = _one_vs_rest(features, train_labels, config.seed)
            classes = np.arange(len(label_names), dtype=np.int64)
        else:
            # lbfgs over the full softmax: calibrated probabilities and deterministic; float32 input halves memory.
            class_weight = (
                None if weights is None else {label: float(weights[label]) for label in sorted(set(train.labels))}
            )
            model = LogisticRegression(
                C=REGULARISATION_C,
                solver="lbfgs",
                max_iter=MAX_ITERATIONS,
                random_state=config.seed,
                class_weight=class_weight,
            )
            model.fit(features, train.labels)
            coef, intercept, classes = model.coef_, model.intercept_, model.classes_.astype(np.int64)
            iterations = int(np.max(model.n_iter_))
        train_seconds = time.perf_counter() - started
        if iterations >= MAX_ITERATIONS:
            log.warning("logistic regression stopped at %d iterations before converging", iterations)
        log.info("fitted in %.1f s (%d lbfgs iterations)", train_seconds, iterations)

        classifier = cls(vectorizers, coef, intercept, classes, label_names, train.multi_label)
        train_loss = _log_loss(classifier._probabilities(features), train_labels)
        dev_probs = classifier.predict_proba(dev.texts)
        dev_labels: Any = multi_hot(dev.labels, len(label_names)) if dev.multi_label else dev.labels
        dev_predictions = (dev_probs >= 0.5).astype(np.int64) if train.multi_label else dev_probs.argmax(axis=1)
        dev_scores = headline_metrics(dev_labels, dev_predictions)
        summary = TrainSummary(
            model="tfidf word 1-2 + char_wb 2-5, logistic regression",
            max_length=None,
            precision="fp32",
            world_size=1,
            train_seconds=round(train_seconds, 2),
            train_samples_per_second=round(len(train) / train_seconds, 2),
            train_loss=train_loss,
            global_step=iterations,
            best_checkpoint_metric=dev_scores[config.metric] if config.metric else None,  # with_metric chose it
            stopped_by_time_budget=False,
            resumed_from=None,
            epochs=[
                EpochRow(
                    epoch=1.0,
                    step=iterations,
                    train_loss=train_loss,
                    dev_loss=_log_loss(dev_probs, dev_labels),
                    dev_accuracy=dev_scores["accuracy"],
                    dev_macro_f1=dev_scores["macro_f1"],
                )
            ],
        )
        return classifier, summary

    # ---- inference ------------------------------------------------------------------------
    def _features(self, texts: Sequence[str]) -> Any:
        return sp.hstack([v.transform(texts) for v in self.vectorizers.values()], format="csr")

    def _probabilities(self, features: Any) -> np.ndarray:
        """Softmax of the linear scores, one column per label name (0 for labels absent from train); multi-label:
        each label's sigmoid."""
        logits = np.asarray(features @ self.coef.T, dtype=np.float64) + self.intercept  # (rows, fitted classes)
        if self.multi_label:
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        if logits.shape[1] == 1:  # binary: P(classes[1]) = sigmoid(z) = softmax([0, z])
            logits = np.hstack([np.zeros_like(logits), logits])
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probs = np.zeros((logits.shape[0], len(self.label_names)), dtype=np.float32)
        probs[:, self.classes] = exp / exp.sum(axis=1, keepdims=True)
        return probs

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(label_names)), rows in input order.

        `batch_size` is accepted for the common interface; rows go through in large chunks instead.
        """
        from tqdm.auto import tqdm

        texts = list(texts)
        probs = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        starts = range(0, len(texts), PREDICT_CHUNK_ROWS)
        for start in tqdm(starts, desc="predicting", unit="chunk", disable=not progress, leave=False):
            chunk = texts[start : start + PREDICT_CHUNK_ROWS]
            probs[start : start + len(chunk)] = self._probabilities(self._features(chunk))
        return probs

    def top_ngrams(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """The text's n-grams that push hardest towards its predicted label: tf-idf value x coefficient."""
        features = self._features([text])
        row = int(np.argmax(self._probabilities(features)[0]))
        fitted = np.flatnonzero(self.classes == row)
        if (
            self.coef.shape[0] == 1 and not self.multi_label
        ):  # binary: the single row scores classes[1]; classes[0] gets its negative
            weights = self.coef[0] * (1.0 if fitted[0] == 1 else -1.0)
        else:
            weights = self.coef[fitted[0]]
        if not hasattr(self, "_terms"):  # column -> n-gram, built on first use
            self._terms = [
                term for v in self.vectorizers.values() for term in sorted(v.vocabulary_, key=v.vocabulary_.get)
            ]
        columns = features.indices  # non-zero columns of the single row
        contributions = features.data * weights[columns]
        best = np.argsort(-contributions, kind="stable")[:k]
        return [(self._terms[columns[i]], round(float(contributions[i]), 4)) for i in best]

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        """The n-grams of `text` that push hardest towards its predicted label, with raw contribution scores."""
        ngrams = self.top_ngrams(check_text(text), k=EXPLAIN_TOP_K)
        return from_token_weights(
            text,
            self.family,
            self.label_names,
            self.predict_proba([text]),
            [term for term, _ in ngrams],
            [score for _, score in ngrams],
            features=True,
        )

    def num_parameters(self) -> int:
        return int(self.coef.size + self.intercept.size)

    # ---- persistence ----------------------------------------------------------------------
    def save(self, model_dir: Path) -> None:
        """Write `tfidf.json` (settings, vocabularies, label names) and `weights.npz` (plain arrays)."""
        model_dir.mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "label_names": self.label_names,
            "multi_label": self.multi_label,
            "features": {},
        }
        arrays = {"coef": self.coef, "intercept": self.intercept, "classes": self.classes}
        for name, vectorizer in self.vectorizers.items():
            settings["features"][name] = {
                "params": {key: vectorizer.get_params()[key] for key in SAVED_PARAMS},
                # column i is terms[i]: a list is smaller than the term -> index mapping
                "terms": sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get),
            }
            arrays[f"idf_{name}"] = vectorizer.idf_
        (model_dir / SETTINGS_FILE).write_text(json.dumps(settings, ensure_ascii=False), encoding="utf-8")
        np.savez(model_dir / WEIGHTS_FILE, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle

    @classmethod
    def load(
        cls, model_dir: Path, max_length: int | None = None, label_names: Sequence[str] | None = None, **_: Any
    ) -> TfidfClassifier:
        """Rebuild from `save`'s files; the vectorizers get their vocabulary and idf, nothing is refitted."""
        missing = [name for name in (SETTINGS_FILE, WEIGHTS_FILE) if not (model_dir / name).is_file()]
        if missing:
            raise RunFolderError(
                f"{model_dir}: expected {missing} written by the tfidf family, found none; train again"
            )
        try:
            settings = json.loads((model_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
        except ValueError as error:
            raise damaged(model_dir / SETTINGS_FILE, error) from error
        if settings.get("format_version", 0) > FORMAT_VERSION:
            raise RunFolderError(
                f"{model_dir / SETTINGS_FILE} has format_version {settings['format_version']}, this textcls reads up "
                f"to {FORMAT_VERSION}; upgrade textcls"
            )
        try:
            with np.load(model_dir / WEIGHTS_FILE, allow_pickle=False) as weights:
                arrays = {key: weights[key] for key in weights.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # a cut or altered archive
            raise damaged(model_dir / WEIGHTS_FILE, error) from error
        vectorizers = {}
        for name, saved in settings["features"].items():
            params = {**saved["params"], "ngram_range": tuple(saved["params"]["ngram_range"])}
            vectorizer = _vectorizer(params, vocabulary={term: i for i, term in enumerate(saved["terms"])})
            vectorizer.idf_ = arrays[f"idf_{name}"]  # the setter also builds the fitted TfidfTransformer
            vectorizers[name] = vectorizer
        names = list(label_names) if label_names is not None else settings["label_names"]
        outputs = len(settings.get("label_names") or names)
        classes = np.asarray(arrays.get("classes", []))
        if len(names) != outputs or (classes.size and int(classes.max()) >= len(names)):
            raise RunFolderError(
                f"expected {outputs} label names for the model in {model_dir} (it was trained on {outputs} classes), "
                f"found {len(names)} ({names[:10]}); the run folder's {RUN_FILE} does not match its model: train "
                "again or restore the folder"
            )
        return cls(
            vectorizers,
            arrays["coef"],
            arrays["intercept"],
            arrays["classes"],
            names,
            bool(settings.get("multi_label")),
        )
