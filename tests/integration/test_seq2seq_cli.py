"""One smoke test per `textcls seq2seq` command, through the main CLI, asserting on the files and
numbers each writes. Generated data, tiny models, a few seconds each."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from textcls.cli.main import app

runner = CliRunner()
TINY = [
    "--embedding-size",
    "16",
    "--encoder-hidden",
    "16",
    "--decoder-hidden",
    "32",
    "--attention-size",
    "16",
    "--threads",
    "1",
]


def _invoke(*args: str):
    result = runner.invoke(app, ["seq2seq", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Generated reorder and dates folders, and one short run on each (tiny sizes)."""
    root = tmp_path_factory.mktemp("seq2seq")
    _invoke("data", "--task", "reorder", "--rows", "200", "--out", root / "reorder", "--seed", "1")
    _invoke("data", "--task", "dates", "--rows", "200", "--out", root / "dates")
    for name, attention in (("additive", "additive"), ("none", "none")):
        _invoke(
            "train", "--data", root / "reorder", "--attention", attention, "--out", root / name, "--epochs", "2", *TINY
        )
    _invoke("train", "--data", root / "dates", "--out", root / "dates-run", "--epochs", "2", *TINY)
    return root


def test_data_writes_three_splits_of_tab_separated_pairs(workspace, tmp_path):
    result = _invoke("data", "--task", "dates", "--rows", "50", "--out", tmp_path / "d", "--seed", "3", "--json")
    report = json.loads(result.stdout)
    assert report["rows"] == {"train": 50, "dev": 20, "test": 20}
    lines = (tmp_path / "d" / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50 and all(line.count("\t") == 1 for line in lines)
    reorder = (workspace / "reorder" / "test.tsv").read_text(encoding="utf-8").splitlines()
    lengths = [len(line.split("\t")[0].split()) for line in reorder]
    assert min(lengths) >= 5 and max(lengths) <= 60
    # pairs already in the folder (the user's own, say) are replaced only with --overwrite
    (tmp_path / "d" / "dev.tsv").write_text("hello\tbonjour\n", encoding="utf-8")
    again = runner.invoke(app, ["seq2seq", "data", "--task", "dates", "--rows", "50", "--out", str(tmp_path / "d")])
    assert again.exit_code == 2 and "already exist; pass --overwrite" in again.stderr
    assert (tmp_path / "d" / "dev.tsv").read_text(encoding="utf-8") == "hello\tbonjour\n"
    _invoke("data", "--task", "dates", "--rows", "50", "--out", tmp_path / "d", "--seed", "3", "--overwrite")
    assert len((tmp_path / "d" / "dev.tsv").read_text(encoding="utf-8").splitlines()) == 20


def test_train_writes_a_complete_run_folder(workspace):
    run = workspace / "additive"
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "model", "textcls.json"]
    assert sorted(p.name for p in (run / "model").iterdir()) == ["model.safetensors", "seq2seq.json"]
    assert not (workspace / ".additive.partial").exists()
    info = json.loads((run / "textcls.json").read_text())
    assert info["family"] == "seq2seq" and info["attention"] == "additive" and info["tokens"] == "words"
    assert set(info["model_files"]) == {"model.safetensors", "seq2seq.json"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["training"]["history"]) == 2
    assert 0.0 <= metrics["dev"]["token_accuracy"] <= 1.0 and metrics["dev"]["pairs"] == 20
    assert json.loads((workspace / "dates-run" / "textcls.json").read_text())["tokens"] == "chars"


def test_train_refuses_an_existing_folder_and_a_bad_setting(workspace):
    result = runner.invoke(
        app, ["seq2seq", "train", "--data", str(workspace / "reorder"), "--out", str(workspace / "additive"), *TINY]
    )
    assert result.exit_code == 2 and "already exists" in result.output
    bad = runner.invoke(
        app,
        [
            "seq2seq",
            "train",
            "--data",
            str(workspace / "reorder"),
            "--out",
            str(workspace / "x"),
            "--attention",
            "luong",
        ],
    )
    assert bad.exit_code == 2 and "attention: expected one of" in bad.output


def test_translate_prints_outputs_and_plots_the_alignment(workspace, tmp_path):
    figure = tmp_path / "alignment.png"
    result = _invoke("translate", workspace / "dates-run", "Saturday 14 August 1982", "--plot", figure, "--json")
    [record] = json.loads(result.stdout)
    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and record["figure"] == str(figure)
    assert record["source_tokens"][-1] == "</s>" and len(record["source_tokens"]) == len("Saturday 14 August 1982") + 1
    assert len(record["attention"]) == len(record["output_tokens"])
    assert all(abs(sum(row) - 1) < 1e-3 for row in record["attention"])
    plain = _invoke("translate", workspace / "additive", "a b c", "d e", "--beam", "3")
    assert len(plain.stdout.splitlines()) == 2
    none = runner.invoke(app, ["seq2seq", "translate", str(workspace / "none"), "a", "--plot", str(tmp_path / "n.png")])
    assert none.exit_code == 2 and "no alignment to plot" in none.output


def test_evaluate_writes_scores_by_length(workspace):
    result = _invoke("evaluate", workspace / "additive", "--split", "test", "--by-length", "--json")
    report = json.loads(result.stdout)
    written = json.loads((workspace / "additive" / "eval_test.json").read_text())
    assert written == report and report["overall"]["pairs"] == 20
    assert sum(row["pairs"] for row in report["by_length"]) == 20
    assert {row["bucket"] for row in report["by_length"]} <= {"1-20", "21-40", "41-60"}
    assert all(0 <= row["bleu"] <= 100 for row in report["by_length"])


def test_compare_writes_length_figure_and_json(workspace, tmp_path):
    out = tmp_path / "compare"
    result = _invoke("compare", workspace / "additive", workspace / "none", "--out", out)
    assert "BLEU by source length" in result.stdout
    report = json.loads((out / "compare.json").read_text())
    assert [row["attention"] for row in report["runs"]] == ["additive", "none"]
    assert all(sum(b["pairs"] for b in row["by_length"]) == 20 for row in report["runs"])
    assert (out / "length.png").read_bytes()[:4] == b"\x89PNG"


def test_a_bad_data_file_exits_2_naming_file_and_line(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "train.tsv").write_text("a b\tc d\nmissing the tab\n", encoding="utf-8")
    result = runner.invoke(app, ["seq2seq", "train", "--data", str(folder), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "train.tsv, line 2" in result.output and "found no tab" in result.output


def test_classification_load_refuses_a_seq2seq_run_with_a_run_folder_error(workspace):
    import textcls

    with pytest.raises(textcls.RunFolderError, match="is a `textcls seq2seq` run.*textcls seq2seq translate"):
        textcls.load(workspace / "additive")


def test_evaluate_refuses_to_score_a_one_file_runs_training_pairs_as_test(workspace, tmp_path):
    one_file = workspace / "dates" / "train.tsv"
    _invoke("train", "--data", one_file, "--out", tmp_path / "one", "--epochs", "1", *TINY)
    as_test = runner.invoke(app, ["seq2seq", "evaluate", str(tmp_path / "one")])
    assert (
        as_test.exit_code == 2
        and "has no test split" in as_test.output
        and not (tmp_path / "one" / "eval_test.json").exists()
    )
    dev = _invoke("evaluate", tmp_path / "one", "--split", "dev", "--json")
    assert json.loads(dev.stdout)["overall"]["pairs"] == 20  # the held-out tenth of 200, as in training
    given = _invoke("evaluate", tmp_path / "one", "--data", workspace / "dates" / "test.tsv", "--json")
    assert json.loads(given.stdout)["overall"]["pairs"] == 20
    bogus = runner.invoke(app, ["seq2seq", "evaluate", str(workspace / "additive"), "--split", "bogus"])
    assert bogus.exit_code == 2 and "--split: expected one of" in bogus.output
