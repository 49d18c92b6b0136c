"""pretraining.py on a tiny random BERT: masking, the loss, resume, reuse by `train`, fill-mask, bad sources."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import textcls
from tests.conftest import make_texts, write_ag_news_folder
from textcls import runfolder
from textcls.config import PretrainConfig
from textcls.data.unlabeled import read_unlabeled_texts
from textcls.errors import DataError, RunFolderError, TextclsError
from textcls.runs.pretraining import (
    carry_pooler,
    fill_mask,
    load_masked_lm,
    masked_lm_head,
    masked_positions_trainer,
    masked_token_scores,
    masking_collator,
    pretrain,
    start_head_from_data,
    token_counts,
)


def write_text(path: Path, n: int = 120, seed: int = 3) -> Path:
    path.write_text("\n".join(f"{title} {body}" for _, title, body in make_texts(n, seed)) + "\n", encoding="utf-8")
    return path


def tiny_config(tiny_bert: Path, data: Path, **overrides) -> PretrainConfig:
    values = {
        "data": str(data),
        "model": str(tiny_bert),
        "epochs": 1,
        "batch_size": 16,
        "lr": 1e-3,
        "max_length": 32,
        "precision": "fp32",
        "pseudo_perplexity_texts": 5,
        "seed": 1,
    }
    return PretrainConfig(**{**values, **overrides})


def test_the_head_on_masked_positions_only_gives_the_models_own_loss_and_gradients(tiny_bert, tmp_path):
    from transformers import TrainingArguments

    tokenizer, model, _ = load_masked_lm(str(tiny_bert))
    assert masked_lm_head(model) is model.cls  # BERT's head: the fast path is taken, not the fallback
    assert masked_lm_head(torch.nn.Sequential(model)) is None  # a wrapped model keeps its own forward
    texts = [f"{title} {body}" for _, title, body in make_texts(16, 5)]
    encoded = tokenizer(texts, truncation=True, max_length=32, return_special_tokens_mask=True)
    inputs = masking_collator(tokenizer, tiny_config(tiny_bert, tmp_path), seed=0)(
        [{k: encoded[k][i] for k in encoded} for i in range(16)]
    )
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    trainer = masked_positions_trainer(model=model, args=args)

    def loss_and_grads(compute):
        model.zero_grad()
        loss = compute()
        loss.backward()
        return loss.item(), [
            p.grad.clone()
            for p in (
                model.bert.encoder.layer[0].attention.self.query.weight,
                model.cls.predictions.transform.dense.weight,
            )
        ]

    fast, fast_grads = loss_and_grads(lambda: trainer.compute_loss(model, dict(inputs)))
    own, own_grads = loss_and_grads(lambda: model(**inputs).loss)
    assert fast == pytest.approx(own, rel=1e-5)
    for a, b in zip(fast_grads, own_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_fresh_head_starts_from_the_texts_token_shares_and_predicts_better_than_drawn(tiny_bert, tmp_path):
    from datasets import Dataset

    tokenizer, model, fresh = load_masked_lm(str(tiny_bert))
    assert fresh  # the tiny BERT is saved without an MLM head, like the embedded MiniLM
    texts = [f"{title} {body}" for _, title, body in make_texts(200, 7)]
    rows = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=32, return_special_tokens_mask=True),
        batched=True,
    )
    counts = token_counts(rows, model.config.vocab_size)
    assert counts[tokenizer.cls_token_id] == counts[tokenizer.sep_token_id] == 0  # special tokens are never predicted
    assert counts.sum() == sum(len(ids) - 2 for ids in rows["input_ids"])
    config = tiny_config(tiny_bert, tmp_path)
    drawn = masked_token_scores(model, tokenizer, texts, config)

    assert start_head_from_data(model, counts)
    head = model.cls.predictions
    torch.testing.assert_close(head.transform.dense.weight, torch.eye(model.config.hidden_size))
    shares = (counts + 0.5) / (counts.sum() + 0.5 * len(counts))
    torch.testing.assert_close(head.bias, torch.log(torch.as_tensor(shares, dtype=torch.float32)))
    assert int(head.bias.argmax()) == int(counts.argmax())
    assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight  # still tied
    started = masked_token_scores(model, tokenizer, texts, config)
    assert started["masked_loss"] < drawn["masked_loss"] - 0.5, (drawn, started)

    model.save_pretrained(tmp_path / "with-head")
    tokenizer.save_pretrained(tmp_path / "with-head")
    _, reloaded, fresh = load_masked_lm(str(tmp_path / "with-head"))
    assert not fresh  # a model with its own head keeps it
    torch.testing.assert_close(reloaded.cls.predictions.bias, head.bias)


def test_pretrain_starts_a_fresh_head_from_the_text_unless_asked_for_a_drawn_one(tiny_bert, tmp_path):
    corpus = write_text(tmp_path / "text.txt", n=40)
    short = {"epochs": 0.01, "pseudo_perplexity_texts": 0}
    started = pretrain(tiny_config(tiny_bert, corpus, **short), tmp_path / "data")["held_out"]["before"]
    drawn = pretrain(tiny_config(tiny_bert, corpus, fresh_head="random", **short), tmp_path / "random")["held_out"][
        "before"
    ]
    assert started["masked_loss"] < drawn["masked_loss"] - 0.5
    with pytest.raises(ValueError, match="fresh_head"):
        tiny_config(tiny_bert, corpus, fresh_head="zeros")


@pytest.mark.parametrize("whole_words", [False, True])
def test_masking_picks_about_15_percent_and_never_special_tokens_or_padding(tiny_bert, whole_words):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    config = PretrainConfig(data="x", whole_word_masking=whole_words)
    texts = [f"{t} {d}" for _, t, d in make_texts(400, 5)]
    encoded = tokenizer(
        texts, truncation=True, max_length=32, return_special_tokens_mask=True, return_offsets_mapping=whole_words
    )
    rows = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # transformers warns when whole words meet the default 80/10/10 split
        collator = masking_collator(tokenizer, config, seed=0)
    batch = collator(rows)
    chosen = batch["labels"] != -100  # (rows, seq)
    padded = tokenizer.pad({"input_ids": encoded["input_ids"]}, return_tensors="pt")
    special = torch.isin(padded["input_ids"], torch.tensor(tokenizer.all_special_ids))  # [CLS], [SEP], [PAD]
    assert not (chosen & special).any()
    rate = chosen.sum().item() / (~special).sum().item()
    assert 0.12 < rate < 0.18, rate
    # 80% of the chosen tokens become [MASK] (all of them with whole words: transformers then never
    # swaps in random tokens); the labels keep the original ids
    masked = (batch["input_ids"] == tokenizer.mask_token_id) & chosen
    share = masked.sum().item() / chosen.sum().item()
    assert share == 1.0 if whole_words else 0.7 < share < 0.9
    assert (batch["labels"][chosen] == padded["input_ids"][chosen]).all()
    if whole_words:  # a piece that continues a word is chosen exactly when the piece before it is
        tokens = [tokenizer.convert_ids_to_tokens(row) for row in padded["input_ids"].tolist()]
        for row, pieces in enumerate(tokens):
            for position, piece in enumerate(pieces):
                if piece.startswith("##"):
                    assert chosen[row, position] == chosen[row, position - 1]


@pytest.fixture(scope="module")
def pretrained_run(tiny_bert, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("mlm")
    # a small corpus repeated, so six epochs can learn it; a quarter held out (~100 masked tokens, not ~13:
    # one token's flip then moves the accuracy by 0.01, not 0.08, and the check below stops being a coin toss)
    corpus = write_text(root / "text.txt", n=40)
    corpus.write_text(corpus.read_text() * 5)
    metrics = pretrain(tiny_config(tiny_bert, corpus, epochs=6, lr=1e-2, holdout_fraction=0.25), root / "run")
    return root / "run", metrics


def test_the_loss_falls_on_a_repeated_corpus_and_the_run_describes_itself(pretrained_run):
    run, metrics = pretrained_run
    before, after = metrics["held_out"]["before"], metrics["held_out"]["after"]
    # the fresh head starts at the corpus's token shares (the unigram loss); training must go below it
    assert after["masked_loss"] < before["masked_loss"] - 0.25
    assert before["masked_tokens"] >= 50
    assert after["masked_accuracy"] > before["masked_accuracy"] + 0.05, (before, after)  # +0.12 to +0.20 over seeds 1-5
    assert after["pseudo_perplexity"] < before["pseudo_perplexity"]
    info = json.loads((run / "textcls.json").read_text())
    assert info["family"] == runfolder.PRETRAINING_FAMILY and info["data"]["held_out"] >= 1
    assert "model.safetensors" in info["model_files"]
    assert not [p for p in run.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl")]


def test_train_fine_tunes_the_pretrained_encoder(pretrained_run, tmp_path):
    from safetensors.torch import load_file

    run, _ = pretrained_run
    data = write_ag_news_folder(tmp_path / "data", n_train=32, n_dev=16, n_test=0)
    # epochs tiny and lr ~0: the classifier's encoder must still hold the pre-trained weights
    result = textcls.train(
        data=str(data),
        out=tmp_path / "cls",
        model=str(run),
        epochs=0.05,
        lr=1e-12,
        batch_size=8,
        max_length=32,
        precision="fp32",
    )
    encoder = load_file(run / "model" / "model.safetensors")
    classifier = load_file(tmp_path / "cls" / "model" / "model.safetensors")
    for name in ("bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight"):
        torch.testing.assert_close(classifier[name], encoder[name])
    info = json.loads((tmp_path / "cls" / "textcls.json").read_text())
    assert info["encoder_from"] == str(run.resolve())
    assert result.metrics["train"]["model"] == str(run / "model")


def test_the_run_keeps_the_source_models_pooler_which_masked_lm_models_lack(pretrained_run, tiny_bert, tmp_path):
    from safetensors.torch import load_file
    from transformers import BertForMaskedLM

    run, _ = pretrained_run
    saved, source = load_file(run / "model" / "model.safetensors"), load_file(tiny_bert / "model.safetensors")
    for name in ("bert.pooler.dense.weight", "bert.pooler.dense.bias"):  # untouched by pre-training: the source's
        torch.testing.assert_close(saved[name], source[name])
    _, model, _ = load_masked_lm(str(tiny_bert))
    assert model.bert.pooler is None  # what `carry_pooler` is for
    assert carry_pooler(model, str(tiny_bert)) and model.bert.pooler is not None
    assert not carry_pooler(model, str(tiny_bert))  # it has one now
    BertForMaskedLM(model.config).save_pretrained(tmp_path / "no-pooler")  # a source that ships none
    _, other, _ = load_masked_lm(str(tmp_path / "no-pooler"))
    assert not carry_pooler(other, str(tmp_path / "no-pooler")) and other.bert.pooler is None


def test_a_pretraining_run_is_not_loaded_as_a_classifier(pretrained_run):
    run, _ = pretrained_run
    with pytest.raises(RunFolderError, match="textcls train --model"):
        textcls.load(run)


def test_fill_mask_lists_the_top_words_most_probable_first(pretrained_run):
    run, _ = pretrained_run
    (words,) = fill_mask(run, "the striker scored a [MASK] .", top_k=4)
    assert len(words) == 4
    probabilities = [p for _, p in words]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-6
    assert len(fill_mask(run, "[MASK] shares [MASK]", top_k=2)) == 2  # one list per mask
    with pytest.raises(TextclsError, match=r"expected \[MASK\]"):
        fill_mask(run, "no mask here")
    with pytest.raises(
        TextclsError, match=r"expected every \[MASK\] within the model's \d+ tokens, found 1 of 2 beyond"
    ):
        fill_mask(run, "[MASK] " + "shares " * 600 + "[MASK] end")  # the second mask lies past the token limit


def test_nothing_masked_is_a_zero_loss_and_no_score_not_nan_or_perfect(tiny_bert, tmp_path):
    from transformers import TrainingArguments

    tokenizer, model, _ = load_masked_lm(str(tiny_bert))
    encoded = tokenizer(["goal", "stocks"], truncation=True, max_length=32, return_special_tokens_mask=True)
    inputs = masking_collator(tokenizer, tiny_config(tiny_bert, tmp_path), seed=0)(
        [{k: encoded[k][i] for k in encoded} for i in range(2)]
    )
    inputs["labels"][:] = -100  # a batch in which the draw masked nothing
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    loss = masked_positions_trainer(model=model, args=args).compute_loss(model, dict(inputs))
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph
    scores = masked_token_scores(model, tokenizer, ["\u200b"], tiny_config(tiny_bert, tmp_path))  # no token to mask
    assert scores["masked_tokens"] == 0 and scores["masked_loss"] is None and scores["perplexity"] is None


def test_resume_continues_an_interrupted_pretraining(tiny_bert, tmp_path, monkeypatch):
    corpus = write_text(tmp_path / "text.txt", n=64)
    out = tmp_path / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed once training had checkpointed its epoch

    monkeypatch.setattr(runfolder, "move_into_place", killed)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_config(tiny_bert, corpus, epochs=1), out)
    monkeypatch.undo()
    first_steps = len(list((tmp_path / ".run.partial" / "checkpoints").glob("checkpoint-*")))
    assert first_steps == 1
    metrics = pretrain(tiny_config(tiny_bert, corpus, epochs=2, resume=True), out)
    assert metrics["train"]["resumed_from"].endswith("checkpoint-4")  # 61 texts / batch 16 = 4 steps an epoch
    assert metrics["train"]["global_step"] == 8


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ("", ".txt", "expected unlabelled text"),
        ("\n \n\n", ".txt", "expected unlabelled text"),
        ("label\n1\n2\n", ".csv", "text"),  # a label column and nothing to read
    ],
)
def test_empty_or_label_only_sources_are_clear_errors(tmp_path, content, suffix, message):
    source = tmp_path / f"source{suffix}"
    source.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_unlabeled_texts(str(source))


def test_a_folder_of_text_files_and_a_split_folder_are_read(tmp_path):
    (tmp_path / "texts").mkdir()
    write_text(tmp_path / "texts" / "a.txt", n=3)
    write_text(tmp_path / "texts" / "b.txt", n=2)
    assert len(read_unlabeled_texts(str(tmp_path / "texts"))) == 5
    folder = write_ag_news_folder(tmp_path / "ag", n_train=12, n_dev=4, n_test=4)
    assert len(read_unlabeled_texts(str(folder))) == 12  # the train file only; labels ignored


def test_a_classifier_or_seq2seq_run_given_as_the_encoder_says_what_it_is(tiny_run, tmp_path):
    from textcls.models.encoders import resolve_model

    with pytest.raises(
        TextclsError,
        match=r"found a textcls 'pretrained' run in .*; to start from its fine-tuned encoder, pass .*model",
    ):
        resolve_model(str(tiny_run))
    assert resolve_model(str(tiny_run / "model")) == str(tiny_run / "model")  # its encoder folder itself is fine
    seq2seq = tmp_path / "s2s"
    seq2seq.mkdir()
    (seq2seq / "textcls.json").write_text(json.dumps({"format_version": 1, "family": "seq2seq"}))
    with pytest.raises(TextclsError, match="found a textcls 'seq2seq' run"):
        fill_mask(seq2seq, "a [MASK] b")
