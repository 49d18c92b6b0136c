"""LSTM and attention-LSTM: shapes, masking, padding invariance, learning, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import TOPIC_WORDS
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.models.neural import pad_batch
from textcls.models.rnn import AttentionLSTMClassifier, AttentionLSTMModel, LSTMClassifier, LSTMModel

LABELS = list(TOPIC_WORDS)
TINY = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.1}
VOCAB = 200


def random_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return pad_batch([torch.randint(1, VOCAB, (n,), generator=generator).tolist() for n in lengths])


def tiny_models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [LSTMModel(VOCAB, 4, **TINY).eval(), AttentionLSTMModel(VOCAB, 4, attention_dim=8, **TINY).eval()]


def test_forward_shapes():
    input_ids, attention_mask = random_batch([7, 3, 5])
    plain, attentive = tiny_models()
    logits, weights = plain(input_ids, attention_mask)
    assert logits.shape == (3, 4) and weights is None
    logits, weights = attentive(input_ids, attention_mask)
    assert logits.shape == (3, 4) and weights.shape == (3, 7)


def test_attention_is_zero_on_padding_and_sums_to_one():
    lengths = [9, 2, 5, 9]
    input_ids, attention_mask = random_batch(lengths)
    _, attentive = tiny_models()
    attentive.train()  # dropout on the states must not leak weight onto padding either
    _, weights = attentive(input_ids, attention_mask)
    for row, length in enumerate(lengths):
        assert torch.all(weights[row, length:] == 0.0)
        assert torch.all(weights[row, :length] > 0.0)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(len(lengths)))


@pytest.mark.parametrize("which", [0, 1], ids=["lstm", "lstm-attention"])
def test_a_text_scores_the_same_alone_and_beside_a_longer_text(which):
    model = tiny_models()[which]
    input_ids, attention_mask = random_batch([4, 11])
    with torch.no_grad():
        alone_logits, alone_weights = model(input_ids[:1, :4], attention_mask[:1, :4])
        batched_logits, batched_weights = model(input_ids, attention_mask)
    torch.testing.assert_close(batched_logits[0], alone_logits[0], atol=1e-5, rtol=0)
    if alone_weights is not None:
        torch.testing.assert_close(batched_weights[0, :4], alone_weights[0], atol=1e-5, rtol=0)


@pytest.fixture(scope="module", params=[LSTMClassifier, AttentionLSTMClassifier], ids=["lstm", "lstm-attention"])
def trained(request, tmp_path_factory):
    family = request.param
    config = TrainConfig(
        family=family.family, epochs=6, batch_size=16, lr=1e-2, max_length=32, early_stopping_patience=0, seed=1
    )
    hparams = {**TINY, "attention_dim": 8} if family is AttentionLSTMClassifier else TINY
    return family.fit(
        split("train", 160, 1), split("dev", 32, 2), LABELS, config, tmp_path_factory.mktemp("ckpt"), hparams=hparams
    )


def test_fit_learns_the_generated_topics(trained):
    classifier, summary = trained
    dev = split("dev", 32, 2)
    accuracy = np.mean(classifier.predict_proba(dev.texts).argmax(1) == np.array(dev.labels))
    # the best epoch's weights are the ones kept, and predict_proba agrees with the loop's evaluation
    assert accuracy == pytest.approx(max(row["dev_accuracy"] for row in summary["epochs"]))
    assert accuracy >= 0.75


def test_predict_proba_is_a_distribution_in_input_order(trained):
    classifier, _ = trained
    texts = split("x", 20, 7).texts
    probs = classifier.predict_proba(texts, batch_size=3)
    assert probs.shape == (20, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(classifier.predict_proba(texts[::-1], batch_size=7)[::-1], probs, atol=1e-5)
    assert classifier.predict_proba([]).shape == (0, len(LABELS))


def test_save_and_load_give_identical_probabilities(trained, tmp_path):
    classifier, _ = trained
    classifier.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "model.safetensors",
        "neural.json",
        "tokenizer.json",
    ]
    loaded = type(classifier).load(tmp_path / "model")
    assert loaded.label_names == LABELS and loaded.max_length == 32 and loaded.hparams == classifier.hparams
    texts = split("x", 12, 9).texts
    np.testing.assert_array_equal(loaded.predict_proba(texts), classifier.predict_proba(texts))


def test_attention_returns_tokens_and_weights_over_them(trained):
    classifier, _ = trained
    if classifier.family == "lstm":
        assert not hasattr(classifier, "attention")  # callers look for the method to know a family has weights
        return
    (first, second) = classifier.attention(["Shares profit merger", "goal"])
    assert first.tokens[0] == "[CLS]" and first.tokens[-1] == "[SEP]" and "merger" in first.tokens
    assert first.weights.shape == (len(first.tokens),) and second.weights.shape == (len(second.tokens),)
    assert first.weights.sum() == pytest.approx(1.0, abs=1e-5)
