"""The pretrained family on a tiny random BERT: training loop, inference, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TOPIC_WORDS
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.models.encoders import embedded_model_path
from textcls.models.pretrained import PretrainedClassifier, clamp_max_length, epoch_history
from textcls.training.device import resolve_precision

LABELS = list(TOPIC_WORDS)


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    config = TrainConfig(
        model=str(tiny_bert), epochs=6, batch_size=8, lr=1e-3, max_length=32, logging_steps=5, early_stopping_patience=0
    )
    return PretrainedClassifier.fit(
        split("train", 160, 1), split("dev", 32, 2), LABELS, config, tmp_path_factory.mktemp("ckpt")
    )


def test_fit_evaluates_every_epoch_and_learns(trained):
    classifier, summary = trained
    assert [round(row["epoch"]) for row in summary["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert all(0.0 <= row["dev_accuracy"] <= 1.0 and row["dev_macro_f1"] is not None for row in summary["epochs"])
    assert summary["train_samples_per_second"] > 0
    # The generated topics are separable by their words; the best epoch's weights are the ones kept.
    dev = split("dev", 32, 2)
    accuracy = np.mean(classifier.predict_proba(dev.texts).argmax(1) == np.array(dev.labels))
    assert accuracy == pytest.approx(max(row["dev_accuracy"] for row in summary["epochs"]))
    assert accuracy >= 0.75


def test_predict_proba_is_a_distribution_in_input_order(trained):
    classifier, _ = trained
    texts = split("x", 20, 7).texts
    probs = classifier.predict_proba(texts, batch_size=3)
    assert probs.shape == (20, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Length-sorted batching must not reorder results, nor depend on batch size.
    reversed_probs = classifier.predict_proba(texts[::-1], batch_size=7)
    np.testing.assert_allclose(reversed_probs[::-1], probs, atol=1e-5)
    assert classifier.predict(texts[:2]) == [LABELS[i] for i in probs[:2].argmax(1)]
    assert classifier.predict_proba([]).shape == (0, len(LABELS))


def test_save_and_load_give_identical_probabilities(trained, tmp_path):
    classifier, _ = trained
    classifier.save(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert not list((tmp_path / "model").glob("*.bin")), "weights must be safetensors, never pickle"
    loaded = PretrainedClassifier.load(tmp_path / "model", max_length=classifier.max_length)
    assert loaded.label_names == LABELS
    texts = split("x", 12, 9).texts
    np.testing.assert_allclose(loaded.predict_proba(texts), classifier.predict_proba(texts), atol=1e-6)


def test_bf16_inference_casts_weights_once_on_a_gpu_and_autocasts_on_a_cpu(trained, tmp_path):
    import torch

    from textcls.errors import TextclsError

    classifier, _ = trained
    classifier.save(tmp_path / "model")
    fp32 = PretrainedClassifier.load(tmp_path / "model", max_length=classifier.max_length)
    bf16 = PretrainedClassifier.load(tmp_path / "model", max_length=classifier.max_length, precision="bf16")
    gpu = torch.cuda.is_available()  # asserted for the device this runs on
    assert next(bf16.model.parameters()).dtype == (torch.bfloat16 if gpu else torch.float32)
    assert next(fp32.model.parameters()).dtype == torch.float32
    texts = split("x", 24, 11).texts
    low, full = bf16.predict_proba(texts), fp32.predict_proba(texts)
    assert low.dtype == np.float32 and not np.array_equal(low, full)  # bf16 really ran
    np.testing.assert_allclose(low, full, atol=0.05)
    assert (low.argmax(1) == full.argmax(1)).mean() >= 0.9
    if gpu:  # cast weights lost their low bits: saving them is refused rather than done silently
        with pytest.raises(TextclsError, match="load it with precision fp32"):
            bf16.save(tmp_path / "again")


def test_running_out_of_gpu_memory_says_which_option_to_lower(tmp_path):
    import torch

    from textcls.errors import TextclsError
    from textcls.training.trainer import run_trainer

    class Trainer:  # stands in for transformers' Trainer: only what run_trainer touches
        args = type("Args", (), {"should_save": True})()
        model = torch.nn.Linear(2, 2)

        def train(self, resume_from_checkpoint=None):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(TextclsError, match="out of GPU memory.*2.00 GiB.*--batch-tokens"):
        run_trainer(Trainer(), tmp_path, resume=False)


def test_time_budget_stops_training_early_and_still_evaluates(tiny_bert, tmp_path):
    # 0.001 minutes is about one step: training must stop within the first epoch, yet evaluate once.
    config = TrainConfig(model=str(tiny_bert), epochs=50, batch_size=8, max_length=32, time_budget=0.001)
    _, summary = PretrainedClassifier.fit(split("train", 800, 1), split("dev", 16, 2), LABELS, config, tmp_path)
    assert summary["stopped_by_time_budget"] is True
    assert summary["global_step"] < 100  # 800 rows / batch 8: one epoch is 100 steps
    assert len(summary["epochs"]) == 1


def test_clamp_max_length_uses_the_smaller_model_limit(tiny_bert, caplog):
    from transformers import AutoConfig, AutoTokenizer

    tokenizer, config = AutoTokenizer.from_pretrained(tiny_bert), AutoConfig.from_pretrained(tiny_bert)
    assert clamp_max_length(32, tokenizer, config) == 32
    assert clamp_max_length(512, tokenizer, config) == 64
    assert "exceeds the model's limit" in caplog.text


def test_epoch_history_pairs_each_evaluation_with_the_last_training_loss():
    history = [
        {"loss": 1.2, "epoch": 0.5, "step": 5},
        {"loss": 0.9, "epoch": 1.0, "step": 10},
        {"eval_loss": 0.8, "eval_accuracy": 0.7, "eval_macro_f1": 0.6, "epoch": 1.0, "step": 10},
    ]
    assert epoch_history(history) == [
        {"epoch": 1.0, "step": 10, "train_loss": 0.9, "dev_loss": 0.8, "dev_accuracy": 0.7, "dev_macro_f1": 0.6}
    ]


def test_fp16_on_cpu_is_refused_with_a_fix(monkeypatch):
    import torch

    from textcls.errors import TextclsError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TextclsError, match="pass --precision bf16 or auto"):
        resolve_precision("fp16")
    assert resolve_precision("fp32") == "fp32"


def test_embedded_model_folder_is_a_plain_hf_model():
    folder = embedded_model_path()
    assert (folder / "config.json").is_file() and (folder / "vocab.txt").is_file()


def test_a_chunk_run_trains_on_pooled_windows_and_loads_reading_them_again(chunk_run):
    import json

    import textcls
    from textcls.config import PredictConfig

    info = json.loads((chunk_run / "textcls.json").read_text())
    assert info["train_config"]["long_text"] == "chunk" and info["train_config"]["stride"] == 8
    assert info["train_config"]["metric"] == "accuracy"  # balanced labels: accuracy chosen, and recorded
    metrics = json.loads((chunk_run / "metrics.json").read_text())
    assert metrics["dev"]["accuracy"] > 0.5  # the class words sit past the first 32 tokens, only windows see them
    run = textcls.load(chunk_run, PredictConfig(backend="torch"))
    assert run.classifier.windowing.chunks and run.classifier.windowing.stride == 8
    # a reloaded run reads the windows as training did: the same dev scores
    assert (
        textcls.evaluate(chunk_run, split="dev", predict_config=PredictConfig(backend="torch"))["accuracy"]
        == (metrics["dev"]["accuracy"])
    )


def test_explain_gives_a_chunk_runs_whole_text_label_and_probabilities(chunk_run):
    import textcls
    from tests.conftest import make_long_texts
    from textcls.config import PredictConfig

    run = textcls.load(chunk_run, PredictConfig(backend="torch"))
    text = make_long_texts(1, seed=4)[0][1]
    assert len(run.classifier.tokenizer(text)["input_ids"]) > 32  # longer than one window
    explanation = run.explain(text)
    probs = run.predict_proba([text])[0]
    assert explanation.label == run.predict([text])[0]
    assert [explanation.probs[name] for name in run.label_names] == pytest.approx(probs.tolist(), abs=1e-6)
    assert len(explanation.tokens) == 32  # the maps: the first window


def test_an_fp32_fit_hands_over_the_best_epochs_dev_scores(tiny_bert, tmp_path):
    dev = split("dev", 32, 2)
    config = TrainConfig(
        model=str(tiny_bert),
        epochs=3,
        batch_size=8,
        lr=1e-3,
        max_length=32,
        precision="fp32",
        early_stopping_patience=0,
    )
    classifier, summary = PretrainedClassifier.fit(split("train", 96, 1), dev, LABELS, config, tmp_path / "ckpt")
    scored = classifier.fit_dev_probabilities
    assert scored is not None and scored.shape == (len(dev.texts), len(LABELS))
    # the same numbers `predict_proba` gives for the weights kept (the best epoch's), rows in dev order
    np.testing.assert_allclose(scored, classifier.predict_proba(dev.texts), atol=1e-4)
    accuracy = np.mean(scored.argmax(1) == np.array(dev.labels))
    assert accuracy == pytest.approx(max(row["dev_accuracy"] for row in summary["epochs"]))


def test_averaged_checkpoints_are_scored_afresh(tiny_bert, tmp_path):
    config = TrainConfig(
        model=str(tiny_bert), epochs=2, batch_size=8, lr=1e-3, max_length=32, precision="fp32", average_last=2
    )
    classifier, summary = PretrainedClassifier.fit(
        split("train", 48, 1), split("dev", 16, 2), LABELS, config, tmp_path / "ckpt"
    )
    assert summary["averaged_checkpoints"] and classifier.fit_dev_probabilities is None


def test_epoch_dev_logits_keep_only_what_they_can_put_in_dev_order():
    from textcls.training.trainer import EpochDevLogits

    plan = [np.array([2, 0]), np.array([1])]
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # rows 2, 0, 1 in plan order
    scores = EpochDevLogits(plan, np.array([1, 0, 1]))
    scores.record(12, logits, np.array([1, 1, 0]))
    np.testing.assert_array_equal(scores.of_checkpoint("out/checkpoints/checkpoint-12"), logits[[1, 2, 0]])
    scores.record(24, logits, np.array([0, 1, 1]))  # labels not dev's in this order: not kept
    scores.record(36, logits[:2], np.array([1, 1]))  # a part of dev: not kept
    assert scores.of_checkpoint("checkpoint-24") is None and scores.of_checkpoint("checkpoint-36") is None
    assert scores.of_checkpoint(None) is None and scores.of_checkpoint("model") is None
    unordered = EpochDevLogits(None, np.array([1, 0, 1]))  # several processes: no plan to put rows back by
    unordered.record(12, logits, np.array([1, 1, 0]))
    assert unordered.of_checkpoint("checkpoint-12") is None


def test_a_runs_dev_figures_from_its_epoch_evaluation_match_scoring_the_saved_run(tiny_bert, tmp_path, caplog):
    import json
    import logging

    import textcls
    from tests.conftest import write_ag_news_folder

    data = write_ag_news_folder(tmp_path / "data", n_train=64, n_dev=24, n_test=8)
    options = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "max_length": 32, "early_stopping_patience": 0, "seed": 1}
    with caplog.at_level(logging.INFO, logger="textcls.runs.api"):
        result = textcls.train(data=str(data), out=tmp_path / "run", model=str(tiny_bert), precision="fp32", **options)
    assert "dev scored by the final model's epoch-end evaluation" in caplog.text  # no second pass over dev
    written = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))["dev"]
    again = textcls.evaluate(result.run_dir, split="dev")
    assert again["confusion_matrix"] == written["confusion_matrix"]
    assert again["accuracy"] == written["accuracy"] and again["macro_f1"] == pytest.approx(written["macro_f1"])
