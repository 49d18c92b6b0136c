"""Faults around figures and reports: label and token text that matplotlib would read as mathtext,
a figure that fails to draw, and a --model that is neither a folder here nor reachable on the hub.
A trained run is never lost to a figure, and a model out of reach leaves nothing behind."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import textcls
from tests.conftest import write_ag_news_folder
from textcls.reporting import html, plots
from textcls.reporting.explanations import Explanation

MATH_LABELS = ["$\\frac$", "Price $$", "a_b$c"]
pytestmark = pytest.mark.skipif(not plots.available(), reason="the plots extra (matplotlib) is not installed")


def write_math_label_folder(folder: Path) -> Path:
    """train/dev.csv (label,text) whose label names are mathtext to matplotlib."""
    folder.mkdir(parents=True, exist_ok=True)
    words = {label: f"word{i} topic{i} thing{i}" for i, label in enumerate(MATH_LABELS)}
    for name, n in (("train", 30), ("dev", 15)):
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "text"])
            for row in range(n):
                label = MATH_LABELS[row % len(MATH_LABELS)]
                writer.writerow([label, f"{words[label]} $x_{row}$ sample {row}"])
    return folder


def assert_complete(run_dir: Path) -> None:
    """`run_dir` is a finished, loadable run with its metrics, and no partial folder is left beside it."""
    assert (run_dir / "metrics.json").is_file()
    assert not [p.name for p in run_dir.parent.iterdir() if p.name.endswith(".partial")]
    run = textcls.load(run_dir)
    assert len(run.predict(["word0 topic0 thing0"])) == 1


def test_mathtext_label_names_train_with_their_report(tmp_path: Path) -> None:
    data = write_math_label_folder(tmp_path / "data")
    run_dir = textcls.train(data=str(data), out=tmp_path / "runs" / "math", family="tfidf").run_dir
    assert_complete(run_dir)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'alt="confusion matrix"' in page
    assert "could not be drawn" not in page


def test_figures_draw_mathtext_labels_and_tokens_as_written(tmp_path: Path) -> None:
    tokens = ["[CLS]", *MATH_LABELS, "[SEP]"]
    n = len(tokens)
    assert plots.confusion_png(np.eye(3, dtype=int), MATH_LABELS).startswith(b"\x89PNG")
    plots.attention_heatmap(np.eye(n), tokens, tmp_path / "heatmap.png", title="$\\frac$ title")
    plots.attention_grid(np.ones((1, 2, n, n)) / n, tokens, tmp_path / "grid.png", title="a_b$c")
    plots.token_bars(tokens, np.linspace(-1, 1, n), tmp_path / "bars.png", title="Price $$")
    plots.alignment_matrix(np.eye(n), tokens, tokens, tmp_path / "align.png", title="$\\frac$ → a_b$c")
    rows = [{"name": "run $x", "x": [1.0, 2.0], "bleu": [1.0, 2.0], "exact_match": [0.0, 1.0]}]
    plots.length_curves(rows, tmp_path / "lengths.png")
    for name in ("heatmap", "grid", "bars", "align", "lengths"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")


def test_a_figure_that_fails_to_draw_costs_the_figure_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(plots, "confusion_png", broken)
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=16, n_test=0)
    with caplog.at_level(logging.WARNING):
        run_dir = textcls.train(data=str(data), out=tmp_path / "runs" / "r", family="tfidf").run_dir
    assert_complete(run_dir)
    assert "confusion matrix" in caplog.text and "renderer exploded" in caplog.text
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "confusion matrix figure could not be drawn" in page


def test_a_report_that_fails_to_build_costs_the_report_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise ValueError("page exploded")

    monkeypatch.setattr(html, "build_report", broken)
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=16, n_test=0)
    with caplog.at_level(logging.WARNING):
        run_dir = textcls.train(data=str(data), out=tmp_path / "runs" / "r", family="tfidf").run_dir
    assert_complete(run_dir)
    assert "report.html" in caplog.text and "page exploded" in caplog.text


def test_an_explanation_figure_that_fails_leaves_the_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("bars exploded")

    monkeypatch.setattr(plots, "token_bars", broken)
    explanation = Explanation(
        text="a_b$c costs $5",
        label="Price $$",
        probs={"Price $$": 0.7, "a_b$c": 0.3},
        family="tfidf",
        tokens=["a_b$c", "costs", "$5"],
        token_weights=np.array([0.5, -0.1, 0.2]),
    )
    with caplog.at_level(logging.WARNING):
        written = html.write_explanation(explanation, tmp_path / "explain")
    assert "weights.png" not in written
    assert (tmp_path / "explain" / "explanation.html").is_file()
    assert "weights.png" in caplog.text and "bars exploded" in caplog.text


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m textcls ARGS` in a fresh process with the hub offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "textcls", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("some-org/some-model", "neither on disk nor on the hub"),
        ("./no/such/model", "found no folder at"),
        ("not_a_model", "found a folder without config.json"),
    ],
)
def test_a_model_out_of_reach_fails_in_one_line_leaving_nothing(tmp_path: Path, model: str, says: str) -> None:
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=16, n_test=0)
    (tmp_path / "not_a_model").mkdir()  # a folder, but no model in it
    result = cli("train", "--data", data, "--out", "runs/r", "--model", model, "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0] and "--model DIR" in errors[0]
    assert "Traceback" not in result.stderr
    assert errors[0] == result.stderr.rstrip().splitlines()[-1]  # the message is one line, nothing after it
    assert not (tmp_path / "runs").exists()


def test_a_compare_figure_that_fails_keeps_the_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from textcls.config import DataConfig
    from textcls.runs.compare import compare

    def broken(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("scatter exploded")

    monkeypatch.setattr(plots, "accuracy_vs_time", broken)
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=16, n_test=0)
    with caplog.at_level(logging.WARNING):
        result = compare(DataConfig(data=str(data)), ["tfidf"], tmp_path / "compare")
    assert "tfidf" in str(result)
    assert (tmp_path / "compare" / "compare.json").is_file()
    assert_complete(tmp_path / "compare" / "tfidf")
    assert "compare.png" in caplog.text and "scatter exploded" in caplog.text
