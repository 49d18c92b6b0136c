"""The tfidf family on generated topics: learning, inference, pickle-free persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import TOPIC_WORDS, make_texts
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.data.loading import Split
from textcls.errors import RunFolderError, TextclsError
from textcls.models.linear import SETTINGS_FILE, WEIGHTS_FILE, TfidfClassifier

LABELS = list(TOPIC_WORDS)
SUMMARY_KEYS = {
    "model",
    "max_length",
    "precision",
    "world_size",
    "train_seconds",
    "train_samples_per_second",
    "train_loss",
    "global_step",
    "best_checkpoint_metric",
    "stopped_by_time_budget",
    "resumed_from",
    "epochs",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = TrainConfig(family="tfidf", seed=0)
    return TfidfClassifier.fit(
        split("train", 200, 1), split("dev", 40, 2), LABELS, config, tmp_path_factory.mktemp("ckpt")
    )


def test_fit_learns_the_topics_and_reports_a_full_summary(trained):
    classifier, summary = trained
    assert set(summary) == SUMMARY_KEYS
    (row,) = summary["epochs"]
    assert set(row) == {"epoch", "step", "train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1"}
    assert row["dev_accuracy"] == summary["best_checkpoint_metric"] >= 0.9
    assert summary["train_samples_per_second"] > 0 and summary["world_size"] == 1
    assert 0 < summary["train_loss"] < 0.5 and 0 < row["dev_loss"] < 0.5  # log losses of a model that learned
    json.dumps(summary)  # goes into metrics.json as is
    dev = split("dev", 40, 2)
    accuracy = np.mean(classifier.predict_proba(dev.texts).argmax(1) == np.array(dev.labels))
    assert accuracy == pytest.approx(row["dev_accuracy"])
    assert classifier.num_parameters() == classifier.coef.size + len(LABELS) > len(LABELS)


def test_predict_proba_is_a_distribution_in_input_order(trained):
    classifier, _ = trained
    texts = split("x", 20, 7).texts
    probs = classifier.predict_proba(texts, batch_size=3)
    assert probs.shape == (20, len(LABELS)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(classifier.predict_proba(texts[::-1])[::-1], probs, atol=1e-6)
    assert classifier.predict(texts[:2]) == [LABELS[i] for i in probs[:2].argmax(1)]
    assert classifier.predict_proba([]).shape == (0, len(LABELS))


def test_save_and_load_give_identical_probabilities_without_pickle(trained, tmp_path):
    classifier, _ = trained
    classifier.save(tmp_path / "model")
    saved = sorted(path.name for path in (tmp_path / "model").iterdir())
    assert saved == sorted([SETTINGS_FILE, WEIGHTS_FILE])  # no .pkl / .joblib beside them
    with np.load(tmp_path / "model" / WEIGHTS_FILE, allow_pickle=False) as weights:
        assert all(weights[key].dtype != object for key in weights.files)
    loaded = TfidfClassifier.load(tmp_path / "model", max_length=None)
    assert loaded.label_names == LABELS
    texts = split("x", 12, 9).texts + ["an unseen zyzzyva word", "Minister!"]
    np.testing.assert_allclose(loaded.predict_proba(texts), classifier.predict_proba(texts), atol=1e-6)
    assert loaded.num_parameters() == classifier.num_parameters()


def test_load_of_an_incomplete_folder_names_the_missing_file(tmp_path):
    with pytest.raises(RunFolderError, match=WEIGHTS_FILE):
        (tmp_path / SETTINGS_FILE).write_text("{}", encoding="utf-8")
        TfidfClassifier.load(tmp_path)


def test_top_ngrams_are_the_topic_words(trained):
    classifier, _ = trained
    ngrams = classifier.top_ngrams("the striker scored a goal", k=3)
    assert len(ngrams) == 3 and ngrams[0][1] >= ngrams[1][1] >= ngrams[2][1] > 0
    assert {term for term, _ in ngrams[:2]} == {"striker", "goal"}


def test_binary_and_missing_classes_fill_every_label_column(tmp_path):
    # Train holds only World and Sports: the other columns get 0, the binary sigmoid becomes two columns.
    rows = [(label, f"{t} {d}") for label, t, d in make_texts(80, 3) if label < 2]
    train = Split("train", [text for _, text in rows], [label for label, _ in rows], "generated")
    classifier, _ = TfidfClassifier.fit(train, train, LABELS, TrainConfig(family="tfidf"), tmp_path)
    probs = classifier.predict_proba(train.texts)
    assert probs.shape == (len(train), 4) and not probs[:, 2:].any()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probs.argmax(1) == np.array(train.labels)) >= 0.9
    classifier.save(tmp_path / "model")
    loaded = TfidfClassifier.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_proba(train.texts), probs, atol=1e-6)
    assert classifier.top_ngrams(train.texts[0], k=1)[0][1] > 0


def test_a_single_class_is_refused_with_a_fix(tmp_path):
    train = Split("train", ["goal coach", "season goal"], [1, 1], "generated")
    with pytest.raises(TextclsError, match="at least 2 classes"):
        TfidfClassifier.fit(train, train, LABELS, TrainConfig(family="tfidf"), tmp_path)


def test_texts_without_words_train_on_their_character_ngrams(tmp_path, caplog):
    # scikit-learn's word pattern needs two letters or digits: emoji and emoticons gave "empty vocabulary"
    texts = ["😀 😍 :)", "😡 :(", "👍 🎉 :-)", "👎 💔 :-(", "😀 :)", "😡 💔 :("]
    train = Split("train", texts, [0, 1, 0, 1, 0, 1], "emoji.csv")
    classifier, _ = TfidfClassifier.fit(train, train, ["pos", "neg"], TrainConfig(family="tfidf"), tmp_path)
    assert "word n-grams: none in the training texts" in caplog.text
    assert list(classifier.vectorizers) == ["char"]
    assert classifier.predict(["😀 :)", "😡 :("]) == ["pos", "neg"]
    classifier.save(tmp_path / "model")
    loaded = TfidfClassifier.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_proba(texts), classifier.predict_proba(texts), atol=1e-6)
    with pytest.raises(TextclsError, match="emoji.csv: expected text in the training rows"):
        TfidfClassifier.fit(
            Split("train", ["", " "], [0, 1], "emoji.csv"), train, ["pos", "neg"], TrainConfig(family="tfidf"), tmp_path
        )
