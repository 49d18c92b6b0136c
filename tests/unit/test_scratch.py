"""The scratch transformer: positional encodings, attention maps and masking, learning, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import TOPIC_WORDS
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.models.neural import pad_batch
from textcls.models.scratch import ScratchTransformerClassifier, ScratchTransformerModel, sinusoidal_positions

LABELS = list(TOPIC_WORDS)
TINY = {"d_model": 32, "num_heads": 4, "num_layers": 2, "ff_dim": 64, "dropout": 0.1}
VOCAB = 200


def random_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return pad_batch([torch.randint(1, VOCAB, (n,), generator=generator).tolist() for n in lengths])


def tiny_model() -> ScratchTransformerModel:
    torch.manual_seed(0)
    return ScratchTransformerModel(VOCAB, 4, **TINY).eval()


def test_sinusoidal_encodings_have_the_textbook_values():
    table = sinusoidal_positions(50, 16)
    assert table.shape == (50, 16)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 8))  # sin 0, cos 0
    assert table[1, 0].item() == pytest.approx(math.sin(1.0)) and table[1, 1].item() == pytest.approx(math.cos(1.0))
    # PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))
    for position, i in ((7, 3), (49, 7)):
        angle = position / 10000 ** (2 * i / 16)
        assert table[position, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert table[position, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_is_built_from_its_own_blocks_not_torch_transformer_layers():
    kinds = {type(module) for module in tiny_model().modules()}
    assert not kinds & {torch.nn.TransformerEncoder, torch.nn.TransformerEncoderLayer, torch.nn.MultiheadAttention}


def test_attention_maps_have_one_row_per_query_and_ignore_padded_keys():
    lengths = [6, 2, 4]
    input_ids, attention_mask = random_batch(lengths)
    model = tiny_model()
    model.train()  # dropout must not leak weight onto padding either
    logits, maps = model(input_ids, attention_mask)
    assert logits.shape == (3, 4)
    assert maps.shape == (3, TINY["num_layers"], TINY["num_heads"], 6, 6)  # (batch, layers, heads, seq, seq)
    torch.testing.assert_close(maps.sum(dim=-1), torch.ones(3, 2, 4, 6))
    for row, length in enumerate(lengths):
        assert torch.all(maps[row, ..., length:] == 0.0)  # padded keys, for every layer, head and query
        assert torch.all(maps[row, ..., :length] > 0.0)


def test_a_text_scores_the_same_alone_and_beside_a_longer_text():
    model = tiny_model()
    input_ids, attention_mask = random_batch([5, 12])
    with torch.no_grad():
        alone_logits, alone_maps = model(input_ids[:1, :5], attention_mask[:1, :5])
        batched_logits, batched_maps = model(input_ids, attention_mask)
    torch.testing.assert_close(batched_logits[0], alone_logits[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched_maps[0, :, :, :5, :5], alone_maps[0], atol=1e-5, rtol=0)


def test_longer_inputs_than_the_position_table_still_run():
    model = tiny_model()
    input_ids, attention_mask = random_batch([600])
    logits, maps = model(input_ids, attention_mask)
    assert logits.shape == (1, 4) and maps.shape[-1] == 600


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = TrainConfig(
        family="scratch-transformer", epochs=6, batch_size=16, lr=3e-3, max_length=32, early_stopping_patience=0
    )
    return ScratchTransformerClassifier.fit(
        split("train", 160, 1), split("dev", 32, 2), LABELS, config, tmp_path_factory.mktemp("ckpt"), hparams=TINY
    )


def test_fit_learns_the_generated_topics(trained):
    classifier, summary = trained
    dev = split("dev", 32, 2)
    accuracy = np.mean(classifier.predict_proba(dev.texts).argmax(1) == np.array(dev.labels))
    assert accuracy == pytest.approx(max(row["dev_accuracy"] for row in summary["epochs"]))
    assert accuracy >= 0.75
    assert summary["model"].startswith("scratch-transformer: 2 layers, d_model 32")


def test_save_and_load_give_identical_probabilities(trained, tmp_path):
    classifier, _ = trained
    classifier.save(tmp_path / "model")
    names = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert names == ["model.safetensors", "neural.json", "tokenizer.json"]  # no pickle anywhere
    loaded = ScratchTransformerClassifier.load(tmp_path / "model", max_length=32, label_names=LABELS)
    texts = split("x", 12, 9).texts
    np.testing.assert_array_equal(loaded.predict_proba(texts), classifier.predict_proba(texts))
    assert loaded.num_parameters() == classifier.num_parameters()


def test_attention_returns_tokens_and_maps_over_them(trained):
    classifier, _ = trained
    (result,) = classifier.attention(["Chip laptop researchers"])
    n = len(result.tokens)
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert result.weights.shape == (TINY["num_layers"], TINY["num_heads"], n, n)
    np.testing.assert_allclose(result.weights.sum(axis=-1), 1.0, atol=1e-5)
