"""`textcls audit`: planted label flips rank first, --fix writes a corrected copy beside an untouched input,
bad inputs fail with a message that says what to do, and a run folder is audited on its own rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import textcls
from textcls.cli.main import app
from textcls.errors import ConfigError, DataError
from textcls.families import FAST_FAMILY

from ..conftest import TOPIC_WORDS, make_texts, write_multilabel_folder

NAMES = list(TOPIC_WORDS)
FLIPPED = [3, 17, 42, 77, 101, 150, 188, 230]  # 1-based data rows whose label is planted wrong
SCRIPT = "<script>alert('x')</script> goal coach season striker"


def _write_flipped(folder: Path, n: int = 240) -> Path:
    """train.csv of topic texts (label index, title, description) with FLIPPED rows given the next class, one
    of them a text with HTML in it, and classes.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [list(row) for row in make_texts(n, seed=5)]
    for number in FLIPPED:
        rows[number - 1][0] = (rows[number - 1][0] + 1) % len(NAMES)
    rows[FLIPPED[0] - 1][1:] = ["Striker Goal", SCRIPT]
    rows[FLIPPED[0] - 1][0] = 0  # a Sports text labelled World
    with (folder / "train.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(["label", "title", "description"])
        writer.writerows(rows)
    (folder / "classes.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return folder


def _labels(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["label"] for row in csv.DictReader(handle)]


def test_planted_flips_rank_first_and_every_file_is_written(tmp_path: Path) -> None:
    data = _write_flipped(tmp_path / "data")
    result = textcls.audit(str(data), str(tmp_path / "audit"), family=FAST_FAMILY)

    top = {issue["row"] for issue in result.issues[: len(FLIPPED)]}
    assert top == set(FLIPPED)
    first = next(issue for issue in result.issues if issue["row"] == FLIPPED[0])
    assert (first["given"], first["suggested"]) == ("World", "Sports")
    assert result.summary["rows"] == 240 and result.summary["issues"] == len(result.issues) >= len(FLIPPED)
    assert sum(row["issues"] for row in result.summary["per_class"]) == len(result.issues)

    out = tmp_path / "audit"
    with (out / "issues.csv").open(newline="", encoding="utf-8") as handle:
        listed = list(csv.DictReader(handle))
    assert [int(row["row"]) for row in listed] == [issue["row"] for issue in result.issues]
    lines = (out / "issues.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["row"] == result.issues[0]["row"] and len(lines) == len(listed)
    assert json.loads((out / "audit.json").read_text(encoding="utf-8"))["issues"] == len(listed)
    page = (out / "audit.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_fix_writes_a_corrected_copy_and_leaves_the_input_byte_identical(tmp_path: Path) -> None:
    data = _write_flipped(tmp_path / "data")
    train = data / "train.csv"
    before = train.read_bytes()
    out = tmp_path / "audit"
    result = CliRunner().invoke(
        app, ["audit", str(train), "--out", str(out), "--family", FAST_FAMILY, "--fix", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert train.read_bytes() == before
    summary = json.loads(result.stdout)
    fixed = Path(summary["fixed"])
    assert fixed == out / "train.fixed.csv"
    given, corrected = _labels(train), _labels(fixed)
    changed = {number for number, (a, b) in enumerate(zip(given, corrected), 1) if a != b}
    assert set(FLIPPED) <= changed and len(changed) == summary["issues"]
    assert corrected[FLIPPED[0] - 1] == str(NAMES.index("Sports"))  # written as the file writes labels
    # every row not corrected is the input's own bytes
    assert sum(a != b for a, b in zip(before.splitlines(), fixed.read_bytes().splitlines())) == len(changed)


def test_fix_of_a_folder_copies_the_folder(tmp_path: Path) -> None:
    data = _write_flipped(tmp_path / "data")
    result = textcls.audit(str(data), str(tmp_path / "audit"), fix=True, family=FAST_FAMILY)
    assert result.fixed == tmp_path / "audit" / "data.fixed"
    assert (result.fixed / "classes.txt").read_bytes() == (data / "classes.txt").read_bytes()
    assert _labels(result.fixed / "train.csv") != _labels(data / "train.csv")


@pytest.mark.parametrize("target", ["train.csv", "."])
def test_fix_refuses_to_write_over_the_input(tmp_path: Path, target: str) -> None:
    data = _write_flipped(tmp_path / "data")
    before = (data / "train.csv").read_bytes()
    source = data / "train.csv" if target == "train.csv" else data
    with pytest.raises(ConfigError, match="would replace the input"):
        textcls.audit(str(source), str(tmp_path / "audit"), fix=True, fix_out=str(data / target), family=FAST_FAMILY)
    assert (data / "train.csv").read_bytes() == before
    assert not (tmp_path / "audit").exists()  # refused before any work


def test_a_class_smaller_than_the_folds_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    rows = [("World", "minister election"), ("World", "treaty embassy"), ("World", "election parliament")]
    rows += [("Sports", "goal coach"), ("Sports", "striker season")]
    (folder / "train.csv").write_text("label,text\n" + "".join(f"{a},{b}\n" for a, b in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["audit", str(folder), "--out", str(tmp_path / "audit"), "--family", FAST_FAMILY])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "'Sports' has 2 rows" in message and "'World' has 3 rows" in message and "--folds 2" in message
    with pytest.raises(DataError, match="'Sports' has 2 rows"):
        textcls.audit(str(folder), str(tmp_path / "audit"), family=FAST_FAMILY, folds=3)


def test_multi_label_data_is_refused_clearly(tmp_path: Path) -> None:
    data = write_multilabel_folder(tmp_path / "data")
    with pytest.raises(ConfigError, match="single-label"):
        textcls.audit(str(data), str(tmp_path / "audit"), family=FAST_FAMILY, multi_label=True)


def test_a_run_folder_is_audited_on_its_own_training_rows(tiny_run: Path, tmp_path: Path) -> None:
    info = json.loads((tiny_run / "textcls.json").read_text(encoding="utf-8"))
    result = textcls.audit(str(tiny_run), str(tmp_path / "audit"), family=FAST_FAMILY, folds=3)
    assert result.summary["run_dir"] == str(tiny_run)
    assert result.summary["source"] == info["data"]["sources"]["train"]
    assert result.summary["rows"] == info["data"]["rows"]["train"]  # the dev carve is left out, as training did


def test_the_default_method_runs_on_frozen_embeddings(tiny_bert: Path, tmp_path: Path) -> None:
    data = _write_flipped(tmp_path / "data", n=240)
    cache = tmp_path / "cache"
    options = {"model": str(tiny_bert), "max_length": 32, "folds": 3, "embedding_cache": str(cache)}
    result = textcls.audit(str(data), str(tmp_path / "audit"), **options)
    assert result.probs.shape == (240, 4)
    assert result.probs.sum(axis=1) == pytest.approx(1.0, abs=1e-6)
    assert result.summary["method"] == f"embeddings+{FAST_FAMILY}"
    assert len(list(cache.glob("*.npy"))) == 1
    embeddings_only = textcls.audit(str(data), str(tmp_path / "audit2"), method="embeddings", **options)
    assert embeddings_only.summary["method"] == "embeddings" and embeddings_only.probs.shape == (240, 4)
    assert len(list(cache.glob("*.npy"))) == 1  # the same rows: the embeddings were read back


def test_max_given_probability_keeps_only_the_unlikely_given_labels(tmp_path: Path) -> None:
    data = _write_flipped(tmp_path / "data")
    every = textcls.audit(str(data), str(tmp_path / "every"), family=FAST_FAMILY)
    cut = 0.5 * min(issue["given_probability"] for issue in every.issues[: len(FLIPPED)]) + 0.5 * max(
        issue["given_probability"] for issue in every.issues
    )
    strict = textcls.audit(str(data), str(tmp_path / "strict"), family=FAST_FAMILY, max_given_probability=cut)

    expected = [issue["row"] for issue in every.issues if issue["given_probability"] < cut]
    assert [issue["row"] for issue in strict.issues] == expected
    assert 0 < len(expected) < len(every.issues)
    assert strict.summary["issues"] == len(expected)
    assert strict.summary["config"]["max_given_probability"] == cut
    with pytest.raises(ConfigError, match="max_given_probability"):
        textcls.audit(str(data), str(tmp_path / "bad"), family=FAST_FAMILY, max_given_probability=0)
