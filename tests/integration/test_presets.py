"""`textcls train --preset`: stages as run folders, OUT as the final run, resume between stages, refusals."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import textcls
from tests.conftest import write_ag_news_folder
from textcls import runfolder
from textcls.cli.main import app
from textcls.errors import ConfigError, RunFolderError
from textcls.runs.presets import train_preset

runner = CliRunner()

# Tiny stage settings: the preset's recipe with a tiny BERT and a few rows, seconds a stage.
TINY = {"batch_size": 8, "lr": 2e-3, "max_length": 32, "precision": "fp32", "seed": 1}
TINY_STAGES = {"pretrain": {"batch_size": 16, "pseudo_perplexity_texts": 2, "time_budget": None}}


@pytest.fixture()
def data(tmp_path):
    return write_ag_news_folder(tmp_path / "data", n_train=48, n_dev=16, n_test=16)


def _accurate(data, out, tiny_bert, **options):
    settings = {**TINY, "model": str(tiny_bert), "epochs": 2, **options}
    return train_preset("accurate", str(data), out, stage_options=TINY_STAGES, **settings)


def test_accurate_writes_both_stages_and_out_is_the_final_run(data, tiny_bert, tmp_path):
    out = tmp_path / "accurate"
    result = _accurate(data, out, tiny_bert)

    stages = runfolder.stages_dir(out)
    assert runfolder.read_info(stages / "pretrain")["family"] == runfolder.PRETRAINING_FAMILY
    finetune = runfolder.read_info(stages / "finetune")
    assert finetune["family"] == "pretrained"
    assert finetune["train_config"]["model"] == str(stages / "pretrain")  # fine-tuned from the pretrain stage
    assert finetune["train_config"]["layer_lr_decay"] == 0.9 and finetune["train_config"]["average_last"] == 1
    assert finetune["train_config"]["batch_size"] == 8  # the user's flag over the preset's

    manifest = json.loads(runfolder.preset_manifest_path(out).read_text())
    assert [s["name"] for s in manifest["stages"]] == ["pretrain", "finetune"]
    assert all(s["status"] == "done" and s["seconds"] >= 0 for s in manifest["stages"])
    assert manifest["plan"]["estimated_seconds"] > 0

    # OUT is the final stage's run: predict and evaluate read it, and the stages survive beside it
    assert result.run_dir == out and result.metrics["dev"]["accuracy"] == pytest.approx(
        json.loads((stages / "finetune" / "metrics.json").read_text())["dev"]["accuracy"]
    )
    run = textcls.load(out)
    assert run.predict(["shares profit merger"])[0] in run.label_names
    evaluated = runner.invoke(app, ["evaluate", str(out), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    predicted = runner.invoke(app, ["predict", str(out), "the striker scored a goal", "--backend", "torch"])
    assert predicted.exit_code == 0, predicted.output
    assert (stages / "pretrain" / "model").is_dir() and (stages / "finetune" / "model").is_dir()


def test_a_rerun_goes_on_after_the_first_stage_without_redoing_it(data, tiny_bert, tmp_path):
    out = tmp_path / "resumed"
    _accurate(data, out, tiny_bert)
    stages = runfolder.stages_dir(out)
    pretrained_at = (stages / "pretrain" / "textcls.json").stat().st_mtime_ns
    # as if the command had been stopped during the second stage, before its first checkpoint
    shutil.rmtree(stages / "finetune")
    runfolder.partial_dir(stages / "finetune").mkdir()
    for name in runfolder.RUN_ENTRIES:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    manifest = json.loads(runfolder.preset_manifest_path(out).read_text())
    manifest["stages"][1]["status"], manifest["published"] = "running", False
    runfolder.preset_manifest_path(out).write_text(json.dumps(manifest))

    _accurate(data, out, tiny_bert)
    assert (stages / "pretrain" / "textcls.json").stat().st_mtime_ns == pretrained_at  # not trained again
    assert runfolder.is_run(stages / "finetune") and runfolder.is_run(out)
    assert runfolder.read_info(stages / "finetune")["train_config"]["resume"] is True  # the partial folder went on
    assert textcls.load(out).predict(["election minister"])[0] in textcls.load(out).label_names

    # a third run has nothing left to do
    finished_at = (out / "textcls.json").stat().st_mtime_ns
    _accurate(data, out, tiny_bert)
    assert (out / "textcls.json").stat().st_mtime_ns == finished_at


def test_a_stage_killed_after_a_checkpoint_resumes_from_it(data, tiny_bert, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    from textcls.training import trainer

    class Killed(Exception):
        pass

    class KillAtFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Killed("stopped after the first checkpoint")

    made = trainer.training_callbacks
    out, options = tmp_path / "killed", {**TINY, "model": str(tiny_bert), "time_budget": 5.0, "epochs": 2}
    with monkeypatch.context() as patch:
        patch.setattr("textcls.models.pretrained.training_callbacks", lambda budget: [*made(budget), KillAtFirstSave()])
        with pytest.raises(Killed):
            train_preset("fast", str(data), out, **options)
    manifest = json.loads(runfolder.preset_manifest_path(out).read_text())
    assert manifest["stages"][0]["status"] == "running" and not runfolder.is_run(out)
    assert list(runfolder.partial_dir(runfolder.stages_dir(out) / "finetune").glob("checkpoints/checkpoint-*"))

    result = train_preset("fast", str(data), out, **options)
    assert result.metrics["train"]["resumed_from"].endswith("checkpoint-6")  # 48 rows in batches of 8
    assert json.loads(runfolder.preset_manifest_path(out).read_text())["plan"] == manifest["plan"]  # not measured again


def test_the_cli_runs_a_preset_and_prints_the_final_run(data, tiny_bert, tmp_path):
    out = tmp_path / "cli"
    flags = ["--model", str(tiny_bert), "--max-length", "32", "--batch-size", "8", "--precision", "fp32"]
    result = runner.invoke(
        app,
        ["train", "--preset", "fast", "--time-budget", "5", "--data", str(data), "--out", str(out), *flags, "--json"],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["run_dir"] == str(out) and 0.0 <= printed["dev"]["accuracy"] <= 1.0
    again = runner.invoke(
        app, ["train", "--preset", "fast", "--time-budget", "5", "--data", str(data), "--out", str(out), *flags]
    )
    assert again.exit_code == 0, again.output
    assert "dev evaluation of" in again.stdout  # nothing left to train: the finished run's tables
    helped = runner.invoke(app, ["train", "--help"])
    text = " ".join(helped.stdout.replace("│", " ").split())
    assert "--preset" in text and "Flags given override the preset's values" in text


def test_other_options_into_an_existing_out_are_refused_unless_overwrite(data, tiny_bert, tmp_path):
    out = tmp_path / "fast"
    options = {**TINY, "model": str(tiny_bert), "time_budget": 5.0, "max_length": 32}
    first = train_preset("fast", str(data), out, **options)
    manifest = json.loads(runfolder.preset_manifest_path(out).read_text())
    assert [s["name"] for s in manifest["stages"]] == ["finetune"] and manifest["plan"]["fast"]["max_length"] == 32
    assert first.metrics["train"]["epochs"]

    with pytest.raises(RunFolderError, match="holds a --preset fast run of other options"):
        train_preset("fast", str(data), out, **{**options, "lr": 1e-3})
    with pytest.raises(RunFolderError, match="holds a --preset fast run of other preset"):
        train_preset("accurate", str(data), out, **options)

    refused = runner.invoke(app, ["train", "--preset", "fast", "--data", str(data), "--out", str(out)])
    assert refused.exit_code == 2 and "pass --overwrite to start afresh" in refused.stderr

    # a plain run folder is not a preset's to go on with
    plain = textcls.train(data=str(data), out=tmp_path / "plain", family="tfidf").run_dir
    with pytest.raises(RunFolderError, match="already exists; pass --overwrite"):
        train_preset("fast", str(data), plain, **options)
    # --overwrite starts afresh
    again = train_preset("fast", str(data), out, overwrite=True, **{**options, "lr": 1e-3})
    assert json.loads(runfolder.preset_manifest_path(out).read_text())["options"]["lr"] == 1e-3
    assert again.run_dir == out and runfolder.is_run(out)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--preset", "best"], "preset: expected one of accurate, fast, found 'best'"),
        (["--preset", "fast", "--family", "lstm"], "family: --preset fast trains the pretrained family"),
        (["--preset", "accurate", "--layer-lr-decay", "2"], "layer_lr_decay: expected a factor in (0, 1]"),
        (["--preset", "fast", "--time-budget", "0.05", "--max-length", "32"], "time_budget: expected at least"),
    ],
)
def test_bad_preset_options_are_refused_in_one_line(arguments, message, data, tiny_bert, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["train", "--data", str(data), "--model", str(tiny_bert), "--out", str(out), *arguments]
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert not out.exists()  # refused before anything is written


def test_the_python_api_takes_a_preset(data, tiny_bert, tmp_path):
    with pytest.raises(ConfigError, match="preset: expected one of"):
        textcls.train(data=str(data), out=str(tmp_path / "x"), preset="slow")
    with pytest.raises(ConfigError, match="stage_options: expected stage names"):
        textcls.train(data=str(data), out=str(tmp_path / "x"), preset="fast", stage_options={"pretrain": {}})
    assert not (tmp_path / "x").exists()
