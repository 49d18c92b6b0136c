"""The shared pieces of the from-scratch families: tokenizer, batching, schedule, the training loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import TOPIC_WORDS, make_texts
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.data.loading import Split
from textcls.models import neural
from textcls.models.neural import (
    PAD_ID,
    TorchClassifier,
    load_tokenizer,
    make_optimizer,
    pad_batch,
    training_batches,
)
from textcls.models.rnn import LSTMClassifier
from textcls.training.checkpoints import last_checkpoint, load_optimizer_tensors, optimizer_tensors
from textcls.training.loop import learning_rate
from textcls.training.tokens import encode_ids

LABELS = list(TOPIC_WORDS)
TINY_LSTM = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0}
# The keys of PretrainedClassifier.fit's summary: every family reports the same ones.
SUMMARY_KEYS = {
    "model", "max_length", "precision", "world_size", "train_seconds", "train_samples_per_second", "train_loss",
    "global_step", "best_checkpoint_metric", "stopped_by_time_budget", "resumed_from", "epochs",
    "steady_samples_per_second",
}  # fmt: skip


def expected_lstm_precision() -> str:
    """What "auto" gives an LSTM here: bf16 on a GPU with bf16 (fp16 needs loss scaling the loop lacks, so fp32),
    fp32 on any CPU (measured faster than bf16 autocast for LSTMs)."""
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def tiny_config(**overrides) -> TrainConfig:
    values = {
        "family": "lstm",
        "epochs": 2,
        "batch_size": 16,
        "lr": 5e-3,
        "max_length": 32,
        "early_stopping_patience": 0,
    }
    return TrainConfig(**{**values, **overrides})


def test_tokenizer_is_the_embedded_uncased_wordpiece_without_fixed_padding():
    tokenizer = load_tokenizer()
    assert tokenizer.get_vocab_size() == 30522
    assert tokenizer.token_to_id("[PAD]") == PAD_ID
    short, long = (
        ids.tolist() for ids in encode_ids(tokenizer, ["Stocks FELL", "word " * 100], max_length=16, cache=False)
    )
    assert short[0] == tokenizer.token_to_id("[CLS]") and short[-1] == tokenizer.token_to_id("[SEP]")
    assert short == encode_ids(tokenizer, ["stocks fell"], max_length=16, cache=False)[0].tolist()  # uncased
    assert len(short) < 16 and len(long) == 16  # padded per batch later, cut at max_length


def test_pad_batch_right_pads_with_a_mask_of_real_tokens():
    input_ids, attention_mask = pad_batch([[101, 7, 102], [101, 102]])
    assert input_ids.tolist() == [[101, 7, 102], [101, 102, PAD_ID]]
    assert attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_training_batches_cover_every_row_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(5, 120, size=1000)
    batches = training_batches(lengths, batch_size=10, seed=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert all(len(b) == 10 for b in batches)
    # the order is a function of the seed only, so a resumed run replays it
    assert all((a == b).all() for a, b in zip(batches, training_batches(lengths, batch_size=10, seed=3)))
    padded = sum(lengths[b].max() * len(b) for b in batches)
    random_padded = sum(lengths[b].max() * len(b) for b in training_batches(lengths, 10, 3, group_by_length=False))
    assert padded < 0.8 * random_padded
    assert lengths.sum() / padded > 0.9


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    rates = [learning_rate(step, total_steps=100, warmup_steps=10, peak=1.0) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0) and rates[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[-1] == pytest.approx(1 / 90)
    assert learning_rate(5, total_steps=10, warmup_steps=0, peak=2.0) == pytest.approx(1.0)


def test_optimizer_state_round_trips_through_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    optimizer = make_optimizer(module, lr=1e-2, weight_decay=0.1)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]  # biases and norms do not decay
    module(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    save_file(optimizer_tensors(optimizer), str(tmp_path / "optimizer.safetensors"))
    restored = make_optimizer(module, lr=1e-2, weight_decay=0.1)
    load_optimizer_tensors(restored, load_file(str(tmp_path / "optimizer.safetensors")))
    for index, entries in optimizer.state_dict()["state"].items():
        for name, value in entries.items():
            torch.testing.assert_close(restored.state_dict()["state"][index][name], value)


def test_hparams_overrides_must_name_known_hyper_parameters():
    assert LSTMClassifier.resolve_hparams({"hidden_size": 8})["hidden_size"] == 8
    with pytest.raises(ValueError, match="hidden_sise"):
        LSTMClassifier.resolve_hparams({"hidden_sise": 8})


def test_auto_precision_keeps_lstms_in_fp32_on_a_bf16_cpu(monkeypatch):
    monkeypatch.setattr(neural, "resolve_precision", lambda requested: "bf16")
    monkeypatch.setattr(neural, "device", lambda: torch.device("cpu"))
    assert LSTMClassifier.training_precision("auto") == "fp32"
    assert LSTMClassifier.training_precision("bf16") == "bf16"  # asked for explicitly

    class Bf16Family(TorchClassifier):
        bf16_on_cpu = True

    assert Bf16Family.training_precision("auto") == "bf16"


def test_fit_summary_has_the_pretrained_keys_and_checkpoints_hold_no_pickle(tmp_path):
    _, summary = LSTMClassifier.fit(
        split("train", 64, 1), split("dev", 16, 2), LABELS, tiny_config(), tmp_path / "ckpt", hparams=TINY_LSTM
    )
    assert set(summary) == SUMMARY_KEYS
    assert summary["global_step"] == 8  # 64 rows / batch 16 * 2 epochs
    assert [row["epoch"] for row in summary["epochs"]] == [1.0, 2.0]
    assert set(summary["epochs"][0]) == {"epoch", "step", "train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1"}
    assert summary["precision"] == expected_lstm_precision() == LSTMClassifier.training_precision("auto")
    assert summary["world_size"] == 1 and summary["resumed_from"] is None
    checkpoint = last_checkpoint(tmp_path / "ckpt")
    assert checkpoint.name == "checkpoint-8"
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "best.safetensors", "model.safetensors", "optimizer.safetensors", "state.json",
    ]  # fmt: skip
    assert json.loads((checkpoint / "state.json").read_text())["step"] == 8
    assert len(list((tmp_path / "ckpt").iterdir())) == 1  # older checkpoints are removed


def test_fractional_epochs_stop_after_that_many_steps(tmp_path):
    _, summary = LSTMClassifier.fit(
        split("train", 64, 1), split("dev", 16, 2), LABELS, tiny_config(epochs=1.5), tmp_path, hparams=TINY_LSTM
    )
    assert summary["global_step"] == 6
    assert [row["step"] for row in summary["epochs"]] == [4, 6]


def test_resume_continues_the_step_count_and_history(tmp_path):
    train, dev = split("train", 64, 1), split("dev", 16, 2)
    LSTMClassifier.fit(train, dev, LABELS, tiny_config(epochs=1), tmp_path, hparams=TINY_LSTM)
    _, summary = LSTMClassifier.fit(train, dev, LABELS, tiny_config(epochs=3, resume=True), tmp_path, hparams=TINY_LSTM)
    assert summary["resumed_from"] == str(tmp_path / "checkpoint-4")
    assert summary["global_step"] == 12
    assert [row["step"] for row in summary["epochs"]] == [4, 8, 12]


def test_resume_after_a_time_budget_stop_finishes_the_interrupted_epoch(tmp_path):
    train, dev = split("train", 400, 1), split("dev", 16, 2)
    budgeted = tiny_config(epochs=1, batch_size=8, time_budget=0.0001)
    _, stopped = LSTMClassifier.fit(train, dev, LABELS, budgeted, tmp_path, hparams=TINY_LSTM)
    assert stopped["stopped_by_time_budget"] and stopped["global_step"] < 50
    resuming = tiny_config(epochs=1, batch_size=8, resume=True)
    _, resumed = LSTMClassifier.fit(train, dev, LABELS, resuming, tmp_path, hparams=TINY_LSTM)
    assert resumed["resumed_from"] == str(tmp_path / f"checkpoint-{stopped['global_step']}")
    assert resumed["global_step"] == 50  # the rest of the epoch's batches, not a fresh epoch
    assert [row["step"] for row in resumed["epochs"]] == [stopped["global_step"], 50]


def test_resume_refuses_a_checkpoint_of_other_hyper_parameters(tmp_path):
    train, dev = split("train", 32, 1), split("dev", 8, 2)
    LSTMClassifier.fit(train, dev, LABELS, tiny_config(epochs=1), tmp_path, hparams=TINY_LSTM)
    with pytest.raises(neural.TextclsError, match="cannot resume"):
        LSTMClassifier.fit(
            train, dev, LABELS, tiny_config(resume=True), tmp_path, hparams={**TINY_LSTM, "hidden_size": 8}
        )


def test_time_budget_stops_training_early_and_still_evaluates(tmp_path):
    # 0.0001 minutes is well under one step: training stops in the first epoch, yet evaluates once.
    config = tiny_config(epochs=50, batch_size=8, time_budget=0.0001)
    _, summary = LSTMClassifier.fit(
        split("train", 400, 1), split("dev", 16, 2), LABELS, config, tmp_path, hparams=TINY_LSTM
    )
    assert summary["stopped_by_time_budget"] is True
    assert summary["global_step"] < 50  # one epoch is 50 steps
    assert len(summary["epochs"]) == 1


def test_early_stopping_ends_training_after_patience_evaluations_without_improvement(tmp_path, monkeypatch):
    accuracies = iter([0.5, 0.6, 0.6, 0.55, 0.9, 0.9])
    monkeypatch.setattr(neural, "evaluate", lambda *args: {"loss": 1.0, "accuracy": next(accuracies), "macro_f1": 0.5})
    config = tiny_config(epochs=6, early_stopping_patience=2)
    _, summary = LSTMClassifier.fit(
        split("train", 32, 1), split("dev", 8, 2), LABELS, config, tmp_path, hparams=TINY_LSTM
    )
    assert [row["dev_accuracy"] for row in summary["epochs"]] == [0.5, 0.6, 0.6, 0.55]
    assert summary["best_checkpoint_metric"] == 0.6


def long_split(name: str, n: int, seed: int) -> Split:
    from tests.conftest import make_long_texts

    rows = make_long_texts(n, seed)
    return Split(name, [text for _, text in rows], [label for label, _ in rows], f"generated:{name}")


def test_chunk_reads_what_truncation_cuts_off_and_pools_its_windows(tmp_path):
    """The topic words sit past the first 32 tokens: truncation sees only filler, chunk windows see them."""
    train, dev = long_split("train", 256, 1), long_split("dev", 64, 2)
    scores = {}
    for strategy in ("truncate", "chunk"):
        config = tiny_config(epochs=4, lr=1e-2, long_text=strategy, metric="accuracy")
        clf, summary = LSTMClassifier.fit(train, dev, LABELS, config, tmp_path / strategy, hparams=TINY_LSTM)
        scores[strategy] = summary["best_checkpoint_metric"]
    assert scores["truncate"] < 0.5 and scores["chunk"] > 0.9, scores
    # inference pools the windows as training did: the mean of the windows' logits
    text = dev.texts[0]
    token_ids, windows = neural.encode_windows(clf.tokenizer, [text], clf.windowing, cache=False)
    assert len(windows) > 1
    window_logits = neural.predict_logits(clf.model, token_ids, batch_size=4)
    expected = torch.softmax(torch.from_numpy(window_logits.mean(axis=0)), dim=-1).numpy()
    assert np.allclose(clf.predict_proba([text])[0], expected, atol=1e-5)


def test_class_weights_sampler_and_metric_reach_the_own_loop(tmp_path, caplog):
    labels = [0] * 30 + [1] * 30 + [2] * 30 + [3] * 3
    rows = make_texts(4 * len(labels), 5)
    by_class = {k: [f"{t} {d}" for label, t, d in rows if label == k] for k in range(4)}
    train = Split("train", [by_class[label].pop() for label in labels], labels, "generated:train")
    config = tiny_config(epochs=2, class_weights="balanced", sampler="balanced")
    with caplog.at_level("INFO"):
        _, summary = LSTMClassifier.fit(train, split("dev", 16, 2), LABELS, config, tmp_path, hparams=TINY_LSTM)
    assert "by dev macro_f1 (--metric): the train labels are skewed" in caplog.text
    assert (
        "class weights (--class-weights balanced): World 0.775, Sports 0.775, Business 0.775, Sci/Tech 7.75"
        in caplog.text
    )
    assert summary["best_checkpoint_metric"] == max(row["dev_macro_f1"] for row in summary["epochs"])
