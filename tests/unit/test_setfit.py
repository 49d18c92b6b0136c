"""The setfit family on a tiny random BERT: pair sampling, training, persistence, the CLI, multi-label."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import textcls
from tests.conftest import TOPIC_WORDS, write_ag_news_folder, write_multilabel_folder
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.data.loading import Split
from textcls.errors import ConfigError, DataError
from textcls.models.base import EXPLAIN, MULTI_LABEL, family_class
from textcls.models.setfit import (
    SetFitClassifier,
    _student_targets,
    check_rows_per_class,
    sample_pairs,
    self_trained_head,
)

LABELS = list(TOPIC_WORDS)
# fast settings for the tiny BERT: 2 pairs per row, a high rate, no early stopping
TINY = {"lr": 1e-3, "max_length": 32, "setfit_iterations": 2, "early_stopping_patience": 0, "seed": 1}


def test_pairs_pair_each_row_with_one_similar_and_one_dissimilar_partner_per_iteration():
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    first, second, similarity = sample_pairs(labels, iterations=3, seed=7)
    assert len(similarity) == 2 * 3 * len(labels)  # every row has a partner of each kind
    assert similarity.sum() == len(similarity) / 2  # balanced
    for a, b, s in zip(first, second, similarity):
        assert a != b
        assert (labels[a] == labels[b]) == (s == 1.0)
    assert np.bincount(first).tolist() == [6] * len(labels)  # each row leads 2 pairs per iteration
    again = sample_pairs(labels, iterations=3, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip((first, second, similarity), again))
    other = sample_pairs(labels, iterations=3, seed=8)
    assert not np.array_equal(second, other[1])


def test_multi_label_pairs_are_similar_when_the_rows_share_a_label():
    labels = [(0,), (0, 1), (1,), (2,), (1, 2)]
    first, second, similarity = sample_pairs(labels, iterations=4, seed=0)
    for a, b, s in zip(first, second, similarity):
        assert bool(set(labels[a]) & set(labels[b])) == (s == 1.0)
    assert 0 < similarity.mean() < 1


def test_a_class_with_fewer_than_two_rows_is_refused_naming_it(tmp_path):
    with pytest.raises(DataError, match=r"'Sports' \(1\), 'Business' \(0\)"):
        check_rows_per_class([0, 0, 1, 3, 3], LABELS)
    train = Split("train", ["minister treaty", "election embassy", "goal coach"], [0, 0, 1], "t")
    config = TrainConfig(family="setfit", model="unused", **TINY)
    with pytest.raises(DataError, match="at least 2 train rows"):
        SetFitClassifier.fit(train, train, LABELS[:2], config, tmp_path)  # fails before any model is read


def test_setfit_options_are_checked():
    assert TrainConfig(family="setfit").setfit_iterations == 10  # the family's default
    with pytest.raises(ConfigError, match="setfit_iterations"):
        TrainConfig(family="setfit", setfit_iterations=0)
    with pytest.raises(ConfigError, match="setfit_head"):
        TrainConfig(setfit_head="svm")


def test_self_training_options_are_checked(tmp_path):
    texts = str(tmp_path / "news.txt")
    with pytest.raises(ConfigError, match="--setfit-unlabeled self-trains the logistic head"):
        TrainConfig(family="setfit", setfit_unlabeled=texts, setfit_head="differentiable")
    with pytest.raises(ConfigError, match="pass --setfit-unlabeled or drop --setfit-self-training-rounds"):
        TrainConfig(family="setfit", setfit_self_training_rounds=3)
    with pytest.raises(ConfigError, match="setfit_self_training_rounds"):
        TrainConfig(family="setfit", setfit_unlabeled=texts, setfit_self_training_rounds=0)
    with pytest.raises(ConfigError, match="setfit_unlabeled"):
        TrainConfig(family="setfit", setfit_unlabeled="  ")
    with pytest.raises(ConfigError, match="pass --setfit-unlabeled or drop --setfit-student-epochs"):
        TrainConfig(family="setfit", setfit_student_epochs=1)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ConfigError, match="setfit_student_epochs: expected a number of epochs > 0"):
            TrainConfig(family="setfit", setfit_unlabeled=texts, setfit_student_epochs=bad)
    # another family is refused, not silently trained without the texts; so is multi-label data
    train = split("train", 8, 1)
    with pytest.raises(
        ConfigError, match="the tfidf family does not support --setfit-unlabeled .*families that do: setfit"
    ):
        family_class("tfidf").fit(train, train, LABELS, TrainConfig(family="tfidf", setfit_unlabeled=texts), tmp_path)
    config = TrainConfig(family="setfit", model="unused", setfit_unlabeled=texts, **TINY)
    with pytest.raises(ConfigError, match="--multi-label training does not take --setfit-unlabeled"):
        SetFitClassifier.fit(
            Split("train", ["a b", "c d", "e f", "g h"], [(0,), (0,), (1,), (1,)], "t", multi_label=True),
            train,
            LABELS,
            config,
            tmp_path,
        )


def _blobs(rng, per_class, centres, spread=1.0):
    points = np.concatenate(
        [centre + spread * rng.standard_normal((per_class, centres.shape[1])) for centre in centres]
    )
    return points.astype(np.float32), np.repeat(np.arange(len(centres)), per_class)


def test_self_training_labels_the_unlabelled_texts_a_growing_share_per_class_and_helps():
    rng = np.random.default_rng(0)
    centres = 2.2 * np.eye(4, 16)
    labelled, labels = _blobs(rng, 2, centres)  # two rows a class: a noisy head
    pool, _ = _blobs(rng, 300, centres)
    held, held_labels = _blobs(rng, 300, centres)
    scores = []

    def accuracy(logits):
        scores.append(float((logits.argmax(1) == held_labels).mean()))
        return scores[-1]

    head, record = self_trained_head(
        labelled, labels.tolist(), pool, 4, None, seed=0, rounds=4, dev_embeddings=held, score=accuracy
    )
    assert record["unlabeled_texts"] == 1200 and len(record["rounds"]) == 4
    for number, step in enumerate(record["rounds"], start=1):
        # round r of 4 keeps at most r/4 x 1200 texts x a quarter (each class's share of the labelled rows)
        assert all(0 < added <= 75 * number for added in step["added_per_class"])
    assert sum(record["rounds"][-1]["added_per_class"]) > 1000  # the last round takes nearly every text
    assert record["dev_before"] == pytest.approx(scores[0], abs=1e-6)
    assert record["rounds"][-1]["dev"] == pytest.approx(scores[-1], abs=1e-6)
    assert scores[-1] > scores[0] + 0.05  # the unlabelled texts moved the boundary where the classes are
    with torch.no_grad():
        final = head(torch.from_numpy(held).to(head.weight.device)).cpu().numpy()
    assert float((final.argmax(1) == held_labels).mean()) == scores[-1]


def test_self_training_quotas_follow_the_labelled_class_shares_not_the_heads_guesses():
    rng = np.random.default_rng(1)
    centres = 3.0 * np.eye(2, 8)
    labelled, labels = _blobs(rng, 3, centres)
    labelled, labels = np.concatenate([labelled, labelled[:3]]), np.concatenate([labels, labels[:3]])  # 2:1
    pool = centres[0] + rng.standard_normal((400, 8)).astype(np.float32)  # every text looks like class 0
    _, record = self_trained_head(labelled, labels.tolist(), pool, 2, None, seed=0, rounds=2)
    first, last = (step["added_per_class"] for step in record["rounds"])
    assert first[0] == 134 and last[0] == 267  # ceil(r/2 x 400 x 2/3): never all 400 texts as class 0
    assert first[1] <= 67 and last[1] <= 134


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    config = TrainConfig(family="setfit", model=str(tiny_bert), **TINY)
    return SetFitClassifier.fit(
        split("train", 32, 1), split("dev", 32, 2), LABELS, config, tmp_path_factory.mktemp("c")
    )


def test_fit_learns_and_save_load_gives_the_same_probabilities(trained, tmp_path):
    classifier, summary = trained
    assert family_class("setfit") is SetFitClassifier and {EXPLAIN, MULTI_LABEL} <= classifier.capabilities
    assert summary["global_step"] == 2 * 2 * 32 // 16  # 2 iterations x 2 pairs x 32 rows, 16 pairs a batch
    assert summary["epochs"][0]["dev_accuracy"] >= 0.75
    dev = split("dev", 32, 2)
    probs = classifier.predict_proba(dev.texts)
    assert probs.shape == (32, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    classifier.save(tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "setfit.json").read_text())
    assert saved["label_names"] == LABELS and saved["head"] == "logistic"
    assert not list((tmp_path / "model").glob("*.pkl")) and not list((tmp_path / "model").glob("*.bin"))
    loaded = SetFitClassifier.load(tmp_path / "model", max_length=32)
    assert next(loaded.encoder.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    np.testing.assert_allclose(loaded.predict_proba(dev.texts), probs, atol=1e-5)
    embeddings = loaded.embed(dev.texts[:3])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)  # L2-normalised


def test_explain_shows_the_bodys_attention_and_the_heads_probabilities(trained):
    classifier, _ = trained
    explanation = classifier.explain("the coach and the striker after the playoff goal")
    assert explanation.label == classifier.predict(["the coach and the striker after the playoff goal"])[0]
    assert explanation.attention.shape[:2] == (2, 4)  # (layers, heads, tokens, tokens) of the tiny BERT


def test_the_differentiable_head_trains_end_to_end(tiny_bert, tmp_path):
    config = TrainConfig(family="setfit", model=str(tiny_bert), setfit_head="differentiable", **TINY)
    classifier, summary = SetFitClassifier.fit(split("train", 32, 1), split("dev", 16, 2), LABELS, config, tmp_path)
    assert len(summary["epochs"]) == 1 + 10  # the contrastive epoch, then the head's
    before = classifier.predict_proba(split("dev", 16, 2).texts)
    classifier.save(tmp_path / "model")
    again = SetFitClassifier.load(tmp_path / "model", max_length=32)
    assert again.head_kind == "differentiable"
    np.testing.assert_allclose(again.predict_proba(split("dev", 16, 2).texts), before, atol=1e-5)


def test_train_predict_evaluate_through_the_cli_and_multi_label(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from textcls.cli.main import app

    data = write_ag_news_folder(tmp_path / "data", n_train=24, n_dev=16, n_test=16)
    flags = ["--lr", "1e-3", "--max-length", "32", "--setfit-iterations", "2", "--seed", "1"]
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "run"),
            "--family",
            "setfit",
            "--model",
            str(tiny_bert),
            *flags,
        ],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--split", "test"])
    assert result.exit_code == 0, result.output
    texts = tmp_path / "texts.txt"
    texts.write_text("goal coach season\nshares profit stocks\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), "--input", str(texts), "--backend", "torch"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    run = textcls.load(tmp_path / "run")
    assert run.predict(["goal coach season"]) == run.classifier.predict(["goal coach season"])

    multi = write_multilabel_folder(tmp_path / "multi", n_train=48, n_dev=24)
    run_dir = textcls.train(
        data=str(multi), out=tmp_path / "multi-run", family="setfit", model=str(tiny_bert), multi_label=True, **TINY
    ).run_dir
    loaded = textcls.load(run_dir)
    assert loaded.classifier.multi_label
    probs = loaded.classifier.predict_proba(["goal coach shares profit"])
    assert probs.shape == (1, 4) and not np.isclose(probs.sum(), 1.0)  # one sigmoid per label


def test_train_self_trains_on_unlabelled_texts_through_the_cli_and_refuses_a_bad_file_first(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from textcls.cli.main import app

    data = write_ag_news_folder(tmp_path / "data", n_train=24, n_dev=16, n_test=16)
    news = tmp_path / "news.txt"
    news.write_text("\n".join(split("pool", 40, 3).texts) + "\n\n", encoding="utf-8")  # a blank line is dropped
    flags = ["--family", "setfit", "--model", str(tiny_bert), "--lr", "1e-3", "--max-length", "32"]
    flags += ["--setfit-iterations", "2", "--seed", "1", "--data", str(data)]
    result = CliRunner().invoke(
        app,
        ["train", *flags, "--out", str(tmp_path / "run"), "--setfit-unlabeled", str(news)]
        + ["--setfit-self-training-rounds", "2", "--setfit-student-epochs", "1"],
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "run" / "model" / "setfit.json").read_text())
    assert settings["self_training"]["unlabeled_texts"] == 40 and len(settings["self_training"]["rounds"]) == 2
    assert settings["self_training"]["student_epochs"] == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["global_step"] == 2 * 2 * 24 // 16 + -(-(24 + 40) // 16)  # pairs, then the student
    assert sum(settings["self_training"]["rounds"][-1]["added_per_class"]) >= 30
    manifest = json.loads((tmp_path / "run" / "textcls.json").read_text())
    assert manifest["train_config"]["setfit_unlabeled"] == str(news)
    loaded = SetFitClassifier.load(tmp_path / "run" / "model", max_length=32)
    assert loaded.self_training == settings["self_training"]  # kept when saved again

    news.write_bytes(b"goal coach season\nshares \xff profit\n")  # not UTF-8 on line 2
    result = CliRunner().invoke(app, ["train", *flags, "--out", str(tmp_path / "bad"), "--setfit-unlabeled", str(news)])
    assert result.exit_code != 0
    assert "news.txt, line 2" in result.output and "UTF-8" in result.output
    assert not (tmp_path / "bad" / "textcls.json").exists()
    news.write_text("\n \n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["train", *flags, "--out", str(tmp_path / "empty"), "--setfit-unlabeled", str(news)]
    )
    assert result.exit_code != 0 and "expected unlabelled texts, found none" in result.output


def test_train_suggests_setfit_when_a_class_has_few_labelled_rows(tmp_path, caplog):
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=16, n_test=0)
    with caplog.at_level(logging.WARNING):
        textcls.train(data=str(data), out=tmp_path / "tfidf", family="tfidf")
    assert "pass --family setfit" in caplog.text and "World (10)" in caplog.text
    caplog.clear()
    many = write_ag_news_folder(tmp_path / "many", n_train=400, n_dev=16, n_test=0)
    with caplog.at_level(logging.WARNING):
        textcls.train(data=str(many), out=tmp_path / "tfidf-many", family="tfidf")
    assert "--family setfit" not in caplog.text


def test_embedding_unlabelled_texts_stops_starting_chunks_at_the_deadline(trained):
    import time

    from textcls.models.setfit import _Texts

    classifier, _ = trained
    texts = _Texts(classifier.tokenizer, 32)
    pool = split("pool", 10, 4).texts
    everything = texts.embed_until(classifier.encoder, pool, None, chunk=4)
    assert everything.shape == (10, texts.embed(classifier.encoder, pool[:1]).shape[1])
    np.testing.assert_allclose(everything, texts.embed(classifier.encoder, pool), atol=1e-5)  # in input order
    assert len(texts.embed_until(classifier.encoder, pool, time.perf_counter() - 1.0, chunk=4)) == 0

    class Slow(torch.nn.Module):  # each chunk takes longer than the budget left
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **batch):
            time.sleep(0.3)
            return self.inner(**batch)

    first = texts.embed_until(Slow(classifier.encoder), pool, time.perf_counter() + 0.1, chunk=4)
    np.testing.assert_allclose(first, everything[:4], atol=1e-5)  # the chunk begun in time, and no other


def test_a_time_budget_bounds_self_training_too(tiny_bert, tmp_path, caplog):
    news = tmp_path / "news.txt"
    news.write_text("\n".join(split("pool", 40, 3).texts) + "\n", encoding="utf-8")
    config = TrainConfig(
        family="setfit",
        model=str(tiny_bert),
        setfit_unlabeled=str(news),
        setfit_student_epochs=1,
        time_budget=0.0005,
        **TINY,
    )
    with caplog.at_level(logging.WARNING, logger="textcls.models.setfit"):
        classifier, summary = SetFitClassifier.fit(
            split("train", 16, 1), split("dev", 16, 2), LABELS, config, tmp_path / "c"
        )
    assert "ran out after embedding 0 of 40 unlabelled texts; no self-training" in caplog.text
    assert summary["stopped_by_time_budget"] and classifier.self_training is None
    assert len(summary["epochs"]) == 1  # the contrastive phase's: no student without unlabelled texts
    assert classifier.predict_proba(["goal"]).shape == (1, len(LABELS))  # the head on the labelled rows alone


def test_the_student_trains_encoder_and_head_on_the_labels_and_the_heads_soft_targets(tiny_bert, tmp_path):
    head = torch.nn.Linear(3, 2)
    unlabeled = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    goal = _student_targets([1, 0], head.to(next(head.parameters()).device), unlabeled)
    assert goal.shape == (7, 2) and goal[:2].tolist() == [[0.0, 1.0], [1.0, 0.0]]  # the labels, one-hot
    with torch.no_grad():
        expected = torch.softmax(head(torch.from_numpy(unlabeled).to(head.weight.device)), dim=-1).cpu()
    torch.testing.assert_close(goal[2:], expected)  # then the head's probabilities

    news = tmp_path / "news.txt"
    news.write_text("\n".join(split("pool", 40, 3).texts) + "\n", encoding="utf-8")
    train, dev = split("train", 16, 1), split("dev", 16, 2)
    settings = {"family": "setfit", "model": str(tiny_bert), "setfit_unlabeled": str(news), **TINY}
    teacher, _ = SetFitClassifier.fit(train, dev, LABELS, TrainConfig(**settings), tmp_path / "teacher")
    student, summary = SetFitClassifier.fit(
        train, dev, LABELS, TrainConfig(**settings, setfit_student_epochs=2), tmp_path / "student"
    )
    assert [row["epoch"] for row in summary["epochs"]] == [1.0, 1.0, 2.0]  # the contrastive epoch, the student's
    assert summary["global_step"] == 2 * 2 * 16 // 16 + 2 * -(-(16 + 40) // 16)  # 16 labelled + 40 unlabelled
    assert student.self_training is not None and student.self_training["student_epochs"] == 2
    # the same contrastive phase and head, then the student phase moved both encoder and head
    assert not torch.allclose(student.head.weight.cpu(), teacher.head.weight.cpu())
    assert not np.allclose(student.embed(dev.texts), teacher.embed(dev.texts), atol=1e-4)
    student.save(tmp_path / "model")
    loaded = SetFitClassifier.load(tmp_path / "model", max_length=32)
    assert loaded.self_training == student.self_training
    np.testing.assert_allclose(loaded.predict_proba(dev.texts), student.predict_proba(dev.texts), atol=1e-5)
