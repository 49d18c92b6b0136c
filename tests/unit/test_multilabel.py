"""Multi-label pieces on generated data: label cells, the loss, thresholds, metrics, records, families."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import TOPIC_WORDS, make_multilabel_rows, write_multilabel_folder
from textcls.config import DataConfig, PredictConfig, TrainConfig
from textcls.data.loading import Split, load_data
from textcls.data.multilabel import decide, multi_hot, run_thresholds, tune_thresholds
from textcls.errors import ConfigError, DataError
from textcls.inference.predictions import prediction_records
from textcls.models.base import check_training_options
from textcls.models.linear import TfidfClassifier
from textcls.models.rnn import LSTMClassifier
from textcls.reporting.metrics import headline_metrics, multilabel_metrics
from textcls.training.objectives import Objective, probabilities

LABELS = list(TOPIC_WORDS)


def write(folder, name: str, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    (folder / "classes.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return folder / name


# ---- reading label cells ------------------------------------------------------------------------
def test_a_csv_cell_of_several_names_becomes_a_sorted_tuple_of_indices(tmp_path):
    train = write(
        tmp_path, "train.csv", "label,text\nSports|World,a\n Business | Sci/Tech ,b\nWorld,c\nSports|Sports,d\n"
    )
    data = load_data(DataConfig(train_file=str(train), multi_label=True), splits=("train",))
    assert data.multi_label and data.splits["train"].multi_label
    assert data.splits["train"].labels == [(0, 1), (2, 3), (0,), (1,)]  # repeats dropped, label order


def test_label_separator_and_jsonl_lists(tmp_path):
    train = write(tmp_path / "semi", "train.csv", "label,text\nSports;World,a\nBusiness,b\n")
    data = load_data(DataConfig(train_file=str(train), multi_label=True, label_separator=";"), splits=("train",))
    assert data.splits["train"].labels == [(0, 1), (2,)]
    lines = [
        {"label": ["Sci/Tech", "World"], "text": "a"},
        {"label": "Sports|Business", "text": "b"},
        {"label": [1], "text": "c"},
    ]
    train = write(tmp_path / "jsonl", "train.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    data = load_data(DataConfig(train_file=str(train), multi_label=True), splits=("train",))
    assert data.splits["train"].labels == [(0, 3), (1, 2), (1,)]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("World|Sprots", "row 2 (line 3), field 'label': unknown label 'Sprots' (did you mean 'Sports'?)"),
        ("World||Sports", "row 2 (line 3), field 'label': empty label name at position 2 of the multi-label cell"),
        ('""', "row 2 (line 3), field 'label': empty label"),
        ("|", "row 2 (line 3), field 'label': empty label name at position 1"),
    ],
)
def test_a_bad_multi_label_cell_names_file_row_and_field(tmp_path, cell, expected):
    train = write(tmp_path, "train.csv", f"label,text\nWorld|Sports,a\n{cell},b\n")
    with pytest.raises(DataError) as error:
        load_data(DataConfig(train_file=str(train), multi_label=True), splits=("train",))
    assert str(error.value).startswith(f"{train}, {expected}")
    if "Sprots" in cell:
        assert "in the multi-label cell 'World|Sprots'" in str(error.value)


def test_a_bad_jsonl_list_names_the_row(tmp_path):
    lines = [
        {"label": ["World"], "text": "a"},
        {"label": [], "text": "b"},
        {"label": ["World", {"x": 1}], "text": "c"},
        {"label": ["Sports"], "text": "d"},
    ]
    train = write(tmp_path, "train.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError, match=r"train.jsonl, row 2 \(line 2\), field 'label': empty label"):
        load_data(DataConfig(train_file=str(train), multi_label=True), splits=("train",))
    data = load_data(DataConfig(train_file=str(train), multi_label=True, skip_bad_rows=True), splits=("train",))
    assert data.splits["train"].labels == [(0,), (1,)] and data.skipped_rows == 2


def test_without_multi_label_a_joined_cell_says_which_flag_reads_it(tmp_path):
    train = write(tmp_path, "train.csv", "label,text\nWorld|Sports,a\nBusiness,b\n")
    with pytest.raises(DataError, match="needs --multi-label"):
        load_data(DataConfig(train_file=str(train)), splits=("train",))


def test_a_dev_label_train_lacks_is_named(tmp_path):
    folder = tmp_path / "data"
    write(folder, "train.csv", "label,text\nWorld|Sports,a\nWorld,b\n")
    (folder / "classes.txt").unlink()
    write(folder, "dev.csv", "label,text\nWorld|Business,c\n")
    (folder / "classes.txt").unlink()
    with pytest.raises(
        DataError,
        match=r"dev.csv, row 1 \(line 2\), field 'label': expected a label that train has .* found 'Business'",
    ):
        load_data(DataConfig(data=str(folder), multi_label=True))


def test_a_carved_dev_split_keeps_multi_label_rows(tmp_path):
    folder = write_multilabel_folder(tmp_path / "data", n_train=90, n_dev=0)
    (folder / "dev.csv").unlink(missing_ok=True)
    data = load_data(DataConfig(data=str(folder), multi_label=True, dev_fraction=0.2))
    assert len(data.splits["dev"]) == 18 and all(isinstance(labels, tuple) for labels in data.splits["dev"].labels)


# ---- loss, thresholds, metrics ------------------------------------------------------------------
def test_the_multi_label_loss_is_binary_cross_entropy_of_each_sigmoid():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    by_hand = -np.mean(
        [
            math.log(1 / (1 + math.exp(-2))),
            math.log(1 - 1 / (1 + math.exp(1))),
            math.log(0.5),
            math.log(1 / (1 + math.exp(-3))),
        ]
    )
    assert Objective(multi_label=True).loss(logits, labels).item() == pytest.approx(by_hand, rel=1e-6)
    probs = probabilities(logits.numpy(), multi_label=True)
    assert probs[1].tolist() == pytest.approx([0.5, 1 / (1 + math.exp(-3))])  # each its own sigmoid: no sum to 1


def test_thresholds_are_tuned_per_label_and_overridden():
    gold = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    scores = np.array([[0.3, 0.9], [0.35, 0.8], [0.1, 0.7], [0.05, 0.6]])
    # label 0: anything in (0.1, 0.3] separates it (nearest 0.5: 0.3); label 1: 0.65..0.7 (0.65 nearest)
    assert tune_thresholds(gold, scores).tolist() == [0.3, 0.65]
    assert tune_thresholds(np.zeros((2, 1)), np.array([[0.9], [0.1]])).tolist() == [0.5]  # no positives: keep 0.5
    saved = {"World": 0.3, "Sports": 0.6}
    assert run_thresholds(saved, None, ["World", "Sports"]).tolist() == [0.3, 0.6]
    assert run_thresholds(saved, "0.4", ["World", "Sports"]).tolist() == [0.4, 0.4]
    assert run_thresholds(saved, '{"Sports": 0.2}', ["World", "Sports"]).tolist() == [0.3, 0.2]
    with pytest.raises(ConfigError, match=r"unknown label\(s\) \['Sprots'\]"):
        run_thresholds(saved, '{"Sprots": 0.2}', ["World", "Sports"])


@pytest.mark.parametrize("value", ["1.5", "0", "abc", '{"World": 2}', "[0.5]"])
def test_a_threshold_outside_0_1_is_a_config_error(value):
    with pytest.raises(ConfigError, match="threshold"):
        PredictConfig(threshold=value)
    assert PredictConfig(threshold=0.3).threshold == "0.3"


def test_metrics_of_a_hand_checked_example():
    # 3 texts, labels a b c; thresholds 0.5 except c at 0.8
    gold = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    scores = np.array([[0.9, 0.6, 0.7], [0.2, 0.4, 0.1], [0.7, 0.1, 0.9]])
    metrics = multilabel_metrics(gold, scores, ["a", "b", "c"], [0.5, 0.5, 0.8])
    # predicted: {a, b}, {}, {a, c}: 4 true positives, 0 false positives, 1 false negative (text 2's b)
    assert metrics["micro_f1"] == pytest.approx(2 * 4 / (4 + 5))
    assert metrics["subset_accuracy"] == pytest.approx(2 / 3)
    assert metrics["hamming_loss"] == pytest.approx(1 / 9)
    assert metrics["per_label"]["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert metrics["per_label"]["a"]["support"] == 2 and metrics["per_label"]["c"]["f1"] == 1.0
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert metrics["accuracy"] == metrics["subset_accuracy"]
    assert metrics["co_occurrence"] == [[2, 1, 1], [1, 2, 0], [1, 0, 1]]
    assert metrics["thresholds"] == {"a": 0.5, "b": 0.5, "c": 0.8}
    assert headline_metrics(gold, decide(scores, [0.5, 0.5, 0.8]))["micro_f1"] == metrics["micro_f1"]


def test_macro_f1_leaves_out_a_label_dev_neither_has_nor_predicts_as_single_label_runs_do():
    # a fourth label with no dev rows and no predictions was scored F1 = 0: a perfect run read 0.75
    from textcls.reporting.metrics import classification_metrics

    gold = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]])
    perfect = multilabel_metrics(gold, gold.astype(float), ["a", "b", "c", "d"], [0.5] * 4)
    assert perfect["macro_f1"] == 1.0 and perfect["per_label"]["d"]["support"] == 0
    single = classification_metrics([0, 1, 2], np.eye(4)[:3], ["a", "b", "c", "d"])
    assert single["macro_f1"] == perfect["macro_f1"]
    # a label predicted without gold rows still counts against the run, in both
    wrong = multilabel_metrics(gold, np.c_[gold[:, :3], [1, 0, 0]].astype(float), ["a", "b", "c", "d"], [0.5] * 4)
    assert wrong["macro_f1"] == pytest.approx(3 / 4)
    assert classification_metrics([0, 1, 2], np.eye(4)[[3, 1, 2]], ["a", "b", "c", "d"])["macro_f1"] == pytest.approx(
        2 / 4
    )


def test_prediction_records_of_a_multi_label_run():
    records = prediction_records(np.array([[0.9, 0.2, 0.6], [0.1, 0.2, 0.3]]), ["a", "b", "c"], [0.5, 0.5, 0.7])
    assert records == [
        {"labels": ["a"], "scores": {"a": pytest.approx(0.9), "b": pytest.approx(0.2), "c": pytest.approx(0.6)}},
        {"labels": [], "scores": {"a": pytest.approx(0.1), "b": pytest.approx(0.2), "c": pytest.approx(0.3)}},
    ]


@pytest.mark.parametrize(("option", "value"), [("class_weights", "balanced"), ("sampler", "balanced")])
def test_multi_label_refuses_class_weights_and_balanced_sampling(option, value):
    with pytest.raises(ConfigError, match=f"--multi-label training does not take --{option.replace('_', '-')} {value}"):
        check_training_options(LSTMClassifier, TrainConfig(family="lstm", **{option: value}), multi_label=True)
    check_training_options(LSTMClassifier, TrainConfig(family="lstm", **{option: value}))  # single-label: fine


# ---- families -----------------------------------------------------------------------------------
def split(name: str, n: int, seed: int) -> Split:
    rows = make_multilabel_rows(n, seed)
    labels = [tuple(sorted(LABELS.index(name) for name in names)) for names, _ in rows]
    return Split(name, [text for _, text in rows], labels, f"generated:{name}", multi_label=True)


def gold(split_: Split) -> np.ndarray:
    return multi_hot(split_.labels, len(LABELS))


def test_tfidf_one_vs_rest_learns_label_sets_and_saves_them(tmp_path):
    train, dev = split("train", 240, 1), split("dev", 60, 2)
    classifier, summary = TfidfClassifier.fit(train, dev, LABELS, TrainConfig(family="tfidf"), tmp_path / "ckpt")
    assert classifier.multi_label and classifier.coef.shape[0] == len(LABELS)
    probs = classifier.predict_proba(dev.texts)
    assert not np.allclose(probs.sum(axis=1), 1.0)  # sigmoids, not a softmax
    metrics = multilabel_metrics(gold(dev), probs, LABELS, [0.5] * 4)
    assert metrics["micro_f1"] >= 0.9, metrics
    assert summary["epochs"][0]["dev_accuracy"] == pytest.approx(metrics["subset_accuracy"])
    classifier.save(tmp_path / "model")
    loaded = TfidfClassifier.load(tmp_path / "model")
    assert loaded.multi_label and np.allclose(loaded.predict_proba(dev.texts), probs)
    assert all(isinstance(labels, list) for labels in loaded.predict(dev.texts[:3]))


def test_tfidf_with_a_label_every_train_row_has(tmp_path):
    train = Split("train", ["goal coach", "shares profit", "goal shares"], [(0, 1), (0, 2), (0, 1, 2)], "t", True)
    classifier, _ = TfidfClassifier.fit(train, train, LABELS, TrainConfig(family="tfidf"), tmp_path)
    probs = classifier.predict_proba(["coach"])
    assert probs[0, 0] > 0.99 and probs[0, 3] < 0.01  # always World; never Sci/Tech (no rows of it)


def test_an_lstm_with_a_sigmoid_head_learns_label_sets_and_reloads(tmp_path):
    train, dev = split("train", 240, 1), split("dev", 60, 2)
    config = TrainConfig(
        family="lstm", epochs=8, batch_size=16, lr=1e-2, max_length=48, early_stopping_patience=0, seed=1
    )
    hparams = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.1}
    classifier, summary = LSTMClassifier.fit(train, dev, LABELS, config, tmp_path / "ckpt", hparams=hparams)
    probs = classifier.predict_proba(dev.texts)
    assert classifier.multi_label and not np.allclose(probs.sum(axis=1), 1.0)
    assert multilabel_metrics(gold(dev), probs, LABELS, [0.5] * 4)["micro_f1"] >= 0.8
    assert 0.8 <= summary["best_checkpoint_metric"] <= 1.0  # dev micro-F1 at 0.5, the multi-label default metric
    classifier.save(tmp_path / "model")
    loaded = LSTMClassifier.load(tmp_path / "model")
    assert loaded.multi_label and np.allclose(loaded.predict_proba(dev.texts), probs, atol=1e-6)
