"""`textcls tune`: real Optuna studies (and a real local Ray) over tiny LSTM runs on generated data."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import write_ag_news_folder
from textcls.cli.main import app
from textcls.runfolder import is_run, read_info

optuna = pytest.importorskip("optuna")

runner = CliRunner()
FAMILY = "lstm"
# one epoch of a short LSTM, two settings searched: a trial takes seconds
FAST = ["--family", FAMILY, "--epochs", "1", "--max-length", "16", "--seed", "3"]
SPACE = {
    "lr": {"low": 0.005, "high": 0.05, "log": True},
    "batch_size": {"choices": [16, 32]},
    "epochs": None,
    "max_length": None,
    "weight_decay": None,
    "warmup_ratio": None,
}


def _space(folder: Path, space: dict) -> Path:
    path = folder / "space.json"
    path.write_text(json.dumps(space), encoding="utf-8")
    return path


def _tune(data: Path, out: Path, space: Path, *options: str):
    args = ["tune", "--data", str(data), "--out", str(out), "--space", str(space), *FAST, *options]
    return runner.invoke(app, args)


def _trials(out: Path) -> list:
    study = optuna.load_study(study_name="textcls-tune", storage=f"sqlite:///{out / 'study.db'}")
    return study.get_trials()


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A search of 2 trials, then the same command with --trials 4 in the same folder."""
    root = tmp_path_factory.mktemp("tune")
    data = write_ag_news_folder(root / "data", n_train=48, n_dev=24, n_test=0)
    space, out = _space(root, SPACE), root / "search"
    first = _tune(data, out, space, "--trials", "2")
    assert first.exit_code == 0, first.output
    before = [(t.number, t.params, t.datetime_start) for t in _trials(out)]
    second = _tune(data, out, space, "--trials", "4")
    assert second.exit_code == 0, second.output
    return {"root": root, "data": data, "space": space, "out": out, "before": before, "output": second.output}


def test_a_stopped_search_continues_without_rerunning_its_trials(searched):
    trials = _trials(searched["out"])
    assert len(searched["before"]) == 2
    assert len(trials) == 4
    # the first two are the same records, not trained again
    assert [(t.number, t.params, t.datetime_start) for t in trials[:2]] == searched["before"]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


def test_a_search_writes_the_best_run_the_table_and_the_figures(searched):
    out = searched["out"]
    assert is_run(out / "best") and read_info(out / "best")["family"] == FAMILY
    with (out / "trials.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["number"] for row in rows] == ["0", "1", "2", "3"]
    assert {"state", "value", "params_lr", "params_batch_size"} <= set(rows[0])
    assert len(json.loads((out / "trials.json").read_text(encoding="utf-8"))) == 4
    assert (out / "history.png").stat().st_size > 1000
    assert not (out / "trials").exists()  # the trial folders are gone: best/ is the one kept
    assert "trials of" in searched["output"]


def test_the_best_config_trains_with_train_config(searched, tmp_path):
    config = json.loads((searched["out"] / "best_config.json").read_text(encoding="utf-8"))
    best = max((t for t in _trials(searched["out"]) if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert config["family"] == FAMILY and config["lr"] == best.params["lr"]
    assert config["batch_size"] == best.params["batch_size"]
    run = tmp_path / "again"
    result = runner.invoke(app, ["train", "--config", str(searched["out"] / "best_config.json"), "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert read_info(run)["family"] == FAMILY


def test_a_study_of_other_settings_is_refused(searched):
    result = _tune(searched["data"], searched["out"], searched["space"], "--trials", "5", "--max-train-samples", "20")
    assert result.exit_code == 2
    assert "study.db" in result.output and "--overwrite" in result.output


def test_a_trial_behind_the_median_is_pruned_and_leaves_no_folder(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=48, n_dev=24, n_test=0)
    # lr 1e-6 learns nothing in an epoch, 0.01 learns the topics: the slow trials fall behind the median
    space = _space(tmp_path, {**SPACE, "lr": {"choices": [1e-6, 0.01]}, "batch_size": None})
    out = tmp_path / "search"
    options = ["--trials", "4", "--startup-trials", "1", "--warmup-epochs", "0", "--batch-size", "8"]
    result = _tune(data, out, space, *options)
    assert result.exit_code == 0, result.output
    states = {t.number: t.state.name for t in _trials(out)}
    assert "PRUNED" in states.values(), states
    pruned = [t for t in _trials(out) if t.state.name == "PRUNED"]
    assert all(t.params["lr"] == 1e-6 and len(t.intermediate_values) == 1 for t in pruned)
    assert sorted(path.name for path in out.iterdir() if path.name.endswith(".partial")) == []
    assert not (out / "trials").exists()


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({"learning_rate": {"low": 0.1, "high": 0.2}}, ["'learning_rate'", "unknown"]),
        ({"lr": {"low": 0.1, "high": 0.01}}, ["'lr'", "low < high"]),
        ({"lr": {"low": 0.1, "high": 2.0}}, ["'lr'", "learning rate in (0, 1)"]),
        ({"batch_size": {"low": 8.5, "high": 32}}, ["'batch_size'", "integers"]),
    ],
)
def test_a_bad_space_file_is_refused_naming_the_file_and_field(tmp_path, space, words):
    data = write_ag_news_folder(tmp_path / "data", n_train=24, n_dev=12, n_test=0)
    path = _space(tmp_path, space)
    result = _tune(data, tmp_path / "search", path, "--trials", "1")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert str(path) in message and all(word in message for word in words), message
    assert not (tmp_path / "search").exists()


def test_on_ray_runs_the_trials_on_a_local_ray_and_writes_the_same_outputs(tmp_path):
    pytest.importorskip("ray")
    data = write_ag_news_folder(tmp_path / "data", n_train=48, n_dev=24, n_test=0)
    space, out = _space(tmp_path, SPACE), tmp_path / "search"
    command = [sys.executable, "-m", "textcls", "tune", "--data", str(data), "--out", str(out), "--space", str(space)]
    command += [*FAST, "--trials", "2", "--on", "ray", "--cpus", "2"]
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    source = str(Path(__file__).resolve().parents[2] / "src")
    environment["PYTHONPATH"] = os.pathsep.join([source, environment.get("PYTHONPATH", "")])
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _trials(out)
    assert len(trials) == 2 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert is_run(out / "best")
    for name in ("best_config.json", "trials.csv", "trials.json", "history.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "best_config.json").read_text(encoding="utf-8"))["family"] == FAMILY
