"""--long-text: which tokens of a long text the model reads, and how window logits become the text's."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from textcls.config import TrainConfig
from textcls.data.windows import Windowing, special_tokens
from textcls.errors import ConfigError
from textcls.models.neural import load_tokenizer
from textcls.training.loaders import TokenizedRows
from textcls.training.tokens import encode_windows

CLS, SEP = 101, 102


def text_ids(length: int) -> list[int]:
    """[CLS] 1 2 ... length-2 [SEP]: `length` ids in all."""
    return [CLS, *range(1, length - 1), SEP]


def test_short_texts_are_left_whole_by_every_strategy():
    for strategy in ("truncate", "head-tail", "chunk"):
        windows = Windowing(16, strategy, stride=4 if strategy == "chunk" else None).cut([text_ids(10)], 1, 1)
        assert [w.tolist() for w in windows.sequences] == [text_ids(10)]
        assert windows.offsets.tolist() == [0, 1]


def test_truncate_keeps_the_start_and_the_special_tokens():
    (window,) = Windowing(8, "truncate").cut([text_ids(30)], 1, 1).sequences
    assert window.tolist() == [CLS, 1, 2, 3, 4, 5, 6, SEP]


def test_head_tail_keeps_a_quarter_from_the_start_and_the_rest_from_the_end():
    (window,) = Windowing(18, "head-tail").cut([text_ids(50)], 1, 1).sequences
    # room 16: the first 4 tokens and the last 12
    assert window.tolist() == [CLS, 1, 2, 3, 4, *range(37, 49), SEP]


def test_chunk_windows_overlap_by_the_stride_and_reach_the_end():
    windows = Windowing(8, "chunk", stride=2).cut([text_ids(5), text_ids(20)], 1, 1)
    bodies = [w[1:-1].tolist() for w in windows.sequences]
    assert bodies == [
        [1, 2, 3],
        [1, 2, 3, 4, 5, 6],
        [5, 6, 7, 8, 9, 10],
        [9, 10, 11, 12, 13, 14],
        [13, 14, 15, 16, 17, 18],
    ]
    assert all(w[0] == CLS and w[-1] == SEP and len(w) <= 8 for w in windows.sequences)
    assert windows.owner.tolist() == [0, 1, 1, 1, 1] and windows.offsets.tolist() == [0, 1, 5]


@pytest.mark.parametrize("pooling, expected", [("mean", [[1.0, 1.0], [0.0, 5.0]]), ("max", [[2.0, 2.0], [0.0, 5.0]])])
def test_window_logits_pool_to_each_texts_mean_or_max(pooling, expected):
    windows = Windowing(8, "chunk", stride=0, pooling=pooling).cut([text_ids(14), text_ids(6)], 1, 1)
    assert windows.offsets.tolist() == [0, 2, 3]
    logits = np.array([[0.0, 2.0], [2.0, 0.0], [0.0, 5.0]])
    assert windows.pool(logits).tolist() == expected


def test_stats_count_the_texts_over_max_length_and_by_how_much():
    stats = Windowing(10, "truncate").cut([text_ids(5), text_ids(14), text_ids(30)], 1, 1).stats()
    assert stats["exceeding"] == 2 and stats["median_excess_tokens"] == 12 and stats["max_excess_tokens"] == 20
    assert stats["max_tokens"] == 30


def test_special_tokens_are_found_from_the_tokenizer_itself():
    tokenizer = load_tokenizer()
    assert special_tokens(lambda text: tokenizer.encode(text).ids) == (1, 1)
    assert special_tokens(lambda text: [7, *([5] * len(text))]) == (1, 0)  # a start token only


def test_training_logs_how_many_texts_exceed_max_length(caplog):
    tokenizer = load_tokenizer()
    texts = ["short text", "word " * 100, "stocks " * 40]
    with caplog.at_level(logging.INFO, logger="textcls.training"):
        token_ids, windows = encode_windows(tokenizer, texts, Windowing(32, "truncate"), desc="tokenising train")
    assert "tokenising train: 2 of 3 texts (66.7%) exceed max_length 32 tokens" in caplog.text
    assert "drops their ends" in caplog.text
    assert token_ids.lengths.tolist() == [4, 32, 32]


def test_chunked_rows_batch_every_window_of_their_texts_with_an_owner_map():
    tokenizer = load_tokenizer()
    token_ids, windows = encode_windows(tokenizer, ["a b", "word " * 30], Windowing(16, "chunk", stride=4), cache=False)
    rows = TokenizedRows(token_ids, [0, 1], pad_id=0, windows=windows)
    assert len(rows) == 2 and len(token_ids) == len(windows) > 2
    batch = rows.__getitems__([1, 0])
    assert batch["labels"].tolist() == [1, 0]
    owners = batch["window_owner"].tolist()
    assert owners == [0] * (len(windows) - 1) + [1] and batch["input_ids"].shape[0] == len(windows)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"long_text": "middle"}, r"^long_text: expected one of \('truncate', 'head-tail', 'chunk'\)"),
        ({"long_text": "truncate", "stride": 8}, r"^stride: expected no value unless long_text is 'chunk'"),
        ({"long_text": "chunk", "stride": 100, "max_length": 64}, r"^stride: expected an overlap in \[0, 32\]"),
        ({"long_text": "chunk", "pooling": "sum"}, r"^pooling: expected one of \('mean', 'max'\)"),
    ],
)
def test_bad_long_text_options_are_clear_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options)


def test_chunk_gets_a_quarter_of_max_length_as_its_default_stride():
    assert TrainConfig(long_text="chunk", max_length=128).stride == 32
