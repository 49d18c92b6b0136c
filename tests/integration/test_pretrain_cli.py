"""`textcls pretrain` and `textcls fill-mask`: smoke tests asserting on the files and numbers they write."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.conftest import make_texts
from textcls.cli.main import app

runner = CliRunner()


def test_pretrain_writes_a_run_that_fill_mask_and_train_use(tiny_bert, tmp_path):
    corpus = tmp_path / "news.txt"
    corpus.write_text("\n\n".join(f"{t} {d}" for _, t, d in make_texts(80, 4)), encoding="utf-8")
    out = tmp_path / "mlm"
    result = runner.invoke(
        app,
        [
            "pretrain",
            "--data",
            str(corpus),
            "--model",
            str(tiny_bert),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--max-length",
            "32",
            "--precision",
            "fp32",
            "--pseudo-perplexity-texts",
            "3",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["run_dir"] == str(out) and metrics["held_out"]["texts"] == 4  # 5% of 80
    assert set(metrics["held_out"]["after"]) >= {"masked_accuracy", "masked_loss", "pseudo_perplexity"}
    assert json.loads((out / "metrics.json").read_text())["held_out"] == metrics["held_out"]
    assert (out / "model" / "model.safetensors").is_file() and not (tmp_path / ".mlm.partial").exists()

    filled = runner.invoke(app, ["fill-mask", str(out), "the striker scored a [MASK] .", "--top-k", "3", "--json"])
    assert filled.exit_code == 0, filled.output
    (words,) = json.loads(filled.stdout)
    assert len(words) == 3 and words[0]["probability"] >= words[-1]["probability"]

    table = runner.invoke(app, ["fill-mask", str(out), "no mask"])
    assert table.exit_code == 2 and "expected [MASK]" in table.stderr

    missing = runner.invoke(app, ["pretrain", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "data: expected a text source" in missing.stderr
