"""`textcls distill` from an ensemble: two tiny BERT runs of one recipe (seeds 1 and 2) teach one student."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import textcls
from tests.conftest import interrupt_student_fit, write_ag_news_folder
from textcls.cli.main import app
from textcls.config import DistillConfig
from textcls.errors import ConfigError, TextclsError
from textcls.runs import distill as distill_module
from textcls.runs.distill import distill

runner = CliRunner()
FAST = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "max_length": 32, "early_stopping_patience": 0, "seed": 1}
TEXTS = ["Shares and profit rose", "Coach and striker won the playoff", "Chip software for laptop"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ag_news_folder(tmp_path_factory.mktemp("ensemble") / "data", n_train=32, n_dev=16, n_test=0)


@pytest.fixture(scope="module")
def second_teacher(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_run`'s recipe with another seed (and one epoch): the same labels, other weights."""
    root = tmp_path_factory.mktemp("second-teacher")
    train = write_ag_news_folder(root / "data", n_train=96, n_dev=32, n_test=0)
    return textcls.train(data=str(train), out=root / "run", model=str(tiny_bert), **{**FAST, "seed": 2}).run_dir


def _counting_load(monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> list[Path]:
    """Record every teacher `distill` loads for prediction; the `fail_at`-th load (from 1) is interrupted."""
    loaded: list[Path] = []
    real_load = distill_module.load

    def load(run_dir, *args, **kwargs):
        loaded.append(Path(run_dir).resolve())
        if len(loaded) == fail_at:
            raise KeyboardInterrupt
        return real_load(run_dir, *args, **kwargs)

    monkeypatch.setattr(distill_module, "load", load)
    return loaded


def test_the_soft_targets_are_the_mean_of_the_teachers_probabilities(tiny_run, second_teacher, tmp_path):
    label_names = ["Sports", "World", "Sci/Tech", "Business"]  # the data's order, not the teachers'
    config = DistillConfig(teacher=[str(tiny_run), str(second_teacher)], student="lstm")

    logits = distill_module.ensemble_logits(TEXTS, label_names, config, [tiny_run, second_teacher], tmp_path)

    torch_backend = textcls.PredictConfig(backend="torch")
    each = []
    for run_dir in (tiny_run, second_teacher):
        run = textcls.load(run_dir, torch_backend)
        each.append(run.predict_proba(TEXTS)[:, [run.label_names.index(name) for name in label_names]])
    assert not np.allclose(each[0], each[1], atol=1e-3)  # two teachers that disagree, so the mean is tested
    np.testing.assert_allclose(np.exp(logits), (each[0] + each[1]) / 2, rtol=1e-5, atol=1e-7)
    cached = sorted(path.name for path in tmp_path.glob("checkpoints/teacher_logits*.npy"))
    assert cached == ["teacher_logits-2.npy", "teacher_logits.npy"]


def test_an_ensemble_distils_into_an_ordinary_run_cut_from_the_first_teacher(
    tiny_run, second_teacher, data, tmp_path, monkeypatch
):
    cut_from = []
    real_cut = distill_module.cut_encoder

    def cut_encoder(model_dir, *args, **kwargs):
        cut_from.append(Path(model_dir).resolve())
        return real_cut(model_dir, *args, **kwargs)

    monkeypatch.setattr(distill_module, "cut_encoder", cut_encoder)
    out = tmp_path / "student"
    result = runner.invoke(
        app,
        ["distill", str(tiny_run), str(second_teacher), "--student", "layers:1", "--data", str(data)]
        + ["--out", str(out), "--epochs", "1", "--batch-size", "8", "--max-length", "32"]
        + ["--early-stopping-patience", "0", "--json"],
    )
    assert result.exit_code == 0, result.output

    assert cut_from == [(tiny_run / "model").resolve()]
    run = textcls.load(out, textcls.PredictConfig(backend="torch"))
    assert run.classifier.model.config.num_hidden_layers == 1
    assert all(label in run.label_names for label in run.predict(TEXTS))
    recorded = run.info["distillation"]
    assert recorded["teachers"] == [str(tiny_run.resolve()), str(second_teacher.resolve())]
    assert recorded["teacher"] == str(tiny_run.resolve()) and recorded["teacher_layers"] == [1]
    assert "dev" in json.loads((out / "metrics.json").read_text())
    assert not (out / "checkpoints").exists()


def test_a_resumed_ensemble_computes_only_the_teachers_not_yet_done(
    tiny_run, second_teacher, data, tmp_path, monkeypatch
):
    out = tmp_path / "lstm"
    teachers = [tiny_run, second_teacher]
    loaded = _counting_load(monkeypatch, fail_at=2)  # interrupted while the second teacher predicts
    with pytest.raises(KeyboardInterrupt):
        distill(teachers, "lstm", data=str(data), out=out, **FAST)
    (checkpoints,) = tmp_path.glob("*partial*/checkpoints")
    assert sorted(path.name for path in checkpoints.glob("*.npy")) == ["teacher_logits.npy"]

    loaded = _counting_load(monkeypatch)
    result = distill(teachers, "lstm", data=str(data), out=out, resume=True, **FAST)

    assert loaded == [second_teacher.resolve()]  # the first teacher's probabilities came from its file
    run = textcls.load(result.run_dir, textcls.PredictConfig(backend="torch"))
    assert run.family == "lstm" and len(run.info["distillation"]["teachers"]) == 2


def test_a_resumed_ensemble_whose_teachers_are_all_done_runs_none(
    tiny_run, second_teacher, data, tmp_path, monkeypatch
):
    from textcls.models.neural import TorchClassifier

    out = tmp_path / "lstm"
    real_fit = interrupt_student_fit(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        distill([tiny_run, second_teacher], "lstm", data=str(data), out=out, **FAST)
    (checkpoints,) = tmp_path.glob("*partial*/checkpoints")
    written = {path.name: path.stat().st_mtime_ns for path in checkpoints.glob("teacher_logits*.npy")}
    assert sorted(written) == ["teacher_logits-2.npy", "teacher_logits.npy"]

    monkeypatch.setattr(TorchClassifier, "fit", classmethod(real_fit))
    loaded = _counting_load(monkeypatch)
    distill([tiny_run, second_teacher], "lstm", data=str(data), out=out, resume=True, **FAST)
    assert loaded == []


def _with_info(run_dir: Path, folder: Path, **changes) -> Path:
    """A copy of the run `run_dir` whose textcls.json says otherwise in `changes`."""
    copy = shutil.copytree(run_dir, folder)
    info = json.loads((copy / "textcls.json").read_text())
    (copy / "textcls.json").write_text(json.dumps({**info, **changes}))
    return copy


def test_a_teacher_of_another_label_set_is_refused_naming_both(tiny_run, data, tmp_path, monkeypatch):
    other = _with_info(tiny_run, tmp_path / "other", label_names=["Alpha", "Beta", "Gamma", "Delta"])
    loaded = _counting_load(monkeypatch)

    with pytest.raises(TextclsError) as caught:
        distill([tiny_run, other], "lstm", data=str(data), out=tmp_path / "run", **FAST)

    message = str(caught.value)
    assert str(tiny_run) in message and str(other) in message
    assert "other labels" in message and "Sports" in message and "Gamma" in message
    assert not (tmp_path / "run").exists() and loaded == []


def test_teachers_must_list_their_labels_in_one_order_and_be_of_one_kind(tiny_run, data, tmp_path):
    names = json.loads((tiny_run / "textcls.json").read_text())["label_names"]
    reordered = _with_info(tiny_run, tmp_path / "reordered", label_names=names[::-1])
    with pytest.raises(TextclsError, match="the same labels in another order"):
        distill([tiny_run, reordered], "lstm", data=str(data), out=tmp_path / "run", **FAST)

    multi = _with_info(tiny_run, tmp_path / "multi", multi_label=True)
    with pytest.raises(TextclsError, match="the first is single-label, the other multi-label") as caught:
        distill([tiny_run, multi], "lstm", data=str(data), out=tmp_path / "run", **FAST)
    assert str(multi) in str(caught.value)


def test_a_teacher_named_twice_is_refused(tiny_run, data, tmp_path):
    again = tiny_run.parent / ".." / tiny_run.parent.name / tiny_run.name  # another spelling of the same folder
    with pytest.raises(ConfigError, match="twice"):
        distill([tiny_run, again], "lstm", data=str(data), out=tmp_path / "run", **FAST)


def test_one_teacher_is_a_run_folder_and_several_a_list():
    assert DistillConfig(teacher="runs/a", student="lstm").teachers == ("runs/a",)
    assert DistillConfig(teacher=["runs/a", "runs/b"], student="lstm").teachers == ("runs/a", "runs/b")
    for bad in ([], ["runs/a", ""], ["runs/a", 3]):
        with pytest.raises(ConfigError, match="teacher"):
            DistillConfig(teacher=bad, student="lstm")


def test_the_single_teacher_form_records_its_teacher_as_before(tiny_run, data, tmp_path):
    result = distill(tiny_run, "lstm", data=str(data), out=tmp_path / "lstm", **FAST)

    recorded = textcls.load(result.run_dir, textcls.PredictConfig(backend="torch")).info["distillation"]
    assert recorded["teacher"] == str(tiny_run.resolve()) and recorded["teachers"] == [recorded["teacher"]]


def test_the_cli_turns_teachers_that_differ_into_one_line(tiny_run, data, tmp_path):
    other = _with_info(tiny_run, tmp_path / "other", label_names=["Alpha", "Beta", "Gamma", "Delta"])
    result = runner.invoke(
        app,
        ["distill", str(tiny_run), str(other), "--student", "lstm", "--data", str(data), "--out", str(tmp_path / "r")],
        env={"TERMINAL_WIDTH": "400"},
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "differ: other labels" in result.output and str(other) in result.output
