"""cpu_speed: a dropout with nn.Dropout's distribution and torch's seeding, BERT-like attention that stays
exact, and the model's own modules and kernel given back after training."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import TOPIC_WORDS
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.models.rnn import LSTMClassifier
from textcls.training import loop
from textcls.training.cpu_speed import (
    ATTENTION,
    BERT_ATTENTION_TYPES,
    FastDropout,
    eager_attention,
    fast_dropout,
    fast_dropout_in,
    lean_cpu_training,
)

COUNT = 1_000_000
SIGMAS = 6  # binomial tolerances: a correct mask misses them about once in 10^9 draws


def within(observed: float, expected: float, variance: float, count: int) -> bool:
    return abs(observed - expected) <= SIGMAS * math.sqrt(variance / count)


# ---- the dropout itself ------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_p_of_the_elements_are_dropped_and_the_rest_scaled_to_keep_the_mean(p):
    y = fast_dropout(torch.ones(COUNT), p)
    dropped = (y == 0).float().mean().item()
    assert within(dropped, p, p * (1 - p), COUNT)
    kept = y[y != 0]
    rate = 1 - round(p * 65536) / 65536  # p to within 1/65,536
    assert torch.all(kept == torch.tensor(1 / rate, dtype=torch.float32))
    assert within(y.double().mean().item(), 1.0, p / (1 - p), COUNT)


def test_neighbouring_elements_are_dropped_independently():
    # four elements share a 64-bit draw: their masks must still be independent, within and across draws
    p = 0.3
    dropped = (fast_dropout(torch.ones(COUNT), p) == 0).double()
    for gap in (1, 2, 3, 4):
        both = (dropped[:-gap] * dropped[gap:]).mean().item()
        assert within(both, p * p, p * p * (1 - p * p), COUNT - gap), gap
    lanes = dropped.view(-1, 4).mean(0)  # each of the four 16-bit lanes alone
    assert all(within(lane, p, p * (1 - p), COUNT // 4) for lane in lanes.tolist())


def test_bf16_kept_values_are_rounded_once_as_nn_dropout_rounds_them():
    x = torch.randn(COUNT // 10).to(torch.bfloat16)
    y = fast_dropout(x, 0.1)
    kept = y != 0
    scale = 65536 / (65536 - round(0.1 * 65536))
    assert y.dtype == torch.bfloat16
    assert torch.equal(y[kept], (x[kept].float() * scale).to(torch.bfloat16))


def test_the_mask_follows_torchs_seed():
    x = torch.ones(1000)
    torch.manual_seed(7)
    first, second = fast_dropout(x, 0.5), fast_dropout(x, 0.5)
    torch.manual_seed(7)
    assert torch.equal(fast_dropout(x, 0.5), first)
    assert not torch.equal(first, second)


def test_the_gradient_is_the_same_mask_scaled():
    x = torch.randn(4, 8, 16, requires_grad=True)
    y = fast_dropout(x, 0.25)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.equal(x.grad, kept.float() * (65536 / (65536 - 16384)))


def test_evaluation_and_p_zero_pass_x_through_and_p_one_drops_everything():
    x = torch.randn(64)
    assert fast_dropout(x, 0.5, training=False) is x
    assert fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros(64))  # nn.functional.dropout's own answer


def test_fast_dropout_is_an_nn_dropout_that_stops_in_eval_mode():
    module = FastDropout(0.5)
    assert isinstance(module, nn.Dropout) and module.p == 0.5
    x = torch.ones(10_000)
    assert within((module(x) == 0).float().mean().item(), 0.5, 0.25, 10_000)
    assert module.eval()(x) is x


# ---- BERT-like attention ------------------------------------------------------------------------
def test_eager_attention_is_berts_eager_attention_without_dropout():
    from transformers.models.bert.modeling_bert import eager_attention_forward

    module = nn.Module().eval()
    query, key, value = (torch.randn(2, 4, 6, 8) for _ in range(3))
    mask = torch.zeros(2, 1, 6, 6)
    mask[0, ..., 4:] = torch.finfo(torch.float32).min  # the first text has 4 tokens
    ours = eager_attention(module, query, key, value, mask, scaling=0.3, dropout=0.1)
    theirs = eager_attention_forward(module, query, key, value, mask, scaling=0.3, dropout=0.1)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("model_type", sorted(BERT_ATTENTION_TYPES))
def test_each_listed_model_type_runs_berts_eager_attention(model_type):
    """The list's promise, checked against the installed transformers: the type's modeling module
    defines eager attention with BERT's very code, so `eager_attention` stands in for it."""
    from transformers.models.auto.configuration_auto import model_type_to_module_name
    from transformers.models.bert import modeling_bert

    name = model_type_to_module_name(model_type)
    modeling = importlib.import_module(f"transformers.models.{name}.modeling_{name}")

    def body(function):  # the code after the signature, so the module's own annotations do not matter
        source = inspect.getsource(function)
        return source[source.index("):\n") :]

    assert body(modeling.eager_attention_forward) == body(modeling_bert.eager_attention_forward)


def tiny_model(model_type: str, dropout: float = 0.1):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if model_type == "distilbert":
        sizes = {
            "dim": 32,
            "n_layers": 2,
            "n_heads": 4,
            "hidden_dim": 64,
            "dropout": dropout,
            "attention_dropout": dropout,
        }
    else:
        sizes = {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "hidden_dropout_prob": dropout,
            "attention_probs_dropout_prob": dropout,
        }
        if model_type == "electra":
            sizes["embedding_size"] = 32
    config = AutoConfig.for_model(model_type, vocab_size=99, max_position_embeddings=40, num_labels=3, **sizes)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def padded_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 99, (3, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 5:] = 0  # padding must stay masked out
    attention_mask[1, 9:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.mark.parametrize("model_type", sorted(BERT_ATTENTION_TYPES))
def test_a_bert_like_model_gives_the_same_logits_inside_and_gets_its_own_modules_back(model_type):
    model = tiny_model(model_type).eval()
    dropouts = {name: module for name, module in model.named_modules() if type(module) is nn.Dropout}
    batch = padded_batch()
    with torch.no_grad():
        stock = model(**batch).logits
        with fast_dropout_in(model) as changes:
            assert model.config._attn_implementation == ATTENTION
            assert not any(type(module) is nn.Dropout for module in model.modules())
            assert changes == [
                f"dropout masks drawn 16 bits at a time ({len(dropouts)} modules)",
                "eager attention with that dropout (instead of sdpa)",
            ]
            inside = model(**batch).logits
    torch.testing.assert_close(inside, stock, rtol=1e-5, atol=1e-5)
    assert model.config._attn_implementation == "sdpa"
    assert {name: module for name, module in model.named_modules() if type(module) is nn.Dropout} == dropouts


def test_training_inside_drops_attention_and_hidden_states_and_replays_by_seed():
    model = tiny_model("bert", dropout=0.3)
    batch = padded_batch()
    with torch.no_grad(), fast_dropout_in(model):
        model.eval()
        evaluated = model(**batch).logits
        model.train()
        torch.manual_seed(3)
        first = model(**batch).logits
        second = model(**batch).logits
        torch.manual_seed(3)
        replayed = model(**batch).logits
    assert torch.equal(first, replayed)
    assert not torch.allclose(first, second) and not torch.allclose(first, evaluated)
    assert model.training  # the mode set inside is the mode the restored modules have


def test_attention_of_another_kind_is_left_alone_and_its_dropout_modules_still_swapped():
    from transformers import MPNetConfig, MPNetForSequenceClassification

    config = MPNetConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        num_labels=3,
    )
    model = MPNetForSequenceClassification(config).eval()
    kernel = model.config._attn_implementation
    with fast_dropout_in(model) as changes:
        assert model.config._attn_implementation == kernel
        assert len(changes) == 1 and changes[0].startswith("dropout masks drawn")
    plain = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Dropout(0.2, inplace=True))
    with fast_dropout_in(plain) as changes:
        assert [type(m) for m in plain] == [nn.Linear, FastDropout, nn.Dropout]  # in place stays nn.Dropout's
        assert changes == ["dropout masks drawn 16 bits at a time (1 modules)"]
    assert [type(m) for m in plain] == [nn.Linear, nn.Dropout, nn.Dropout]


# ---- around training ------------------------------------------------------------------------------
def test_lean_cpu_training_applies_on_a_cpu_only():
    with lean_cpu_training(nn.Sequential()) as changes:  # nothing to train
        assert changes == []
    model = tiny_model("bert")
    with lean_cpu_training(model) as changes:
        assert changes == [
            "dropout masks drawn 16 bits at a time (8 modules)",
            "eager attention with that dropout (instead of sdpa)",
        ]
    if torch.cuda.is_available():
        with lean_cpu_training(model.cuda()) as changes:
            assert changes == [] and model.config._attn_implementation == "sdpa"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; a GPU trains with nn.Dropout")
def test_a_resumed_own_loop_run_replays_the_dropout_masks_of_an_uninterrupted_one(tmp_path, caplog, monkeypatch):
    hparams = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.3}
    train, dev = split("train", 64, 1), split("dev", 16, 2)
    config = TrainConfig(family="lstm", epochs=2, batch_size=16, lr=5e-3, max_length=32, early_stopping_patience=0)
    with caplog.at_level(logging.INFO, logger="textcls.training"):
        whole, summary = LSTMClassifier.fit(train, dev, list(TOPIC_WORDS), config, tmp_path / "whole", hparams=hparams)
    assert "training on a CPU: dropout masks drawn 16 bits at a time" in caplog.text
    write_checkpoint = loop.write_checkpoint

    def killed_after_the_first_epoch(checkpoint_dir, step, *rest):
        write_checkpoint(checkpoint_dir, step, *rest)
        raise KeyboardInterrupt  # as a kill right after the first checkpoint landed

    monkeypatch.setattr(loop, "write_checkpoint", killed_after_the_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        LSTMClassifier.fit(train, dev, list(TOPIC_WORDS), config, tmp_path / "cut", hparams=hparams)
    monkeypatch.setattr(loop, "write_checkpoint", write_checkpoint)
    resumed, resumed_summary = LSTMClassifier.fit(
        train, dev, list(TOPIC_WORDS), dataclasses.replace(config, resume=True), tmp_path / "cut", hparams=hparams
    )
    assert resumed_summary["resumed_from"] is not None
    assert [row["dev_loss"] for row in resumed_summary["epochs"]] == [row["dev_loss"] for row in summary["epochs"]]
    np.testing.assert_array_equal(resumed.predict_proba(dev.texts), whole.predict_proba(dev.texts))
    assert not any(isinstance(module, FastDropout) for module in whole.model.modules())


def test_the_run_on_a_cpu_logs_what_it_changed_and_returns_a_stock_model(tiny_bert, tmp_path, caplog):
    from textcls.models.pretrained import PretrainedClassifier

    config = TrainConfig(
        model=str(tiny_bert), epochs=1, batch_size=8, lr=1e-3, max_length=32, early_stopping_patience=0
    )
    with caplog.at_level(logging.INFO, logger="textcls.training"):
        classifier, _ = PretrainedClassifier.fit(
            split("train", 32, 1), split("dev", 16, 2), list(TOPIC_WORDS), config, tmp_path
        )
    on_cpu = not torch.cuda.is_available()
    assert ("training on a CPU: dropout masks drawn" in caplog.text) == on_cpu
    assert ("eager attention with that dropout" in caplog.text) == on_cpu
    assert classifier.model.config._attn_implementation == "sdpa"
    assert not any(isinstance(module, FastDropout) for module in classifier.model.modules())
