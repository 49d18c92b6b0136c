"""Attention explanations for every family, and the files `write_explanation` writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import TOPIC_WORDS
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.errors import StorageError, TextclsError
from textcls.reporting.explanations import Explanation, attention_rollout, explain
from textcls.reporting.html import highlight_html, write_explanation

LABELS = list(TOPIC_WORDS)
TEXT = "Striker scores a goal as the season opens"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_config(family: str) -> TrainConfig:
    return TrainConfig(
        family=family, epochs=1, batch_size=16, lr=1e-2, max_length=32, early_stopping_patience=0, seed=1
    )


# ---- classifiers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pretrained(tiny_bert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textcls.models.pretrained import PretrainedClassifier

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=4, ignore_mismatched_sizes=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    return PretrainedClassifier(model.eval(), tokenizer, LABELS, 32)


@pytest.fixture(scope="module")
def lstm_attention(tmp_path_factory):
    from textcls.models.rnn import AttentionLSTMClassifier

    hparams = {"embedding_dim": 16, "hidden_size": 16, "attention_dim": 8, "dropout": 0.1}
    classifier, _ = AttentionLSTMClassifier.fit(
        split("train", 32, 1),
        split("dev", 8, 2),
        LABELS,
        tiny_config("lstm-attention"),
        tmp_path_factory.mktemp("ckpt"),
        hparams=hparams,
    )
    return classifier


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    from textcls.models.scratch import ScratchTransformerClassifier

    hparams = {"d_model": 32, "num_heads": 4, "num_layers": 2, "ff_dim": 64, "dropout": 0.1}
    classifier, _ = ScratchTransformerClassifier.fit(
        split("train", 32, 1),
        split("dev", 8, 2),
        LABELS,
        tiny_config("scratch-transformer"),
        tmp_path_factory.mktemp("ckpt"),
        hparams=hparams,
    )
    return classifier


@pytest.fixture(scope="module")
def tfidf(tmp_path_factory):
    from textcls.models.linear import TfidfClassifier

    classifier, _ = TfidfClassifier.fit(
        split("train", 80, 1),
        split("dev", 16, 2),
        LABELS,
        TrainConfig(family="tfidf", seed=0),
        tmp_path_factory.mktemp("ckpt"),
    )
    return classifier


@pytest.fixture(params=["pretrained", "scratch"])
def transformer(request):
    return request.getfixturevalue(request.param)


# ---- rollout and words --------------------------------------------------------------------------
def test_rollout_mixes_in_the_residual_and_matches_a_hand_computation():
    uniform = np.full((1, 2, 4, 4), 0.25)  # one layer: 0.5 * uniform + 0.5 * identity, row of [CLS]
    np.testing.assert_allclose(attention_rollout(uniform), [0.625, 0.125, 0.125, 0.125])
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 5, 5))
    maps /= maps.sum(-1, keepdims=True)
    a1 = 0.5 * maps[0].mean(0) + 0.5 * np.eye(5)
    a2 = 0.5 * maps[1].mean(0) + 0.5 * np.eye(5)
    expected = (a2 @ a1)[0]
    np.testing.assert_allclose(attention_rollout(maps), expected)
    assert attention_rollout(maps).sum() == pytest.approx(1.0)
    with pytest.raises(TextclsError, match="expected shape"):
        attention_rollout(np.ones((2, 3)))


def test_words_merge_word_pieces_and_drop_special_tokens():
    expl = Explanation(
        text="playing ball",
        family="pretrained",
        label="Sports",
        probs={"Sports": 1.0},
        tokens=["[CLS]", "play", "##ing", "ball", "[SEP]"],
        token_weights=np.array([0.2, 0.2, 0.2, 0.2, 0.2]),
    )
    words = expl.words()
    assert [word for word, _ in words] == ["playing", "ball"]
    assert [weight for _, weight in words] == pytest.approx([2 / 3, 1 / 3])


# ---- transformer families -----------------------------------------------------------------------
def test_transformer_explanations_are_distributions(transformer):
    expl = explain(transformer, TEXT)
    layers, heads, rows, cols = expl.attention.shape
    assert rows == cols == len(expl.tokens) and layers == 2 and heads == 4
    assert expl.tokens[0] == "[CLS]" and expl.tokens[-1] == "[SEP]"
    np.testing.assert_allclose(expl.attention.sum(-1), 1.0, atol=1e-4)
    assert expl.token_weights.shape == (len(expl.tokens),)
    assert expl.token_weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert expl.rollout.shape == (len(expl.tokens),)
    assert np.all(expl.rollout >= 0) and expl.rollout.sum() == pytest.approx(1.0, abs=1e-5)
    assert (expl.layer, expl.head) == (layers - 1, None)
    np.testing.assert_allclose(expl.token_weights, expl.attention[-1, :, 0, :].mean(0), rtol=1e-5, atol=1e-6)
    assert expl.label in LABELS and sum(expl.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(weight for _, weight in expl.words()) == pytest.approx(1.0)


def test_layer_and_head_pick_what_token_weights_show(transformer):
    last = explain(transformer, TEXT)
    first = explain(transformer, TEXT, layer=0)
    one_head = explain(transformer, TEXT, layer=0, head=2)
    assert first.layer == 0 and one_head.head == 2
    assert not np.allclose(first.token_weights, last.token_weights)
    assert not np.allclose(one_head.token_weights, first.token_weights)
    np.testing.assert_allclose(one_head.token_weights, one_head.attention[0, 2, 0], rtol=1e-5, atol=1e-6)
    with pytest.raises(TextclsError, match="layer.*found 5"):
        explain(transformer, TEXT, layer=5)
    with pytest.raises(TextclsError, match="head.*found 4"):
        explain(transformer, TEXT, head=4)


def test_pretrained_prediction_matches_predict_proba_and_keeps_the_attention_setting(pretrained):
    before = pretrained.model.config._attn_implementation
    expl = explain(pretrained, TEXT)
    assert pretrained.model.config._attn_implementation == before
    expected = pretrained.predict_proba([TEXT])[0]
    np.testing.assert_allclose([expl.probs[name] for name in LABELS], expected, atol=1e-5)


# ---- other families -----------------------------------------------------------------------------
def test_lstm_attention_weights_are_the_pooling_weights(lstm_attention):
    expl = explain(lstm_attention, TEXT)
    assert expl.attention.shape == expl.token_weights.shape == (len(expl.tokens),)
    assert expl.token_weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert expl.rollout is None and expl.layer is None
    assert "goal" in [word for word, _ in expl.words()]


def test_tfidf_uses_top_ngrams(tfidf):
    expl = explain(tfidf, TEXT)
    assert expl.attention is None and expl.rollout is None
    assert list(zip(expl.tokens, expl.token_weights.tolist())) == tfidf.top_ngrams(TEXT, k=15)
    assert expl.label == "Sports"
    # features: the n-grams keep their raw scores (not merged as word pieces, not renormalised to sum 1)
    assert expl.features and expl.words() == tfidf.top_ngrams(TEXT, k=15)


def test_plain_lstm_has_no_attention():
    from textcls.models.encoders import embedded_model_path
    from textcls.models.neural import TOKENIZER_FILE, load_tokenizer
    from textcls.models.rnn import LSTMClassifier, LSTMModel

    hparams = {"embedding_dim": 8, "hidden_size": 8, "dropout": 0.0}
    tokenizer_file = embedded_model_path() / TOKENIZER_FILE
    classifier = LSTMClassifier(
        LSTMModel(30522, 4, **hparams), load_tokenizer(tokenizer_file), LABELS, 32, hparams, tokenizer_file
    )
    with pytest.raises(TextclsError, match="lstm family has no attention; use lstm-attention"):
        explain(classifier, TEXT)


def test_empty_text_is_rejected(tfidf):
    with pytest.raises(TextclsError, match="non-empty text"):
        explain(tfidf, "   ")


# ---- files --------------------------------------------------------------------------------------
def assert_png_not_blank(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 0
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.std() > 0


def check_common_files(paths, expl):
    data = json.loads(paths["explanation.json"].read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(expl.to_dict()))
    assert data["label"] == expl.label and data["tokens"] == expl.tokens
    np.testing.assert_allclose(data["token_weights"], expl.token_weights, rtol=1e-6)
    page = paths["explanation.html"].read_text(encoding="utf-8")
    assert '<img src="data:image/png;base64,' in page
    for word, _ in expl.words():
        assert word in page
    assert not list(paths["explanation.json"].parent.glob("*.tmp"))  # atomic writes leave no temp files


def test_write_explanation_for_a_transformer(pretrained, tmp_path):
    expl = explain(pretrained, TEXT, layer=0)
    paths = write_explanation(expl, tmp_path / "out")
    assert set(paths) == {"explanation.json", "explanation.html", "heatmap.png", "grid.png", "rollout.png"}
    for name in ("heatmap.png", "grid.png", "rollout.png"):
        assert_png_not_blank(paths[name])
    check_common_files(paths, expl)
    data = json.loads(paths["explanation.json"].read_text(encoding="utf-8"))
    assert np.asarray(data["attention"]).shape == expl.attention.shape and data["layer"] == 0
    assert "goal" in paths["explanation.html"].read_text(encoding="utf-8")


@pytest.mark.parametrize("family", ["lstm_attention", "tfidf"])
def test_write_explanation_for_weights_only_families(family, request, tmp_path):
    expl = explain(request.getfixturevalue(family), TEXT)
    paths = write_explanation(expl, tmp_path)
    assert set(paths) == {"explanation.json", "explanation.html", "weights.png"}
    assert_png_not_blank(paths["weights.png"])
    check_common_files(paths, expl)


def test_highlight_html_escapes_and_scales_to_the_largest_weight():
    fragment = highlight_html([("<b>", 0.2), ("stocks", 0.4)], title="a & b")
    assert "&lt;b&gt;" in fragment and "<b>" not in fragment and "a &amp; b" in fragment
    assert "rgba(255, 140, 0, 1.000)" in fragment and "rgba(255, 140, 0, 0.500)" in fragment
    assert 'title="0.4000"' in fragment


def test_classifier_explain_method_and_save(lstm_attention, tmp_path):
    explanation = lstm_attention.explain("shares profit merger")
    assert explanation.family == "lstm-attention" and explanation.label in explanation.probs
    written = explanation.save(tmp_path / "out")
    assert {"explanation.json", "explanation.html", "weights.png"} <= {path.name for path in written.values()}
    assert all(path.stat().st_size > 0 for path in written.values())


def test_a_failed_explanation_leaves_the_previous_one_whole_and_a_new_one_replaces_it_all(
    pretrained, tfidf, tmp_path, monkeypatch
):
    import errno

    from textcls.reporting import plots

    out = tmp_path / "out"
    write_explanation(explain(pretrained, TEXT), out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def full_disk(*args, **kwargs):
        raise StorageError(errno.ENOSPC, "could not write weights.png: No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(plots, "token_bars", full_disk)  # after explanation.json is written
        with pytest.raises(StorageError):
            write_explanation(explain(tfidf, "a different text entirely"), out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # not half of each

    paths = write_explanation(explain(tfidf, "a different text entirely"), out)
    assert (
        sorted(path.name for path in out.iterdir())
        == sorted(paths)
        == ["explanation.html", "explanation.json", "weights.png"]
    )
