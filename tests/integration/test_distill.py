"""`textcls distill`: a tiny BERT run teaches a cut-down copy of itself, an LSTM, and students that fail clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import textcls
from tests.conftest import interrupt_student_fit, make_texts, write_ag_news_folder
from textcls.cli.main import app
from textcls.config import DistillConfig
from textcls.data.loading import SoftTargets
from textcls.errors import ConfigError, TextclsError
from textcls.models.pretrained import cut_encoder, evenly_chosen_layers
from textcls.runs import distill as distill_module
from textcls.runs.distill import distill, read_student
from textcls.training.objectives import Distillation, Objective, soft_target_loss

runner = CliRunner()
FAST = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "max_length": 32, "early_stopping_patience": 0, "seed": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ag_news_folder(tmp_path_factory.mktemp("distill") / "data", n_train=48, n_dev=16, n_test=0)


@pytest.fixture(scope="module")
def unlabeled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unlabeled") / "news.txt"
    path.write_text("\n".join(f"{title} {body}" for _, title, body in make_texts(20, seed=7)) + "\n", encoding="utf-8")
    return path


def _layer_weights(model: torch.nn.Module, layer: int) -> dict[str, torch.Tensor]:
    prefix = f"bert.encoder.layer.{layer}."
    return {name.removeprefix(prefix): value for name, value in model.state_dict().items() if name.startswith(prefix)}


def test_layers_are_picked_evenly_keeping_the_top_one():
    assert evenly_chosen_layers(2, 1) == [1]
    assert evenly_chosen_layers(6, 2) == [2, 5]
    assert evenly_chosen_layers(12, 4) == [2, 5, 8, 11]
    assert evenly_chosen_layers(3, 3) == [0, 1, 2]


def test_a_one_layer_student_starts_as_the_teachers_chosen_layer(tiny_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model_dir = tiny_run / "model"
    teacher = AutoModelForSequenceClassification.from_pretrained(model_dir)
    names = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    reordered = names[::-1]  # the data may list the labels in another order: the head's rows follow it

    chosen = cut_encoder(model_dir, 1, tmp_path / "student", reordered)

    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert chosen == [1] and student.config.num_hidden_layers == 1
    assert len(student.bert.encoder.layer) == 1
    expected = _layer_weights(teacher, 1)
    for name, value in _layer_weights(student, 0).items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)
    torch.testing.assert_close(
        student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight
    )
    torch.testing.assert_close(student.classifier.weight, teacher.classifier.weight.flip(0))
    assert [student.config.id2label[i] for i in range(len(reordered))] == reordered
    assert (tmp_path / "student" / "tokenizer_config.json").is_file()


def test_rows_without_a_label_train_on_the_soft_targets_alone():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    settings = Distillation(temperature=2.0, alpha=0.7)
    objective = Objective(distillation=settings)
    no_labels = torch.cat([torch.full((2, 1), -1.0), teacher], dim=1)

    loss = objective.loss(logits, no_labels)

    torch.testing.assert_close(loss, 0.3 * soft_target_loss(logits, teacher, 2.0))
    labelled = torch.cat([torch.tensor([[0.0], [2.0]]), teacher], dim=1)
    cross_entropy = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2]))
    torch.testing.assert_close(
        objective.loss(logits, labelled), 0.3 * soft_target_loss(logits, teacher, 2.0) + 0.7 * cross_entropy
    )
    # dev labels (one class index a text) keep the plain cross-entropy
    torch.testing.assert_close(objective.loss(logits, torch.tensor([0, 2])), cross_entropy)


def test_soft_targets_mark_rows_without_a_gold_label():
    soft = SoftTargets(np.zeros((3, 2), dtype=np.float32), np.array([True, False, True]), 2.0, 0.5)
    targets = soft.targets([1, 0, 0])
    assert targets.shape == (3, 3) and targets[:, 0].tolist() == [1.0, -1.0, 0.0]


def test_a_distilled_run_loads_predicts_and_records_its_teacher(tiny_run, data, unlabeled, tmp_path):
    out = tmp_path / "student"
    result = runner.invoke(
        app,
        ["distill", str(tiny_run), "--student", "layers:1", "--data", str(data), "--unlabeled", str(unlabeled)]
        + ["--out", str(out), "--epochs", "1", "--batch-size", "8", "--max-length", "32", "--temperature", "3"]
        + ["--early-stopping-patience", "0", "--json"],
    )
    assert result.exit_code == 0, result.output

    run = textcls.load(out, textcls.PredictConfig(backend="torch"))
    assert run.predict(["Shares and profit rose"])[0] in run.label_names
    assert run.classifier.model.config.num_hidden_layers == 1
    recorded = run.info["distillation"]
    assert recorded["teacher"] == str(tiny_run.resolve()) and recorded["student"] == "layers:1"
    assert recorded["teacher_layers"] == [1] and recorded["temperature"] == 3.0 and recorded["alpha"] == 0.5
    assert recorded["unlabeled_rows"] == 20
    assert run.info["data"]["rows"]["train"] == 48 + 20  # the unlabelled texts were trained on
    assert "dev" in json.loads((out / "metrics.json").read_text())
    assert not (out / "checkpoints").exists()  # the teacher's cache and the student's start went with them


def test_a_from_scratch_family_learns_from_the_teacher(tiny_run, data, tmp_path):
    result = distill(tiny_run, "lstm", data=str(data), out=tmp_path / "lstm", **FAST)

    run = textcls.load(result.run_dir, textcls.PredictConfig(backend="torch"))
    assert run.family == "lstm" and run.info["distillation"]["teacher_layers"] is None
    assert len(run.predict(["Coach and striker won the playoff", "Chip software"])) == 2


def test_a_teacher_with_other_labels_is_refused_naming_both(tiny_run, tmp_path):
    other = write_ag_news_folder(tmp_path / "other", n_train=16, n_dev=8, n_test=0)
    (other / "classes.txt").write_text("Alpha\nBeta\nGamma\nDelta\n", encoding="utf-8")

    with pytest.raises(TextclsError, match=r"Alpha.*Business|Business.*Alpha") as caught:
        distill(tiny_run, "layers:1", data=str(other), out=tmp_path / "run", **FAST)

    assert "Sports" in str(caught.value) and "Gamma" in str(caught.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("student", "message"),
    [("no-such-thing", "layers:N, a model folder or a family name"), ("layers:3", "N <= 2"), ("layers:x", ">= 1")],
)
def test_a_bad_student_is_a_clear_error(tiny_run, data, tmp_path, student, message):
    with pytest.raises(ConfigError, match=message):
        distill(tiny_run, student, data=str(data), out=tmp_path / "run", **FAST)


def test_layers_need_a_pretrained_teacher_and_tfidf_cannot_learn_soft_targets(tiny_run):
    config = DistillConfig(teacher=str(tiny_run), student="layers:1")
    with pytest.raises(ConfigError, match="pretrained-family teacher"):
        read_student(config, {"family": "lstm"})
    with pytest.raises(ConfigError, match="trains on soft targets"):
        read_student(DistillConfig(teacher=str(tiny_run), student="tfidf"), {"family": "pretrained"})


def test_a_multi_label_teacher_is_refused(tiny_run, data, tmp_path):
    teacher = shutil.copytree(tiny_run, tmp_path / "teacher")
    info = json.loads((teacher / "textcls.json").read_text())
    (teacher / "textcls.json").write_text(json.dumps({**info, "multi_label": True}))

    with pytest.raises(ConfigError, match="single-label"):
        distill(teacher, "layers:1", data=str(data), out=tmp_path / "run", **FAST)


def test_the_cli_turns_a_bad_student_into_one_line(tiny_run, data, tmp_path):
    result = runner.invoke(
        app, ["distill", str(tiny_run), "--student", "bogus", "--data", str(data), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "layers:N" in result.output and "Traceback" not in result.output


def test_a_teacher_in_the_config_file_is_refused_in_one_line(tiny_run, data, tmp_path):
    config = tmp_path / "options.json"
    config.write_text(json.dumps({"teacher": str(tiny_run), "temperature": 3.0}))
    result = runner.invoke(
        app,
        ["distill", str(tiny_run), "--config", str(config), "--student", "lstm", "--data", str(data)]
        + ["--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 2, result.output
    assert "options.json" in result.output and "teacher" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_a_resumed_distillation_reuses_the_teachers_probabilities(tiny_run, data, tmp_path, monkeypatch):
    from textcls.models.neural import TorchClassifier

    out = tmp_path / "lstm"
    real_fit = interrupt_student_fit(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        distill(tiny_run, "lstm", data=str(data), out=out, **FAST)
    cached = list(tmp_path.glob("*partial*/checkpoints/teacher_logits.npy"))
    assert len(cached) == 1

    monkeypatch.setattr(TorchClassifier, "fit", classmethod(real_fit))

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(distill_module, "load", no_teacher)
    result = distill(tiny_run, "lstm", data=str(data), out=out, resume=True, **FAST)
    assert textcls.load(result.run_dir, textcls.PredictConfig(backend="torch")).family == "lstm"
