"""The encoder-decoder: attention weights, masking, decoding, persistence, data errors and generators.

Tiny models (embedding 16, GRUs of 16/32) on generated pairs; nothing downloads.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textcls import seq2seq
from textcls.errors import ConfigError, DataError, RunFolderError
from textcls.seq2seq.config import Seq2SeqConfig
from textcls.seq2seq.model import Seq2Seq
from textcls.seq2seq.pairs import EOS, Vocabulary, read_pairs, resolve_token_mode
from textcls.seq2seq.scoring import length_bucket, scores, scores_by_length
from textcls.seq2seq.tasks import MAX_WORDS, MIN_WORDS, lexicon, make_pairs
from textcls.seq2seq.training import pad_ids

TINY = {"embedding_size": 16, "encoder_hidden": 16, "decoder_hidden": 32, "attention_size": 16, "dropout": 0.0}


def _tiny_model(attention: str = "additive", seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(30, 20, attention=attention, **TINY).eval()


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    sources = [list(rng.integers(4, 30, size=n)) + [EOS] for n in (7, 3, 11)]
    return pad_ids(sources)


# ---- attention and masking ----------------------------------------------------------------------
def test_attention_rows_sum_to_one_and_padding_gets_exactly_zero_weight():
    model = _tiny_model()
    source_ids, source_mask = _batch()
    target_in = torch.randint(4, 20, (3, 5))
    _, weights = model(source_ids, source_mask, target_in)  # (batch, target, source)
    assert weights.shape == (3, 5, source_ids.shape[1])
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    padding = ~source_mask.bool()
    assert padding.any()
    assert (weights.masked_select(padding[:, None, :].expand_as(weights)) == 0).all()
    assert (weights.masked_select(~padding[:, None, :].expand_as(weights)) > 0).all()


def test_no_attention_model_returns_no_weights():
    model = _tiny_model("none")
    source_ids, source_mask = _batch()
    logits, weights = model(source_ids, source_mask, torch.randint(4, 20, (3, 4)))
    assert logits.shape == (3, 4, 20) and weights is None


@pytest.mark.parametrize("attention", ["additive", "none"])
def test_masking_makes_the_output_independent_of_padding(attention):
    model = _tiny_model(attention)
    source_ids, source_mask = _batch()
    target_in = torch.randint(4, 20, (3, 6))
    logits, weights = model(source_ids, source_mask, target_in)
    for row in range(3):
        length = int(source_mask[row].sum())
        # the same source alone (no padding), and with 9 extra pad columns of garbage-free zeros
        alone_logits, alone_weights = model(
            source_ids[row : row + 1, :length], source_mask[row : row + 1, :length], target_in[row : row + 1]
        )
        wide_ids = torch.cat([source_ids[row : row + 1], torch.zeros(1, 9, dtype=torch.long)], dim=1)
        wide_mask = torch.cat([source_mask[row : row + 1], torch.zeros(1, 9, dtype=torch.long)], dim=1)
        wide_logits, _ = model(wide_ids, wide_mask, target_in[row : row + 1])
        torch.testing.assert_close(logits[row : row + 1], alone_logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(wide_logits, alone_logits, atol=1e-5, rtol=1e-5)
        if weights is not None:
            torch.testing.assert_close(weights[row : row + 1, :, :length], alone_weights, atol=1e-6, rtol=1e-5)


def test_beam_of_one_equals_greedy_decoding():
    model = _tiny_model(seed=3)
    source_ids, source_mask = _batch(seed=1)
    greedy_ids, greedy_weights = model.greedy(source_ids, source_mask, max_steps=12)
    for row in range(3):
        length = int(source_mask[row].sum())
        ids, weights = model.beam(
            source_ids[row : row + 1, :length], source_mask[row : row + 1, :length], 1, max_steps=12
        )
        expected = greedy_ids[row].tolist()
        expected = expected[: expected.index(EOS) + 1] if EOS in expected else expected
        assert ids == expected
        torch.testing.assert_close(weights, greedy_weights[row, : len(ids), :length], atol=1e-6, rtol=1e-5)


def test_decoding_never_emits_padding_or_the_start_token():
    """An untrained decoder that favours <pad> and <s> still outputs neither: each output token labels one
    row of the alignment, and decode() drops both when it turns ids into words."""
    from textcls.seq2seq.pairs import BOS, PAD

    model = _tiny_model(seed=3)
    with torch.no_grad():
        model.output.bias[PAD] += 50.0  # the argmax everywhere, but for the rule
        model.output.bias[BOS] += 40.0
    source_ids, source_mask = _batch(seed=1)
    ids, weights = model.greedy(source_ids, source_mask, max_steps=9)
    assert not {PAD, BOS} & set(ids[:, 0].tolist()) and ids.shape[1] == 9 == weights.shape[1]
    beam_ids, _ = model.beam(source_ids[:1, :8], source_mask[:1, :8], 3, max_steps=9)
    assert not {PAD, BOS} & set(beam_ids)


def test_a_wider_beam_never_scores_below_greedy_per_token():
    model = _tiny_model(seed=5)
    source_ids, source_mask = _batch(seed=2)
    ids, _ = model.beam(source_ids[:1, :8], source_mask[:1, :8], 4, max_steps=10)
    assert 1 <= len(ids) <= 10


# ---- training and persistence -------------------------------------------------------------------
@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
    """A small model trained on 20 short reorder pairs (train = dev) until it has learned them."""
    folder = tmp_path_factory.mktemp("pairs")
    pairs = [(s, t) for s, t in make_pairs("reorder", 400, seed=7) if len(s.split()) <= 8][:20]
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    result = seq2seq.train(
        folder,
        tmp_path_factory.mktemp("runs") / "overfit",
        epochs=60,
        batch_size=10,
        lr=1e-2,
        dropout=0.0,
        embedding_size=32,
        encoder_hidden=32,
        decoder_hidden=64,
        attention_size=32,
        early_stopping_patience=0,
        threads=1,
    )
    return result, pairs


def test_the_model_overfits_twenty_pairs(overfit_run):
    result, pairs = overfit_run
    outputs = [t.text for t in result.run.translate([s for s, _ in pairs])]
    assert outputs == [t for _, t in pairs]
    assert result.metrics["dev"]["exact_match"] == 1.0
    assert result.metrics["training"]["best_epoch"] is not None


def test_save_and_load_give_identical_translations(overfit_run):
    result, pairs = overfit_run
    loaded = seq2seq.load(result.run_dir)
    sources = [s for s, _ in pairs[:5]] + ["an unknown word or two"]
    before, after = result.run.translate(sources), loaded.translate(sources)
    assert [t.text for t in before] == [t.text for t in after]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a.attention, b.attention)
        assert a.attention.shape == (len(a.output_tokens), len(a.source_tokens))
    assert loaded.translate(sources[:2], beam=3)[0].text == pairs[0][1]


def test_loading_a_classification_run_or_a_damaged_one_is_a_clear_error(overfit_run, tmp_path):
    result, _ = overfit_run
    from textcls import runfolder

    classification = tmp_path / "clf"
    (classification / "model").mkdir(parents=True)
    runfolder.write_run(classification, {"family": "lstm", "label_names": ["a", "b"], "max_length": 8}, {})
    with pytest.raises(RunFolderError, match="expected a seq2seq run, found family 'lstm'"):
        seq2seq.load(classification)
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(result.run_dir, damaged)
    weights = damaged / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RunFolderError, match="damaged"):
        seq2seq.load(damaged)


def test_an_interrupted_run_resumes_to_the_same_history(tmp_path, monkeypatch):
    from textcls import runfolder
    from textcls.seq2seq import api

    folder = tmp_path / "pairs"
    folder.mkdir()
    pairs = make_pairs("reorder", 60, seed=4)
    (folder / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[:48]), encoding="utf-8")
    (folder / "dev.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs[48:]), encoding="utf-8")
    options = {**TINY, "dropout": 0.2, "batch_size": 16, "early_stopping_patience": 0, "threads": 1}
    straight = seq2seq.train(folder, tmp_path / "straight", epochs=2, **options)

    def crash(*_):
        raise KeyboardInterrupt  # killed after epoch 1's checkpoint, before the run moved into place

    with monkeypatch.context() as patch:
        patch.setattr(api.runfolder, "move_into_place", crash)
        with pytest.raises(KeyboardInterrupt):
            seq2seq.train(folder, tmp_path / "resumed", epochs=1, **options)
    assert (runfolder.partial_dir(tmp_path / "resumed") / "checkpoints" / "checkpoint-1").is_dir()
    resumed = seq2seq.train(folder, tmp_path / "resumed", epochs=2, resume=True, **options)
    keys = ("epoch", "step", "train_loss", "dev_loss", "dev_token_accuracy")

    def flat(result):
        return [row[k] for row in result.metrics["training"]["history"] for k in keys]

    assert flat(resumed) == pytest.approx(flat(straight), rel=1e-5)


# ---- data ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content, message",
    [
        (
            "a b\tx y\nno tab here\n",
            r"bad\.tsv, line 2: expected 'source<TAB>target' \(exactly one tab\), found no tab",
        ),
        ("a b\tx y\na\tb\tc\n", r"bad\.tsv, line 2: .* found 2 tabs"),
        ("a b\tx y\n\t x y\n", r"bad\.tsv, line 2, field 'source': expected text, found it empty"),
        ("a b\tx y\nc d\t  \n", r"bad\.tsv, line 2, field 'target': expected text, found it empty"),
    ],
)
def test_bad_tsv_rows_name_the_file_line_and_field(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_pairs(path)


def test_csv_and_jsonl_pairs_and_their_errors(tmp_path):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text('en,fr\n"the red car","la voiture rouge"\n', encoding="utf-8")
    with pytest.raises(
        DataError, match=r"pairs\.csv, line 1: expected columns 'source' and 'target'.*found \['en', 'fr'\]"
    ):
        read_pairs(csv_path)
    pairs = read_pairs(csv_path, source_column="en", target_column="fr")
    assert pairs.sources == ["the red car"] and pairs.targets == ["la voiture rouge"]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"source": "a", "target": "b"}\n{"source": "c"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.jsonl, line 2, field 'target': expected the key"):
        read_pairs(jsonl)


def test_header_line_and_token_modes(tmp_path):
    path = tmp_path / "with_header.tsv"
    path.write_text("source\ttarget\nMarch 3, 2009\t2009-03-03\n", encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.sources == ["March 3, 2009"]
    assert resolve_token_mode("auto", pairs.targets) == "chars"
    assert resolve_token_mode("auto", ["la voiture"]) == "words"
    vocabulary = Vocabulary.build(["a b a"], "words")
    assert vocabulary.tokens[4] == "a" and vocabulary.encode("a zz", "words") == [4, 3, EOS]
    assert vocabulary.decode([4, 5, EOS, 4]) == ["a", "b"]


def test_config_rejects_bad_values_with_the_field_and_fix():
    with pytest.raises(ConfigError, match=r"attention: expected one of \['additive', 'none'\], found 'luong'"):
        Seq2SeqConfig(attention="luong")
    with pytest.raises(ConfigError, match=r"dropout: expected a number in \[0, 1\)"):
        Seq2SeqConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="unknown option"):
        Seq2SeqConfig.from_options({"hidden": 3})


# ---- generators and scores ----------------------------------------------------------------------
def test_dates_put_the_year_first_and_match_the_source():
    import datetime

    for source, target in make_pairs("dates", 300, seed=2):
        day = datetime.date.fromisoformat(target)
        assert str(day.year)[-2:] in source
        if any(
            name in source for name in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
        ):
            assert day.strftime("%A") in source
    assert make_pairs("dates", 5, seed=1) == make_pairs("dates", 5, seed=1)


def test_reorder_maps_words_through_the_dictionary_and_swaps_adjective_noun_pairs():
    words = lexicon()
    translation = {s: t for kind in words.values() for s, t in zip(*kind)}
    adjectives, nouns = set(words["adjective"][0]), set(words["noun"][0])
    pairs = make_pairs("reorder", 200, seed=3)
    lengths = [len(source.split()) for source, _ in pairs]
    assert min(lengths) >= MIN_WORDS and max(lengths) <= MAX_WORDS and max(lengths) - min(lengths) > 40
    for source, target in pairs:
        tokens, expected, i = source.split(), [], 0
        while i < len(tokens):
            if i + 1 < len(tokens) and tokens[i] in adjectives and tokens[i + 1] in nouns:
                expected += [translation[tokens[i + 1]], translation[tokens[i]]]
                i += 2
            else:
                expected.append(translation[tokens[i]])
                i += 1
        assert target.split() == expected


def test_scores_and_length_buckets():
    result = scores(["a b c", "x"], ["a b c", "y"], "words")
    assert result["exact_match"] == 0.5 and result["token_accuracy"] == 0.75 and result["pairs"] == 2
    assert length_bucket(5, 20) == (1, 20) and length_bucket(41, 20) == (41, 60) and length_bucket(60, 20) == (41, 60)
    rows = scores_by_length(["w " * 5, "w " * 45], ["a", "b"], ["a", "c"], "words")
    assert [(r["bucket"], r["exact_match"]) for r in rows] == [("1-20", 1.0), ("41-60", 0.0)]


def test_a_leap_day_written_with_a_two_digit_year_stays_a_date():
    # 2096-02-29 written as 2/29/96 reads as 1996... and was moved to 2046, which has no 29 February
    import datetime

    from textcls.seq2seq import tasks

    class Draw:  # the day and the format the generator draws
        def __init__(self, fmt: int):
            self.fmt = fmt

        def randint(self, low: int, high: int) -> int:
            return datetime.date(2096, 2, 29).toordinal()

        def randrange(self, n: int) -> int:
            return self.fmt

    two_digit = [i for i, (short_year, _) in enumerate(tasks._FORMATS) if short_year]
    assert two_digit
    for fmt in two_digit:
        source, target = tasks._date_pair(Draw(fmt))
        assert datetime.date.fromisoformat(target) == datetime.date(2046, 2, 28) and "46" in source
