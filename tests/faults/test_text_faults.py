"""Fault tests for the text itself, wherever it comes in: data files, pair files, classes files,
`predict`/`explain` arguments and the Python API.

A text that no UTF-8 file can hold (a lone surrogate: a byte that is not UTF-8, or a JSON
"\\ud800" escape without its pair) is refused where it is read, naming the file, row (line) and
field; a text of only whitespace, zero-width characters or NULs is blank; a file in another
encoding names it; labels that differ only in case are warned about.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import textcls
from tests.conftest import write_ag_news_folder
from tests.unit.test_data import write_csv
from textcls.config import DataConfig
from textcls.data.loading import load_data, read_texts
from textcls.errors import DataError, TextclsError
from textcls.seq2seq.pairs import read_pairs

BLANKS = ["\u200b", "\u200c\u200d", "\ufeff", "\u2060", "\x00", " \u200b\t\x00 "]


def topic_rows(count: int = 8) -> list[list[object]]:
    return [["text", "label"]] + [[f"story {i}", ["World", "Sports"][i % 2]] for i in range(count)]


def load_error(folder: Path) -> str:
    with pytest.raises(DataError) as raised:
        load_data(DataConfig(data=str(folder)))
    return str(raised.value)


def assert_names(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def jsonl_line(text: str, label: str = "Sports") -> bytes:
    """One JSON Lines row; a lone surrogate comes out as its escape ("\\ud800"), as json.dumps writes it."""
    return (json.dumps({"text": text, "label": label}) + "\n").encode()


def good_jsonl(count: int = 6) -> bytes:
    return b"".join(jsonl_line(f"story {i}", ["World", "Sports"][i % 2]) for i in range(count))


# ---- lone surrogates and bytes that are not UTF-8, where data is read ------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("train.jsonl", good_jsonl() + jsonl_line("bad \ud800 half"), ["row 7", "line 7", "'text'", "U+D800"]),
        ("train.jsonl", good_jsonl() + jsonl_line("fine", "Sp\udfffrts"), ["row 7", "line 7", "'label'", "U+DFFF"]),
        (
            "train.json",
            b"[" + good_jsonl(4).replace(b"\n", b",") + b'{"text": "\\ud83d", "label": "World"}]',
            ["row 5"],
        ),
        ("train.csv", b"text,label\none,World\ntwo,Sports\ncaf\xe9,World\n", ["row 3", "line 4", "'text'", "0xe9"]),
        (
            "train.tsv",
            b"text\tlabel\none\tWorld\ntwo\tSports\n\xff\xfe!\tWorld\n",
            ["row 3", "line 4", "'text'", "0xff"],
        ),
    ],
)
def test_text_that_utf8_cannot_hold_is_a_row_error(
    tmp_path: Path, name: str, content: bytes, fragments: list[str]
) -> None:
    (tmp_path / name).write_bytes(content)
    assert_names(load_error(tmp_path), name, *fragments)


def test_a_parquet_cell_that_is_not_utf8_is_a_row_error_naming_the_byte(tmp_path: Path) -> None:
    texts = [b"story one", b"story two", b"story \xff three", b"story four"]
    table = pyarrow.table(
        {
            "text": pyarrow.array(texts, pyarrow.binary()).cast(pyarrow.string(), safe=False),
            "label": ["World", "Sports", "World", "Sports"],
        }
    )
    pyarrow.parquet.write_table(table, tmp_path / "train.parquet")
    assert_names(load_error(tmp_path), "train.parquet", "row 3", "'text'", "0xff")


def test_skip_bad_rows_drops_a_lone_surrogate_row_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_bytes(good_jsonl() + jsonl_line("bad \ud800"))
    loaded = load_data(DataConfig(data=str(tmp_path), skip_bad_rows=True))
    assert loaded.skipped_rows == 1 and sum(map(len, loaded.splits.values())) == 6


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        (
            "pairs.jsonl",
            b'{"source": "a", "target": "b"}\n{"source": "x \\ud800", "target": "y"}\n',
            ["line 2", "'source'", "U+D800"],
        ),
        ("pairs.tsv", b"a\tb\nc\td\ne\tf\xff\n", ["line 3", "'target'", "0xff"]),
        ("pairs.csv", b"source,target\na,b\n\xe9t\xe9,summer\n", ["line 3", "'source'", "0xe9"]),
    ],
)
def test_seq2seq_pair_files_refuse_lone_surrogates_naming_line_and_field(
    tmp_path: Path, name: str, content: bytes, fragments: list[str]
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as raised:
        read_pairs(tmp_path / name)
    assert_names(str(raised.value), name, *fragments)


def test_a_predict_input_txt_line_that_is_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    (tmp_path / "texts.txt").write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(DataError) as raised:
        read_texts(tmp_path / "texts.txt")
    assert_names(str(raised.value), "texts.txt", "line 2", "0xe9", "UTF-8")


def lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(character) <= 0xDFFF for character in text)


def blank(text: str) -> bool:
    return all(character.isspace() or character in "".join(BLANKS) for character in text)


# any character, lone surrogates (what json.loads gives for "\ud800" escapes) and blank ones drawn often
CHARACTERS = st.one_of(st.characters(), st.sampled_from(["\ud800", "\udcff", "\udfff", " ", *"".join(BLANKS)]))


@settings(max_examples=80, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(CHARACTERS, min_size=1, max_size=12).map("".join))
def test_a_jsonl_text_loads_as_written_or_fails_and_every_loaded_text_is_utf8(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "train.jsonl").write_bytes(good_jsonl(4) + jsonl_line(text))
        if lone_surrogate(text) or blank(text):
            with pytest.raises(DataError, match="row 5"):
                load_data(DataConfig(data=folder), splits=("train",))
            return
        loaded = load_data(DataConfig(data=folder), splits=("train",))
    assert loaded.splits["train"].texts[4] == text.strip()
    for loaded_text in loaded.splits["train"].texts:
        loaded_text.encode("utf-8")  # what saving a vocabulary or writing predictions needs


# ---- the Python API and the command line -------------------------------------------------------


@pytest.fixture(scope="module")
def tfidf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text_faults")
    data = write_ag_news_folder(root / "data", n_train=48, n_dev=16, n_test=0)
    return textcls.train(data=str(data), out=root / "run", family="tfidf").run_dir


@pytest.mark.parametrize(
    ("texts", "fragments"),
    [
        (None, ["expected a list of texts", "NoneType"]),
        ([1, 2], ["texts[0]", "int", "expected a string"]),
        (["fine", b"bytes"], ["texts[1]", "bytes"]),
        (["fine", "bad \ud800"], ["texts[1]", "U+D800"]),
        (["caf\udce9"], ["texts[0]", "0xe9", "not UTF-8"]),
    ],
)
def test_the_api_refuses_what_is_not_a_list_of_texts_naming_index_and_type(
    tfidf_run: Path, texts: object, fragments: list[str]
) -> None:
    run = textcls.load(tfidf_run)
    for predict in (run.predict, run.predict_proba, run.classifier.predict):
        with pytest.raises(TextclsError) as raised:
            predict(texts)  # type: ignore[arg-type]
        assert_names(str(raised.value), *fragments)


def test_the_api_predicts_any_iterable_of_texts(tfidf_run: Path) -> None:
    run = textcls.load(tfidf_run, textcls.PredictConfig(backend="torch"))
    texts = ["goal scored in the match", "shares fell on the market"]

    def generated() -> Iterator[str]:
        yield from texts

    expected = run.predict(texts)
    assert run.predict(generated()) == expected
    assert run.predict(text for text in texts) == expected
    assert run.predict(dict.fromkeys(texts)) == expected
    assert run.predict_proba(generated()).shape == (2, len(run.label_names))


def test_explain_refuses_a_lone_surrogate_and_a_zero_width_only_text(tfidf_run: Path) -> None:
    run = textcls.load(tfidf_run)
    with pytest.raises(DataError, match="U\\+D800"):
        run.explain("bad \ud800 text")
    for blank in BLANKS:
        with pytest.raises(TextclsError, match="expected a non-empty text to explain"):
            run.explain(blank)


def cli(*args: str | bytes | Path) -> subprocess.CompletedProcess[str]:
    """`python -m textcls ARGS` in a fresh process; bytes arguments reach it as raw bytes, as a shell passes them."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "LC_ALL": "C.UTF-8"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(textcls.__file__).parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "textcls", *args], capture_output=True, text=True, errors="replace", env=env, timeout=300
    )


def test_cli_text_arguments_that_are_not_utf8_are_a_clear_error(tfidf_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "predictions.jsonl"
    predicted = cli("predict", tfidf_run, "fine text", b"caf\xe9 news", "--output", output)
    explained = cli("explain", tfidf_run, b"caf\xe9 news", "--out", tmp_path / "explain")
    for result in (predicted, explained):
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "0xe9" in result.stderr and "not UTF-8" in result.stderr, result.stderr[-2000:]
    assert "text argument 2" in predicted.stderr
    assert not output.exists() and not (tmp_path / "explain").exists()


# ---- labels that differ only in case ------------------------------------------------------------


def test_labels_differing_only_in_case_are_warned_about_with_their_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = topic_rows(8) + [["late story", "sports"], ["later story", "sports"], ["odd one", "WORLD"]]
    write_csv(tmp_path / "train.csv", rows)
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        loaded = load_data(DataConfig(data=str(tmp_path)), splits=("train",))
    assert loaded.label_names == ["Sports", "WORLD", "World", "sports"]  # not merged
    assert_names(caplog.text, "'Sports' (4 rows), 'sports' (2 rows)", "'WORLD' (1 rows), 'World' (4 rows)")
    assert "differ only in case" in caplog.text


def test_labels_of_one_spelling_are_not_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(8))
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        load_data(DataConfig(data=str(tmp_path)), splits=("train",))
    assert "differ only in case" not in caplog.text


# ---- classes files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line"), [("World\n\nSports\n", 2), ("\nWorld\nSports", 1), ("World\n\u200b\nSports\n", 2)]
)
def test_a_blank_line_in_a_classes_file_is_an_error_naming_the_line(tmp_path: Path, content: str, line: int) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(8))
    (tmp_path / "classes.txt").write_text(content, encoding="utf-8")
    assert_names(load_error(tmp_path), "classes.txt", f"line {line}", "blank line")


@pytest.mark.parametrize("content", ["World\nSports\n", "World\nSports", "World\r\nSports\r\n", "World\nSports\n\n"])
def test_a_classes_file_may_end_with_a_newline(tmp_path: Path, content: str) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(8))
    (tmp_path / "classes.txt").write_text(content, encoding="utf-8")
    assert load_data(DataConfig(data=str(tmp_path))).label_names == ["World", "Sports"]


# ---- files in another encoding -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ("utf-16-le", "UTF-16 (little-endian)"),
        ("utf-16-be", "UTF-16 (big-endian)"),
        ("utf-32-le", "UTF-32 (little-endian)"),
    ],
)
def test_a_utf16_data_file_names_its_encoding_and_the_fix(tmp_path: Path, encoding: str, named: str) -> None:
    content = "\ufeff" + "text,label\n" + "".join(f"story {i},{['World', 'Sports'][i % 2]}\n" for i in range(6))
    (tmp_path / "train.csv").write_bytes(content.encode(encoding))
    assert_names(load_error(tmp_path), "train.csv", named, "re-save the file as UTF-8")


def test_utf16_classes_txt_pairs_and_predict_input_name_their_encoding(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(8))
    (tmp_path / "classes.txt").write_text("World\nSports\n", encoding="utf-16")
    assert_names(load_error(tmp_path), "classes.txt", "UTF-16", "re-save the file as UTF-8")
    (tmp_path / "pairs.tsv").write_text("a\tb\nc\td\n", encoding="utf-16")
    with pytest.raises(DataError, match="UTF-16.*re-save the file as UTF-8"):
        read_pairs(tmp_path / "pairs.tsv")
    (tmp_path / "texts.txt").write_text("one\ntwo\n", encoding="utf-16")
    with pytest.raises(DataError, match="UTF-16.*re-save the file as UTF-8"):
        read_texts(tmp_path / "texts.txt")


# ---- blank texts and lines ---------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n\n", "\n \n", "\r\n\r\n", "\n\u200b\n\n"])
def test_blank_lines_at_the_end_of_a_predict_input_txt_are_ignored(tmp_path: Path, ending: str) -> None:
    (tmp_path / "texts.txt").write_text("first text\nsecond text" + ending, encoding="utf-8", newline="")
    assert read_texts(tmp_path / "texts.txt") == ["first text", "second text"]


@pytest.mark.parametrize("blank", BLANKS)
def test_a_zero_width_or_nul_only_line_of_a_predict_input_txt_is_blank(tmp_path: Path, blank: str) -> None:
    (tmp_path / "texts.txt").write_text(f"first text\n{blank}\nthird text\n", encoding="utf-8")
    with pytest.raises(DataError) as raised:
        read_texts(tmp_path / "texts.txt")
    assert_names(str(raised.value), "texts.txt", "line 2", "found a blank")


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("name", ["train.csv", "train.jsonl"])
def test_a_zero_width_or_nul_only_text_is_an_empty_text_row(tmp_path: Path, name: str, blank: str) -> None:
    rows = topic_rows(6) + [[blank, "World"]]
    if name.endswith(".csv"):
        write_csv(tmp_path / name, rows)
    else:
        (tmp_path / name).write_bytes(b"".join(jsonl_line(str(text), str(label)) for text, label in rows[1:]))
    assert_names(load_error(tmp_path), name, "row 7", "'text'", "empty text")


@pytest.mark.parametrize("blank", BLANKS)
def test_a_zero_width_or_nul_only_pair_field_is_empty(tmp_path: Path, blank: str) -> None:
    (tmp_path / "pairs.jsonl").write_text(
        json.dumps({"source": "a", "target": "b"}) + "\n" + json.dumps({"source": "c", "target": blank}) + "\n"
    )
    with pytest.raises(DataError) as raised:
        read_pairs(tmp_path / "pairs.jsonl")
    assert_names(str(raised.value), "pairs.jsonl", "line 2", "'target'", "found it empty")


def test_a_pretraining_corpus_refuses_other_encodings_and_bad_bytes_and_drops_blank_lines(tmp_path: Path) -> None:
    from textcls.data.unlabeled import read_unlabeled_texts

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes("first line\n\u200b\x00\n  \nsecond line\n".encode())
    assert read_unlabeled_texts(str(corpus)) == ["first line", "second line"]
    corpus.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"corpus\.txt, line 2: .*0xe9"):
        read_unlabeled_texts(str(corpus))
    corpus.write_bytes("one\ntwo\n".encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16"):
        read_unlabeled_texts(str(corpus))
