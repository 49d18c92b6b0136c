"""Imbalanced labels: class weights, balanced sampling, the metric that picks the best epoch, small dev classes."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from textcls.config import TrainConfig
from textcls.data.imbalance import class_weights, default_metric, sampling_weights, small_classes, with_metric
from textcls.data.loading import Split
from textcls.errors import ConfigError, DataError
from textcls.reporting.metrics import classification_metrics
from textcls.training.loaders import EpochBatches
from textcls.training.objectives import Objective

NAMES = ["World", "Sports", "Business", "Sci/Tech"]
SKEWED = [0] * 40 + [1] * 40 + [2] * 40 + [3] * 4  # Sci/Tech kept at about 3%


def test_balanced_weights_are_rows_over_classes_times_the_class_rows():
    weights = class_weights("balanced", SKEWED, NAMES)
    assert weights == pytest.approx([124 / (4 * 40)] * 3 + [124 / (4 * 4)])
    assert class_weights("none", SKEWED, NAMES) is None


def test_json_weights_name_labels_inline_or_in_a_file_and_the_rest_weigh_one(tmp_path):
    assert class_weights('{"Sci/Tech": 5}', SKEWED, NAMES).tolist() == [1, 1, 1, 5]
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"Sports": 2.5}))
    assert class_weights(str(path), SKEWED, NAMES).tolist() == [1, 2.5, 1, 1]


def test_an_unknown_label_in_the_weights_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"Sprots": 2}))
    with pytest.raises(DataError, match=r"weights\.json, field 'Sprots': unknown label \(did you mean 'Sports'\?\)"):
        class_weights(str(path), SKEWED, NAMES)
    with pytest.raises(DataError, match=r"^--class-weights, field 'Spam': unknown label"):
        class_weights('{"Spam": 2}', SKEWED, NAMES)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", r"weights\.json: expected a JSON object .* found invalid JSON"),
        ("[1, 2]", r"weights\.json: expected a JSON object of label name -> weight, found list"),
        ('{"Sports": -1}', r"weights\.json, field 'Sports': expected a positive number, found -1"),
    ],
)
def test_a_bad_weights_file_is_an_error_naming_it(tmp_path, content, message):
    path = tmp_path / "weights.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        class_weights(str(path), SKEWED, NAMES)


@pytest.mark.parametrize(
    "value, message",
    [
        ("heavy", r"^class_weights: expected none, balanced or a JSON object, found 'heavy'"),
        ('{"Sports": "x"}', r"^class_weights, field 'Sports': expected a positive number, found 'x'"),
        ("[3]", r"^class_weights: expected a JSON object of label name -> weight"),
    ],
)
def test_bad_class_weights_options_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(class_weights=value)


def test_bad_sampler_and_metric_are_config_errors():
    with pytest.raises(ConfigError, match=r"^sampler: expected one of \('none', 'balanced'\)"):
        TrainConfig(sampler="oversample")
    with pytest.raises(ConfigError, match=r"^metric: expected one of \('accuracy', 'macro_f1'"):
        TrainConfig(metric="f1")


def test_the_metric_defaults_to_macro_f1_for_skewed_labels_and_accuracy_otherwise(caplog):
    assert default_metric(SKEWED, 4) == "macro_f1" and default_metric([0, 1, 2, 3] * 10, 4) == "accuracy"
    with caplog.at_level("INFO", logger="textcls.data"):
        assert with_metric(TrainConfig(), SKEWED, NAMES).metric == "macro_f1"
    assert "best epoch and early stopping by dev macro_f1 (--metric): the train labels are skewed" in caplog.text
    assert "Sci/Tech 3.2%" in caplog.text
    assert with_metric(TrainConfig(metric="accuracy"), SKEWED, NAMES).metric == "accuracy"


def test_the_balanced_sampler_draws_every_class_about_equally_often():
    labels = np.array(SKEWED * 10)
    config = TrainConfig(family="lstm", batch_size=31, max_length=32)
    epochs = EpochBatches(np.full(len(labels), 20), config, sampling_weights(labels, 4))
    counts = [Counter(labels[np.concatenate(epochs.plan(epoch))].tolist()) for epoch in range(2)]
    for count in counts:
        assert sum(count.values()) == len(labels)
        assert min(count.values()) > 0.8 * len(labels) / 4  # Sci/Tech would be 3% unweighted
    assert counts[0] != counts[1]  # each epoch draws again
    assert len(epochs.plan(1)) == len(epochs) == len(epochs.plan(0))


def test_the_weighted_loss_counts_a_minority_mistake_more():
    logits = torch.tensor([[3.0, 0.0], [3.0, 0.0]])  # both say class 0
    labels = torch.tensor([0, 1])
    plain = Objective.of(None).loss(logits, labels)
    weighted = Objective.of(np.array([1.0, 9.0])).loss(logits, labels)
    assert weighted > plain


def test_metrics_show_every_class_recall_and_the_lowest_one():
    probs = np.eye(4)[[0, 0, 1, 2, 3, 0]]  # the last Sci/Tech row is called World
    metrics = classification_metrics([0, 0, 1, 2, 3, 3], probs, NAMES)
    assert metrics["per_class_recall"] == {"World": 1.0, "Sports": 1.0, "Business": 1.0, "Sci/Tech": 0.5}
    assert metrics["lowest_recall"] == {"label": "Sci/Tech", "recall": 0.5}
    assert {"accuracy", "macro_f1", "balanced_accuracy", "weighted_f1"} <= set(metrics)


def test_small_dev_classes_are_named_with_their_rows():
    assert small_classes([0] * 25 + [1] * 3, ["a", "b", "c"]) == {"b": 3, "c": 0}


def split(name: str, labels: list[int], seed: int) -> Split:
    from tests.conftest import make_texts

    rows = make_texts(4 * len(labels), seed)
    by_class = {k: [f"{t} {d}" for label, t, d in rows if label == k] for k in range(4)}
    texts = [by_class[label].pop() for label in labels]
    return Split(name, texts, labels, f"generated:{name}")


def test_tfidf_weighs_its_classes_and_refuses_what_it_cannot_do(tmp_path):
    from textcls.models.linear import TfidfClassifier

    train, dev = split("train", SKEWED, 1), split("dev", [0, 1, 2, 3] * 5, 2)
    plain, _ = TfidfClassifier.fit(train, dev, NAMES, TrainConfig(family="tfidf"), tmp_path)
    weighted, summary = TfidfClassifier.fit(
        train, dev, NAMES, TrainConfig(family="tfidf", class_weights="balanced"), tmp_path
    )
    # the minority class's intercept rises when its rows weigh ten times more
    assert weighted.intercept[3] - weighted.intercept[:3].mean() > plain.intercept[3] - plain.intercept[:3].mean()
    assert summary["best_checkpoint_metric"] == summary["epochs"][0]["dev_macro_f1"]  # skewed: macro-F1 chosen
    with pytest.raises(ConfigError, match=r"^sampler: the tfidf family does not support --sampler balanced \(lbfgs"):
        TfidfClassifier.fit(train, dev, NAMES, TrainConfig(family="tfidf", sampler="balanced"), tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"^long_text: the tfidf family does not support --long-text chunk .*families "
        r"that do: lstm, lstm-attention, scratch-transformer, pretrained",
    ):
        TfidfClassifier.fit(train, dev, NAMES, TrainConfig(family="tfidf", long_text="chunk"), tmp_path)
