"""Fault tests for textcls.data: nothing lost, nothing silently wrong.

Each test writes a small bad file, runs ``load_data`` on it and asserts the fixed behaviour: a
``DataError`` naming file, row (line) and field, or a warning. The property tests at the end write
malformed CSV/TSV/JSONL files and check that only ``DataError`` ever escapes and that a load that
succeeds returns exactly the rows written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.parquet
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_data import write_csv, write_jsonl
from textcls.config import DataConfig
from textcls.data.loading import load_data
from textcls.errors import DataError, TextclsError

NAMES = ["World", "Sports", "Business", "Sci/Tech"]


def data_config(**options: Any) -> DataConfig:
    return DataConfig(**options)


def topic_rows(labels: list[str]) -> list[list[Any]]:
    """Header plus one distinct text per label."""
    return [["text", "label"]] + [[f"story {i} about {label}", label] for i, label in enumerate(labels)]


def load_error(config: DataConfig, **kwargs: Any) -> str:
    with pytest.raises(DataError) as raised:
        load_data(config, **kwargs)
    return str(raised.value)


def assert_names(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ---- row 2 (a): a dev/test label that train lacks ------------------------------------------------


def new_label_folder(folder: Path, dev_label: str = "Business") -> Path:
    write_csv(folder / "train.csv", topic_rows(["World", "Sports"] * 4))
    write_csv(folder / "dev.csv", topic_rows(["World", dev_label]))
    return folder


def test_dev_label_that_train_lacks_is_an_error_naming_file_row_and_field(tmp_path: Path) -> None:
    message = load_error(data_config(data=str(new_label_folder(tmp_path))))
    assert_names(message, "dev.csv", "row 2", "line 3", "field 'label'", "'Business'", "--allow-new-labels")
    assert "expected a label that train has (one of ['Sports', 'World'])" in message


def test_test_label_that_train_lacks_fails_a_training_load_too(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(["World", "Sports"] * 4))
    write_csv(tmp_path / "test.csv", topic_rows(["Sports", "World", "Business"]))
    message = load_error(data_config(data=str(tmp_path)), splits=("train", "dev"))
    assert_names(message, "test.csv", "row 3", "line 4", "field 'label'", "'Business'")


def test_allow_new_labels_turns_the_error_into_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = data_config(data=str(new_label_folder(tmp_path)), allow_new_labels=True)
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        loaded = load_data(config)
    assert loaded.label_names == ["Business", "Sports", "World"]
    assert [loaded.label_names[label] for label in loaded.splits["dev"].labels] == ["World", "Business"]
    assert "labels that train lacks, ['Business']" in caplog.text and "--allow-new-labels" in caplog.text


def test_a_split_read_only_for_the_label_list_warns_about_new_labels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = new_label_folder(tmp_path, dev_label="World")
    write_csv(folder / "test.csv", topic_rows(["Sports", "Business"]))
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        loaded = load_data(data_config(data=str(folder)), splits=("dev",), require_train=False)
    assert loaded.label_names == ["Business", "Sports", "World"]  # train and evaluate still agree on the list
    assert "test.csv: 1 rows carry labels that train lacks, ['Business'] (first at row 2)" in caplog.text


def test_skipped_new_label_rows_leave_the_label_list(tmp_path: Path) -> None:
    loaded = load_data(data_config(data=str(new_label_folder(tmp_path)), skip_bad_rows=True))
    assert loaded.label_names == ["Sports", "World"]
    assert loaded.skipped_rows == 1 and len(loaded.splits["dev"]) == 1


# ---- row 2 (b): did you mean ---------------------------------------------------------------------


@pytest.mark.parametrize("typo, meant", [("Sprots", "Sports"), ("sports", "Sports"), ("Wor ld", "World")])
def test_a_near_miss_label_without_classes_file_gets_did_you_mean(tmp_path: Path, typo: str, meant: str) -> None:
    message = load_error(data_config(data=str(new_label_folder(tmp_path, dev_label=typo))))
    assert_names(message, "dev.csv", "row 2", f"found {typo!r} (did you mean {meant!r}?)")


@pytest.mark.parametrize("typo, meant", [("Sprots", "Sports"), ("Sci / Tech", "Sci/Tech"), ("Busines", "Business")])
def test_a_near_miss_label_with_classes_file_gets_did_you_mean(tmp_path: Path, typo: str, meant: str) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(NAMES * 2 + [typo]))
    (tmp_path / "classes.txt").write_text("\n".join(NAMES) + "\n")
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.csv", "row 9", "field 'label'", f"unknown label {typo!r} (did you mean {meant!r}?)")


def test_a_far_label_gets_no_suggestion(tmp_path: Path) -> None:
    message = load_error(data_config(data=str(new_label_folder(tmp_path, dev_label="Weather"))))
    assert "'Weather'" in message and "did you mean" not in message


# ---- row 2 (c): NaN, null, None and empty labels are missing -------------------------------------


@pytest.mark.parametrize("missing", ["NaN", "nan", "null", "None", "", " "])
def test_a_missing_value_label_is_an_error_not_a_class(tmp_path: Path, missing: str) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(["World", "Sports", missing, "World", "Sports"]))
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.csv", "row 3", "line 4", "field 'label'", "empty label")


@pytest.mark.parametrize("missing", ["NaN", "null", "None"])
def test_a_missing_value_label_is_skipped_with_skip_bad_rows(tmp_path: Path, missing: str) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(["World", "Sports", missing, "World", "Sports"]))
    loaded = load_data(data_config(data=str(tmp_path), skip_bad_rows=True), splits=("train",))
    assert loaded.label_names == ["Sports", "World"] and loaded.skipped_rows == 1
    assert len(loaded.splits["train"]) == 4


def test_a_json_null_label_is_missing(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate(["a", "b", None, "a"])]
    write_jsonl(tmp_path / "train.jsonl", rows)
    assert_names(load_error(data_config(data=str(tmp_path))), "train.jsonl", "row 3", "field 'label'", "empty label")


# ---- row 2 (d): delimited rows with more or fewer fields than the header -------------------------


def test_a_csv_row_with_an_extra_field_is_an_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\nfine,World\nhello, world,Sports\nok,Sports\n")
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.csv", "row 2", "line 3", "expected 2 fields as in the header, found 3")


def test_a_tsv_row_shifted_by_a_stray_tab_is_not_reported_as_empty_text(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("text\tlabel\nfine\tWorld\n\tCup final won\tSports\nok\tSports\n")
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.tsv", "row 2", "line 3", "expected 2 fields as in the header, found 3")
    assert "empty text" not in message


def test_a_row_short_of_an_unused_column_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label,source\na,World,x\nb,Sports\nc,Sports,y\n")
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.csv", "row 2", "line 3", "field 'source'", "missing field", "found 2")


def test_a_header_with_a_repeated_column_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label,text\na,World,b\nc,Sports,d\n")
    assert_names(load_error(data_config(data=str(tmp_path))), "train.csv", "line 1", "['text'] more than once")


def test_text_after_a_closing_quote_is_an_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text('text,label\n"a",World\n"b"c,Sports\n')
    assert_names(load_error(data_config(data=str(tmp_path))), "train.csv", "line 3", "cannot parse")


def test_a_quote_left_open_is_reported_at_the_line_it_opens(tmp_path: Path) -> None:
    # the open quote swallows every line after it; the error names where the row began
    lines = ["text,label", "a,World", "b,Sports", '"c opens a quote,World'] + [f"row {k},World" for k in range(40)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    assert_names(load_error(data_config(data=str(tmp_path))), "train.csv", "line 4:", "read on to line 44")


def test_a_json_file_holding_an_array_of_rows_loads_and_its_bad_items_are_named(tmp_path: Path) -> None:
    rows = [{"text": "summit talks", "label": "World"}, {"text": "goal scored", "label": "Sports"}]
    (tmp_path / "train.json").write_text(json.dumps(rows, indent=2))
    train = load_data(data_config(data=str(tmp_path / "train.json")), splits=("train",)).splits["train"]
    assert sorted(train.texts) == ["goal scored", "summit talks"]
    (tmp_path / "train.json").write_text(json.dumps([*rows, 7]))
    assert_names(load_error(data_config(data=str(tmp_path / "train.json"))), "train.json", "row 3", "found int")
    (tmp_path / "train.json").write_text('[{"text": "a",\n "label": "World"')
    assert_names(load_error(data_config(data=str(tmp_path / "train.json"))), "train.json", "line 2", "invalid JSON")


def test_a_parquet_string_that_is_not_utf8_is_a_row_error(tmp_path: Path) -> None:
    texts = pyarrow.array([b"fine text", b"bad \xff text", b"more text", b"last"], type=pyarrow.binary()).view(
        pyarrow.string()
    )
    labels = ["World", "Sports", "World", "Sports"]
    pyarrow.parquet.write_table(pyarrow.table({"text": texts, "label": labels}), tmp_path / "train.parquet")
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.parquet", "row 2", "field 'text'", "not UTF-8")
    skipped = load_data(data_config(data=str(tmp_path), skip_bad_rows=True), splits=("train",))
    assert skipped.skipped_rows == 1


# ---- row 3: a text that is not a string ----------------------------------------------------------


@pytest.mark.parametrize("value, kind", [({"title": "x"}, "an object"), (["a", "b"], "a list"), (True, "a boolean")])
def test_a_jsonl_text_that_is_not_a_string_is_an_error(tmp_path: Path, value: Any, kind: str) -> None:
    rows = [{"text": "fine", "label": "a"}, {"text": value, "label": "b"}, {"text": "ok", "label": "b"}]
    write_jsonl(tmp_path / "train.jsonl", rows)
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.jsonl", "row 2", "line 2", "field 'text'", f"expected a string, found {kind}")


def test_a_jsonl_label_that_is_an_object_is_an_error(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": {"name": "y"}}])
    assert_names(load_error(data_config(data=str(tmp_path))), "row 2", "field 'label'", "found an object")


def test_a_jsonl_number_text_is_still_accepted(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"text": 42, "label": "a"}, {"text": 1.5, "label": "b"}])
    assert load_data(data_config(data=str(tmp_path)), splits=("train",)).splits["train"].texts == ["42", "1.5"]


def test_a_parquet_list_text_is_an_error(tmp_path: Path) -> None:
    table = pyarrow.table({"text": [["a"], ["b", "c"]], "label": ["x", "y"]})
    pyarrow.parquet.write_table(table, tmp_path / "train.parquet")
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.parquet", "row 1", "field 'text'", "found a list")


# ---- row 4: one class in train -------------------------------------------------------------------


def test_a_train_set_with_one_class_is_an_error_naming_it(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", topic_rows(["World"] * 6))
    message = load_error(data_config(data=str(tmp_path)))
    assert_names(message, "train.csv", "expected at least 2 classes in train, found only 'World'")


def test_one_class_with_a_classes_file_prints_the_name_not_the_index(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [["text", "label"]] + [[f"t{i}", 1] for i in range(6)])
    (tmp_path / "classes.txt").write_text("\n".join(NAMES) + "\n")
    assert "found only 'Sports'" in load_error(data_config(data=str(tmp_path)))


def test_tfidf_one_class_message_prints_names(tmp_path: Path) -> None:
    from textcls.config import TrainConfig
    from textcls.data.loading import Split
    from textcls.models.linear import TfidfClassifier

    train = Split("train", ["goal coach", "season goal"], [1, 1], "generated")
    with pytest.raises(TextclsError) as raised:
        TfidfClassifier.fit(train, train, NAMES, TrainConfig(family="tfidf"), tmp_path)
    assert "found only ['Sports']" in str(raised.value) and "[1]" not in str(raised.value)


# ---- row 6: a path-looking --data that does not exist --------------------------------------------


@pytest.fixture()
def no_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """datasets.load_dataset replaced by an offline failure that records the ids asked for."""
    import datasets

    calls: list[str] = []

    def offline(dataset_id: str) -> None:
        calls.append(dataset_id)
        raise ConnectionError(f"Couldn't reach '{dataset_id}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    return calls


@pytest.mark.parametrize("value", ["data/ag/train", "news.txt", "train.parquet", "./absent", "data\\crlf", "my data"])
def test_a_missing_path_is_not_sent_to_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub: list[str], value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    message = load_error(data_config(data=value))
    assert f"no such file or folder: {value} (resolved to {(tmp_path / value).resolve()})" in message
    assert no_hub == []


def test_an_owner_name_value_goes_to_the_hub_and_says_no_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    message = load_error(data_config(data="data/crlf"))
    assert no_hub == ["data/crlf"]
    assert_names(message, "could not reach the Hugging Face hub", "no local file or folder named data/crlf exists")


def test_an_existing_owner_name_folder_is_read_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub: list[str]
) -> None:
    folder = tmp_path / "data" / "crlf"
    folder.mkdir(parents=True)
    write_csv(folder / "train.csv", topic_rows(["World", "Sports"] * 5))
    monkeypatch.chdir(tmp_path)
    assert len(load_data(data_config(data="data/crlf"), splits=("train",)).splits["train"]) == 10
    assert no_hub == []


# ---- row 10: very long texts ---------------------------------------------------------------------


def test_a_csv_holding_one_5_mb_text_loads(tmp_path: Path) -> None:
    long_text = "word " * 1_000_000  # 5 MB, past csv's default field limit of 131072
    write_csv(tmp_path / "train.csv", [["text", "label"], [long_text, "a"], ["short", "b"]])
    loaded = load_data(data_config(data=str(tmp_path), max_text_chars=8_000_000), splits=("train",))
    assert loaded.splits["train"].texts == [long_text.strip(), "short"]


def test_a_text_over_max_text_chars_is_an_error_naming_row_field_and_flag(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [["text", "label"], ["short", "a"], ["x" * 2_000, "b"]])
    message = load_error(data_config(data=str(tmp_path), max_text_chars=1_000))
    assert_names(message, "train.csv", "row 2", "line 3", "field 'text'", "found 2,000", "--max-text-chars")


# ---- row 13: train/dev overlap -------------------------------------------------------------------


def overlap_folder(folder: Path, repeats: int) -> Path:
    train = topic_rows(["World", "Sports"] * 50)
    dev = [["text", "label"]] + [[f"dev story {i}", "World"] for i in range(20 - repeats)]
    dev += [[f"  STORY {i}   about {label.upper()} ", label] for i, label in enumerate(["World", "Sports"][:repeats])]
    write_csv(folder / "train.csv", train)
    write_csv(folder / "dev.csv", dev)
    return folder


def test_train_dev_overlap_above_one_percent_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        load_data(data_config(data=str(overlap_folder(tmp_path, repeats=2))))
    warnings = [
        r.getMessage() for r in caplog.records if r.name.startswith("textcls.data") and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "2 of 20 dev rows (10.0%) repeat a train text" in warnings[0]


def test_no_overlap_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        load_data(data_config(data=str(overlap_folder(tmp_path, repeats=0))))
    assert "repeat a train text" not in caplog.text


# ---- property tests: malformed files --------------------------------------------------------------

FAST = settings(
    max_examples=80, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
GOOD_LABELS = ["World", "Sports", "Business", " World ", "Sports "]
BAD_LABELS = ["NaN", "nan", "null", "None", "", "  ", "Sprots"]
MISSING = {"", "nan", "null", "none"}
CHARACTERS = st.characters(blacklist_categories=("Cs",))  # any text a user could save as UTF-8
CELL_TEXT = st.text(CHARACTERS, min_size=1, max_size=20)
TSV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\r\n"), min_size=1, max_size=20)
CORRUPTIONS = ("none",) * 6 + ("drop field", "extra field", "undecodable", "bad label")
MUST_FAIL: list[str] = []  # a written row that no correct loader may accept (the oracle sees a wrong field count)


@st.composite
def split_rows(draw: st.DrawFn, text: st.SearchStrategy[str]) -> list[list[str]]:
    """2..8 rows of [text, label], good labels; one row may carry a corruption."""
    rows = draw(st.lists(st.tuples(text, st.sampled_from(GOOD_LABELS)), min_size=2, max_size=8))
    rows = [list(row) for row in rows]
    corruption = draw(st.sampled_from(CORRUPTIONS))
    target = rows[draw(st.integers(0, len(rows) - 1))]
    if corruption == "drop field":
        target[0] = "x" + target[0]  # a lone empty field would be a blank line, which carries no row
        target.pop()
    elif corruption == "extra field":
        target.append(draw(text))
    elif corruption == "undecodable":
        target[0] += "\udcff"  # written as the byte 0xff (surrogateescape)
    elif corruption == "bad label":
        target[1] = draw(st.sampled_from(BAD_LABELS))
    return rows


def encode_delimited(rows: list[list[str]], fmt: str, quoting: int, bom: bool) -> bytes:
    if fmt == "tsv":
        content = "".join("\t".join(row) + "\n" for row in [["text", "label"], *rows])
    else:
        buffer = io.StringIO()
        csv.writer(buffer, quoting=quoting).writerows([["text", "label"], *rows])
        content = buffer.getvalue()
    return ("\ufeff" if bom else "").encode() + content.encode("utf-8", "surrogateescape")


def expected_split(rows: list[list[str]], train_labels: set[str] | None, classes: bool) -> list[tuple[str, str]] | None:
    """What a correct loader returns for ``rows``: (text, label name) pairs, or None when it must fail."""
    expected = []
    for row in rows:
        if len(row) != 2 or "\udcff" in row[0]:
            return None
        text, label = row[0].strip(), row[1].strip()
        if not text or label.lower() in MISSING or (classes and label not in NAMES):
            return None
        if not classes and train_labels is not None and label not in train_labels:
            return None
        expected.append((text, label))
    return expected


def check_load(folder: Path, files: dict[str, list[list[str]]], classes: bool) -> None:
    """Loads ``folder`` and compares with the oracle: exactly the rows written, or a DataError."""
    train = expected_split(files["train"], None, classes)
    expected = {"train": train}
    if "dev" in files:
        train_labels = {label for _, label in train} if train is not None else None
        expected["dev"] = expected_split(files["dev"], train_labels, classes)
    fails = any(rows is None for rows in expected.values()) or len({label for _, label in train}) < 2
    splits = tuple(expected)
    if fails:
        with pytest.raises(DataError):
            load_data(data_config(data=str(folder)), splits=splits)
        return
    loaded = load_data(data_config(data=str(folder)), splits=splits)
    for name, rows in expected.items():
        split = loaded.splits[name]
        assert list(zip(split.texts, (loaded.label_names[label] for label in split.labels))) == rows


@FAST
@given(
    fmt=st.sampled_from(["csv", "tsv"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    bom=st.booleans(),
    classes=st.booleans(),
    data=st.data(),
)
def test_delimited_files_load_exactly_as_written_or_fail_with_data_error(
    fmt: str, quoting: int, bom: bool, classes: bool, data: st.DataObject
) -> None:
    text = TSV_TEXT if fmt == "tsv" else CELL_TEXT
    files = {"train": data.draw(split_rows(text), "train")}
    if data.draw(st.booleans(), "with dev"):
        files["dev"] = data.draw(split_rows(text), "dev")
    with tempfile.TemporaryDirectory() as folder:
        for name, rows in files.items():
            (Path(folder) / f"{name}.{fmt}").write_bytes(encode_delimited(rows, fmt, quoting, bom))
        if classes:
            (Path(folder) / "classes.txt").write_text("\n".join(NAMES) + "\n")
        check_load(Path(folder), files, classes)


JSONL_CORRUPTIONS = ("none", "none", "not a string", "number text", "truncated", "no label", "extra key", "undecodable")
JSON_VALUES = st.one_of(
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
    st.booleans(),
)


@FAST
@given(
    rows=st.lists(st.tuples(CELL_TEXT, st.sampled_from(GOOD_LABELS)), min_size=2, max_size=8),
    corruption=st.sampled_from(JSONL_CORRUPTIONS),
    ensure_ascii=st.booleans(),
    data=st.data(),
)
def test_jsonl_files_load_exactly_as_written_or_fail_with_data_error(
    rows: list[tuple[str, str]], corruption: str, ensure_ascii: bool, data: st.DataObject
) -> None:
    objects: list[dict[str, Any]] = [{"text": text, "label": label} for text, label in rows]
    target = data.draw(st.integers(0, len(rows) - 1), "row")
    written = [[text, label] for text, label in rows]
    if corruption == "not a string":
        objects[target]["text"] = data.draw(JSON_VALUES, "value")
        written[target] = MUST_FAIL
    elif corruption == "number text":
        objects[target]["text"] = data.draw(st.integers(-(10**6), 10**6), "number")
        written[target][0] = str(objects[target]["text"])
    elif corruption == "no label":
        del objects[target]["label"]
        written[target] = MUST_FAIL
    elif corruption == "extra key":
        objects[target]["source"] = data.draw(JSON_VALUES, "value")  # columns nobody reads are fine in JSONL
    elif corruption == "undecodable":
        objects[target]["text"] += "\udcff"
        written[target][0] += "\udcff"
    lines = [json.dumps(row, ensure_ascii=ensure_ascii) for row in objects]
    if corruption == "truncated":
        lines[target] = lines[target][: data.draw(st.integers(1, len(lines[target]) - 1), "cut")]
        written[target] = MUST_FAIL
    with tempfile.TemporaryDirectory() as folder:
        content = "".join(line + "\n" for line in lines)
        (Path(folder) / "train.jsonl").write_bytes(content.encode("utf-8", "surrogateescape"))
        check_load(Path(folder), {"train": written}, classes=False)


@FAST
@given(
    suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet"]),
    content=st.binary(max_size=400),
    classes=st.one_of(st.none(), st.binary(max_size=60)),
    skip_bad_rows=st.booleans(),
)
def test_random_bytes_raise_only_data_error(
    suffix: str, content: bytes, classes: bytes | None, skip_bad_rows: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / f"train{suffix}").write_bytes(content)
        if classes is not None:
            (Path(folder) / "classes.txt").write_bytes(classes)
        try:
            loaded = load_data(data_config(data=folder, skip_bad_rows=skip_bad_rows))
        except DataError:
            return
        assert_sane(loaded)


# Bytes that matter to the parsers: quotes, separators, line ends, JSON punctuation, not-UTF-8.
NOISE = st.sampled_from([b'"', b",", b"\t", b"\n", b"\r", b"\xff", b"\x00", b"{", b"}", b"[", b":", b"\\", b"NaN"])


@FAST
@given(
    fmt=st.sampled_from(["csv", "tsv", "jsonl"]),
    rows=st.lists(st.tuples(CELL_TEXT, st.sampled_from(GOOD_LABELS + BAD_LABELS)), min_size=2, max_size=8),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 2), NOISE), min_size=1, max_size=6),
    skip_bad_rows=st.booleans(),
)
def test_mangled_files_raise_only_data_error(
    fmt: str, rows: list[tuple[str, str]], edits: list[tuple[int, int, bytes]], skip_bad_rows: bool
) -> None:
    if fmt == "jsonl":
        content = "".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows).encode()
    else:
        content = encode_delimited([list(row) for row in rows], fmt, csv.QUOTE_MINIMAL, bom=False)
    for position, action, noise in edits:  # insert, replace or delete at a position
        at = position % (len(content) + 1)
        content = content[:at] + (noise if action < 2 else b"") + content[at + (action > 0) :]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / f"train.{fmt}").write_bytes(content)
        try:
            loaded = load_data(data_config(data=folder, skip_bad_rows=skip_bad_rows), splits=("train",))
        except DataError:
            return
        assert_sane(loaded)


def assert_sane(loaded: Any) -> None:
    """What every successful load promises: texts present and decodable, labels in range, two classes."""
    assert len(loaded.label_names) >= 2
    for split in loaded.splits.values():
        assert split.texts and len(split.texts) == len(split.labels)
        assert all(text and text == text.strip() and "\udcff" not in text for text in split.texts)
        assert all(0 <= label < len(loaded.label_names) for label in split.labels)
