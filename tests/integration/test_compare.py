"""`textcls compare`: several families on the same split, one table, JSON and a figure."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.conftest import write_ag_news_folder
from textcls.cli.main import app


def test_compare_trains_each_family_and_writes_table_json_and_figure(tiny_bert, tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=96, n_dev=32, n_test=0)
    out = tmp_path / "compare"
    args = [
        "compare",
        "--data",
        str(data),
        "--families",
        "tfidf,pretrained",
        "--out",
        str(out),
        "--model",
        str(tiny_bert),
        "--epochs",
        "1",
        "--max-length",
        "32",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compare.json").read_text())
    assert [row["family"] for row in report["families"]] == ["tfidf", "pretrained"]
    assert report["dev_rows"] == 32
    for row in report["families"]:
        assert 0.0 <= row["dev_accuracy"] <= 1.0 and row["parameters"] > 0
        assert row["inference_samples_per_second"] > 0
        assert json.loads((out / row["family"] / "textcls.json").read_text())["family"] == row["family"]
    # The separable generated topics are easy for TF-IDF.
    assert report["families"][0]["dev_accuracy"] >= 0.9
    table = (out / "compare.md").read_text()
    assert "| tfidf |" in table and "| pretrained |" in table
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A second compare reuses finished runs instead of retraining them.
    created = json.loads((out / "tfidf" / "textcls.json").read_text())["created"]
    again = CliRunner().invoke(app, args[:-1])
    assert again.exit_code == 0, again.output
    assert "reusing the finished run" in again.stderr
    assert json.loads((out / "tfidf" / "textcls.json").read_text())["created"] == created

    # Runs of other rows or other settings are not passed off as this comparison's: refused, kept, named.
    fewer_rows = _invoke(*args[:-1], "--families", "tfidf", "--max-train-samples", "40")
    assert fewer_rows.exit_code == 2 and "other rows" in fewer_rows.stderr and "--overwrite" in fewer_rows.stderr
    other_seed = _invoke(*args[:-1], "--families", "tfidf", "--seed", "7")
    assert other_seed.exit_code == 2 and "seed 42 (now 7)" in other_seed.stderr
    assert json.loads((out / "tfidf" / "textcls.json").read_text())["created"] == created
    retrained = _invoke(*args[:-1], "--families", "tfidf", "--seed", "7", "--overwrite")
    assert retrained.exit_code == 0, retrained.output
    assert json.loads((out / "tfidf" / "textcls.json").read_text())["train_config"]["seed"] == 7


def test_compare_skips_a_family_that_cannot_read_long_texts_in_chunks(tmp_path):
    from tests.conftest import write_long_text_folder

    data = write_long_text_folder(tmp_path / "data", n_train=48, n_dev=16)
    out = tmp_path / "compare"
    result = _invoke(
        "compare",
        "--data",
        data,
        "--families",
        "tfidf,lstm",
        "--long-text",
        "chunk",
        "--max-length",
        "32",
        "--epochs",
        "1",
        "--out",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compare.json").read_text())
    assert [row["family"] for row in report["families"]] == ["lstm"]
    assert report["skipped"][0]["family"] == "tfidf" and "--long-text chunk" in report["skipped"][0]["reason"]
    assert "skipping tfidf" in result.stderr
    only_tfidf = _invoke(
        "compare", "--data", data, "--families", "tfidf", "--long-text", "chunk", "--out", tmp_path / "none"
    )
    assert only_tfidf.exit_code == 2 and "no family can train" in only_tfidf.stderr


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_compare_rejects_unknown_families(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--families", "tfidf,gpt5", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "gpt5" in result.stderr


@pytest.mark.slow
def test_compare_all_five_families_on_a_slice_of_ag_news(shared_ag_news, tmp_path):
    # The smallest slice on which every family still learns well past chance: 600 rows, two epochs of
    # batches of 16 (enough steps for the models trained from scratch), 32 tokens (most of a title and
    # the start of its description). The pre-trained encoder's training is most of the time.
    out = tmp_path / "compare"
    args = [
        "compare",
        "--data",
        str(shared_ag_news),
        "--out",
        str(out),
        "--max-train-samples",
        "600",
        "--max-eval-samples",
        "200",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--max-length",
        "32",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {row["family"]: row for row in json.loads((out / "compare.json").read_text())["families"]}
    assert list(rows) == ["tfidf", "lstm", "lstm-attention", "scratch-transformer", "pretrained"]
    for family, row in rows.items():
        assert row["dev_accuracy"] > 0.4, (family, row)  # chance is 0.25 on four balanced classes
        assert json.loads((out / family / "metrics.json").read_text())["dev"]["num_samples"] == 200
    # Transfer learning: the pre-trained encoder beats every model trained from scratch on 600 rows.
    assert rows["pretrained"]["dev_accuracy"] > max(
        rows[f]["dev_accuracy"] for f in ("lstm", "lstm-attention", "scratch-transformer")
    )


def test_compare_puts_back_a_family_run_cut_short_while_being_replaced(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=48, n_dev=16, n_test=0)
    out = tmp_path / "compare"
    assert _invoke("compare", "--data", data, "--families", "tfidf", "--out", out).exit_code == 0
    (out / "tfidf").rename(out / ".tfidf.old")  # a replacement killed between its two renames
    again = _invoke("compare", "--data", data, "--families", "tfidf", "--out", out, "--json")
    assert again.exit_code == 0, again.output
    assert "tfidf: reusing the finished run" in " ".join(again.stderr.split())
    assert (out / "tfidf" / "textcls.json").is_file() and not (out / ".tfidf.old").exists()
