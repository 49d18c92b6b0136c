"""Tests for textcls.data: every source format, label rule, bad-row case and the hub path (monkeypatched)."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest

from textcls.config import DataConfig
from textcls.data.loading import load_data, read_texts, resolve_text_columns
from textcls.errors import DataError

NAMES = ["World", "Sports", "Business", "Sci/Tech"]


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def labelled_rows(count: int, classes: int = 4) -> list[list[object]]:
    """Header plus ``count`` rows cycling through ``classes`` integer labels."""
    return [["text", "label"]] + [[f"text number {i}", i % classes] for i in range(count)]


def ag_folder(tmp_path: Path) -> Path:
    write_csv(tmp_path / "train.csv", labelled_rows(40))
    write_csv(tmp_path / "dev.csv", labelled_rows(8))
    write_csv(tmp_path / "test.csv", labelled_rows(12))
    (tmp_path / "classes.txt").write_text("\n".join(NAMES) + "\n\n")
    return tmp_path


# ---- sources and formats ----------------------------------------------------------------------


def test_folder_with_three_csv_splits_and_classes_file(tmp_path: Path) -> None:
    loaded = load_data(DataConfig(data=str(ag_folder(tmp_path))))
    assert loaded.label_names == NAMES
    assert {name: len(split) for name, split in loaded.splits.items()} == {"train": 40, "dev": 8, "test": 12}
    train = loaded.splits["train"]
    assert train.texts[:2] == ["text number 0", "text number 1"]
    assert train.labels[:5] == [0, 1, 2, 3, 0]
    assert train.source == str(tmp_path / "train.csv")
    assert loaded.skipped_rows == 0


def test_evaluate_splits_only_returns_requested(tmp_path: Path) -> None:
    loaded = load_data(DataConfig(data=str(ag_folder(tmp_path))), splits=("dev", "test"), require_train=False)
    assert sorted(loaded.splits) == ["dev", "test"]
    assert loaded.label_names == NAMES


def test_title_and_description_are_joined_and_empty_title_is_dropped(tmp_path: Path) -> None:
    rows = [["label", "title", "description"], [0, "Stocks rise", "Markets rallied."], [1, "", "  Cup final won. "]]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "dev.csv", rows)
    loaded = load_data(DataConfig(data=str(tmp_path)))
    assert loaded.splits["train"].texts == ["Stocks rise Markets rallied.", "Cup final won."]


def test_jsonl_parquet_and_tsv_splits(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"text": f"row {i}", "label": ["neg", "pos"][i % 2]} for i in range(6)])
    table = pyarrow.table({"sentence": ["good film", "bad film"], "label": ["pos", "neg"]})
    pyarrow.parquet.write_table(table, tmp_path / "validation.parquet")
    # GLUE-style TSV: fields are never quoted, so a leading '"' is part of the text
    (tmp_path / "test.tsv").write_text('text\tlabel\n"a quoted start\tneg\nplain\tpos\n')
    loaded = load_data(DataConfig(data=str(tmp_path)))
    assert loaded.label_names == ["neg", "pos"]
    assert loaded.splits["train"].labels == [0, 1, 0, 1, 0, 1]
    assert loaded.splits["dev"].texts == ["good film", "bad film"]
    assert loaded.splits["dev"].labels == [1, 0]
    assert loaded.splits["test"].texts == ['"a quoted start', "plain"]


def test_headerless_ag_news_layout_maps_1_based_labels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [[k, f"Title {k}", f"Description {k}"] for k in (3, 4, 1, 2, 3)]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "test.csv", rows[:4])
    with caplog.at_level(logging.INFO, logger="textcls.data"):
        loaded = load_data(DataConfig(data=str(tmp_path), dev_fraction=0.4))
    assert loaded.label_names == NAMES
    test = loaded.splits["test"]
    assert test.labels == [2, 3, 0, 1]
    assert test.texts[0] == "Title 3 Description 3"
    assert "assuming label names" in caplog.text


def test_1_based_integer_labels_with_classes_file(tmp_path: Path) -> None:
    rows = [["text", "label"]] + [[f"t{i}", i % 4 + 1] for i in range(8)]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "dev.csv", rows)
    (tmp_path / "classes.txt").write_text("\n".join(NAMES))
    loaded = load_data(DataConfig(data=str(tmp_path)))
    assert loaded.splits["train"].labels[:4] == [0, 1, 2, 3]


def test_integer_labels_that_are_all_names_map_by_name_whatever_class_is_missing(tmp_path: Path) -> None:
    # star ratings 1..5 with no 5 in the file: read as indices from 0, "1" would become the class named "2"
    write_csv(tmp_path / "train.csv", [["text", "label"]] + [[f"t{i}", i % 4 + 1] for i in range(8)])
    write_csv(tmp_path / "dev.csv", [["text", "label"], ["a", 1], ["b", 4]])
    (tmp_path / "classes.txt").write_text("1\n2\n3\n4\n5\n")
    loaded = load_data(DataConfig(data=str(tmp_path)))
    assert [loaded.label_names[k] for k in loaded.splits["dev"].labels] == ["1", "4"]
    assert loaded.label_base is None


def test_labels_that_show_no_base_follow_the_known_run_else_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from textcls.data.loading import KnownData

    # 1-based labels of a test file without its top class (4): neither a 0 nor an N says which base they use
    write_csv(tmp_path / "test.csv", [["text", "label"], ["a", 1], ["b", 3], ["c", 2]])
    (tmp_path / "classes.txt").write_text("\n".join(NAMES))
    config = DataConfig(data=str(tmp_path))
    run_read_one_based = load_data(config, splits=("test",), require_train=False, known=KnownData(NAMES, 1))
    assert run_read_one_based.splits["test"].labels == [0, 2, 1] and run_read_one_based.label_base == 1
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        guessed = load_data(config, splits=("test",), require_train=False)
    assert guessed.splits["test"].labels == [1, 3, 2]
    assert "show no base" in caplog.text and "--label-base 1" in caplog.text
    forced = load_data(DataConfig(data=str(tmp_path), label_base=1), splits=("test",), require_train=False)
    assert forced.splits["test"].labels == [0, 2, 1]
    # labels that do show their base win over the run's: a 0 means 0-based
    write_csv(tmp_path / "test.csv", [["text", "label"], ["a", 0], ["b", 3]])
    shown = load_data(config, splits=("test",), require_train=False, known=KnownData(NAMES, 1))
    assert shown.splits["test"].labels == [0, 3] and shown.label_base == 0


def test_integer_labels_without_a_classes_file_index_the_known_run_names(tmp_path: Path) -> None:
    from textcls.data.loading import KnownData

    write_csv(tmp_path / "test.csv", [["text", "label"], ["a", 2], ["b", 0]])
    loaded = load_data(
        DataConfig(test_file=str(tmp_path / "test.csv")),
        splits=("test",),
        require_train=False,
        known=KnownData(NAMES, 0),
    )
    assert loaded.label_names == NAMES and loaded.splits["test"].labels == [2, 0]


def test_label_base_other_than_0_or_1_is_refused() -> None:
    from textcls.errors import ConfigError

    with pytest.raises(ConfigError, match="label_base: expected 0 or 1, found 2"):
        DataConfig(label_base=2)


def test_labels_given_as_names_match_exactly_then_case_insensitively(tmp_path: Path) -> None:
    rows = [["text", "label"], ["a", "Sports"], ["b", "world"], ["c", "3.0"], ["d", "Sci/Tech"]]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "dev.csv", rows)
    (tmp_path / "classes.txt").write_text("\n".join(NAMES))
    loaded = load_data(DataConfig(data=str(tmp_path)))
    assert loaded.splits["train"].labels == [1, 0, 3, 3]


def test_sorted_union_of_labels_without_classes_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [["text", "label"], ["a", 10], ["b", 2]])
    write_csv(tmp_path / "dev.csv", [["text", "label"], ["c", "2"]])
    write_csv(tmp_path / "test.csv", [["text", "label"], ["d", 9.0]])
    loaded = load_data(DataConfig(data=str(tmp_path)), splits=("dev",), require_train=False)
    assert loaded.label_names == ["2", "9", "10"]  # numeric order, read from every split
    assert loaded.splits["dev"].labels == [0]


def test_mixed_integer_and_name_labels_without_classes_file_fail(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [["text", "label"], ["a", 1], ["b", "Sports"]])
    with pytest.raises(DataError, match="all integers or all names"):
        load_data(DataConfig(data=str(tmp_path)))


def test_explicit_files_and_label_names_file(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "my_train.csv", labelled_rows(8, classes=2))
    dev = write_csv(tmp_path / "my_dev.csv", labelled_rows(4, classes=2))
    names = tmp_path / "names.txt"
    names.write_text("neg\npos\n")
    loaded = load_data(DataConfig(train_file=str(train), dev_file=str(dev), label_names_file=str(names)))
    assert loaded.label_names == ["neg", "pos"]
    assert sorted(loaded.splits) == ["dev", "train"]


def test_two_files_for_one_split_fail_naming_both(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows(4))
    write_csv(tmp_path / "dev.csv", labelled_rows(4))
    write_jsonl(tmp_path / "validation.jsonl", [{"text": "a", "label": 0}])
    with pytest.raises(DataError, match=r"dev\.csv.*validation\.jsonl"):
        load_data(DataConfig(data=str(tmp_path)))


# ---- dev carving and sampling -----------------------------------------------------------------


def test_dev_is_carved_from_train_stratified_and_seeded(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows(100))
    config = DataConfig(data=str(tmp_path), dev_fraction=0.2, seed=7)
    first, second = load_data(config), load_data(config)
    train, dev = first.splits["train"], first.splits["dev"]
    assert (len(train), len(dev)) == (80, 20)
    assert dev.texts == second.splits["dev"].texts
    assert not set(train.texts) & set(dev.texts)
    assert Counter(dev.labels) == {0: 5, 1: 5, 2: 5, 3: 5}
    assert dev.texts == sorted(dev.texts, key=lambda text: int(text.split()[-1]))  # file order kept
    other_seed = load_data(DataConfig(data=str(tmp_path), dev_fraction=0.2, seed=8))
    assert other_seed.splits["dev"].texts != dev.texts


def test_dev_carve_falls_back_without_stratification(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_csv(tmp_path / "train.csv", labelled_rows(20, classes=2) + [["lonely", 2]])
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        loaded = load_data(DataConfig(data=str(tmp_path)))
    assert len(loaded.splits["train"]) + len(loaded.splits["dev"]) == 21
    assert "without stratification" in caplog.text


def test_max_train_and_eval_samples_keep_order(tmp_path: Path) -> None:
    folder = ag_folder(tmp_path)
    loaded = load_data(DataConfig(data=str(folder), max_train_samples=10, max_eval_samples=3))
    train = loaded.splits["train"].texts
    assert len(train) == 10 and len(set(train)) == 10
    assert train == sorted(train, key=lambda text: int(text.split()[-1]))
    assert len(loaded.splits["dev"]) == 3 and len(loaded.splits["test"]) == 3
    again = load_data(DataConfig(data=str(folder), max_train_samples=10, max_eval_samples=3))
    assert again.splits["train"].texts == train


# ---- bad rows ---------------------------------------------------------------------------------

BAD_CASES = {
    # name: (file name, file bytes, expected fragments of the message)
    "missing field": (
        "dev.csv",
        b"text,label\nfine,0\nshort\n",
        ["dev.csv", "row 2", "line 3", "'label'", "missing field"],
    ),
    "empty text": ("dev.csv", b"text,label\nfine,0\n  ,1\n", ["dev.csv", "row 2", "line 3", "'text'", "empty text"]),
    "unknown label": (
        "dev.csv",
        b"text,label\nfine,0\nbad,Sprots\n",
        ["dev.csv", "row 2", "line 3", "'label'", "unknown label 'Sprots'", "index 0..3", "--skip-bad-rows"],
    ),
    "empty label": ("dev.csv", b"text,label\nfine,0\nbad,\n", ["dev.csv", "row 2", "'label'", "empty label"]),
    "undecodable": (
        "dev.csv",
        b"text,label\nfine,0\ncaf\xe9,1\n",  # Latin-1 e-acute
        ["dev.csv", "row 2", "line 3", "'text'", "not UTF-8"],
    ),
    "invalid json": (
        "dev.jsonl",
        b'{"text": "fine", "label": 0}\n\n{"text": "broken", \n',
        ["dev.jsonl", "row 2", "line 3", "invalid JSON"],
    ),
    "extra field": (
        "dev.csv",
        b"text,label\nfine,0\nhello, world,1\n",  # an unquoted comma
        ["dev.csv", "row 2", "line 3", "expected 2 fields as in the header, found 3"],
    ),
    "missing-value label": (
        "dev.csv",
        b"text,label\nfine,0\nbad,NaN\n",
        ["dev.csv", "row 2", "line 3", "'label'", "empty label"],
    ),
    "text not a string": (
        "dev.jsonl",
        b'{"text": "fine", "label": 0}\n{"text": {"title": "x"}, "label": 1}\n',
        ["dev.jsonl", "row 2", "line 2", "'text'", "expected a string, found an object"],
    ),
}


def bad_folder(tmp_path: Path, file_name: str, content: bytes) -> Path:
    write_csv(tmp_path / "train.csv", labelled_rows(8))
    (tmp_path / "classes.txt").write_text("\n".join(NAMES))
    (tmp_path / file_name).write_bytes(content)
    return tmp_path


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_row_fails_naming_file_row_and_field(tmp_path: Path, case: str) -> None:
    file_name, content, fragments = BAD_CASES[case]
    with pytest.raises(DataError) as raised:
        load_data(DataConfig(data=str(bad_folder(tmp_path, file_name, content))))
    for fragment in fragments:
        assert fragment in str(raised.value)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_row_is_skipped_and_warned_once(tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    file_name, content, _ = BAD_CASES[case]
    folder = bad_folder(tmp_path, file_name, content)
    with caplog.at_level(logging.WARNING, logger="textcls.data"):
        loaded = load_data(DataConfig(data=str(folder), skip_bad_rows=True))
    assert loaded.skipped_rows == 1
    assert loaded.splits["dev"].texts == ["fine"]
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 1 bad rows" in warnings[0].getMessage() and file_name in warnings[0].getMessage()


def test_split_with_only_bad_rows_fails_even_when_skipping(tmp_path: Path) -> None:
    folder = bad_folder(tmp_path, "dev.csv", b"text,label\n,0\n")
    with pytest.raises(DataError, match="at least one usable row"):
        load_data(DataConfig(data=str(folder), skip_bad_rows=True))


def test_missing_label_column_suggests_flag(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [["text", "y"], ["a", 0]])
    with pytest.raises(DataError, match=r"train\.csv.*found \['text', 'y'\]; pass --label-column"):
        load_data(DataConfig(data=str(tmp_path)))


def test_explicit_text_column_missing_gives_expected_found_fix(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", [["body", "label"], ["a", 0]])
    with pytest.raises(DataError) as raised:
        load_data(DataConfig(data=str(tmp_path), text_columns=("headline",)))
    message = str(raised.value)
    assert "expected column 'headline'" in message and "train.csv" in message
    assert "found ['body', 'label']" in message and "--text-column" in message


def test_resolve_text_columns_choices() -> None:
    assert resolve_text_columns(["text", "title", "description"], None, "f") == ("text",)
    assert resolve_text_columns(["sentence", "label"], None, "f") == ("sentence",)
    assert resolve_text_columns(["content"], ("content",), "f") == ("content",)
    with pytest.raises(DataError, match="expected a text column"):
        resolve_text_columns(["body"], None, "f.csv")


def test_folder_without_split_files_lists_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(DataError, match=r"notes\.md"):
        load_data(DataConfig(data=str(tmp_path)))


# ---- hub (monkeypatched: never reaches the network) ------------------------------------------


def test_hub_dataset_uses_class_label_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=NAMES)})
    rows = {"text": [f"t{i}" for i in range(20)], "label": [i % 4 for i in range(20)]}
    train = datasets.Dataset.from_dict(rows, features)
    test = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [3, 0]}, features)
    calls = []

    def fake_load_dataset(dataset_id: str) -> datasets.DatasetDict:
        calls.append(dataset_id)
        return datasets.DatasetDict({"train": train, "test": test})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_data(DataConfig())
    assert calls == ["fancyzhx/ag_news"]
    assert loaded.label_names == NAMES
    assert loaded.splits["test"].labels == [3, 0]
    assert loaded.splits["test"].source == "fancyzhx/ag_news:test"
    assert len(loaded.splits["train"]) + len(loaded.splits["dev"]) == 20


def test_hub_rows_are_validated_like_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    train = datasets.Dataset.from_dict({"text": ["fine", "  "], "label": [0, 1]})
    monkeypatch.setattr(datasets, "load_dataset", lambda dataset_id: datasets.DatasetDict({"train": train}))
    with pytest.raises(DataError, match=r"user/news:train, row 2, field 'text': empty text"):
        load_data(DataConfig(data="user/news"))


def test_hub_offline_error_becomes_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(dataset_id: str) -> None:
        raise ConnectionError(f"Couldn't reach '{dataset_id}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="could not reach the Hugging Face hub for dataset user/news.*--data DIR"):
        load_data(DataConfig(data="user/news"))


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="found nothing at"):
        load_data(DataConfig(data=str(tmp_path / "absent.csv")))


# ---- read_texts -------------------------------------------------------------------------------


def test_read_texts_from_txt_keeps_order_and_rejects_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "input.txt"
    path.write_text("first text\r\nsecond text\n")
    assert read_texts(path) == ["first text", "second text"]
    path.write_text("first\n\nthird\n")
    with pytest.raises(DataError, match="line 2"):
        read_texts(path)


def test_read_texts_from_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "input.csv", [["title", "description"], ["A", "b"], ["", "c"]])
    assert read_texts(csv_path) == ["A b", "c"]
    jsonl_path = write_jsonl(tmp_path / "input.jsonl", [{"body": "one"}, {"body": "two"}])
    assert read_texts(jsonl_path, ("body",)) == ["one", "two"]
    with pytest.raises(DataError, match=r"row 2.*empty text"):
        read_texts(write_jsonl(tmp_path / "gap.jsonl", [{"text": "one"}, {"text": ""}]))


def test_read_texts_rejects_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "input.docx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"\.parquet"):
        read_texts(path)


# ---- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_changes_with_one_label(tmp_path: Path) -> None:
    folder = ag_folder(tmp_path)
    config = DataConfig(data=str(folder))
    first = load_data(config).fingerprint
    assert first == load_data(config).fingerprint and len(first) == 64
    rows = labelled_rows(8)
    rows[3][1] = 0 if rows[3][1] != 0 else 1
    write_csv(folder / "dev.csv", rows)
    assert load_data(config).fingerprint != first
