"""Run folders: atomic writes, self-description, resume, and the errors around them."""

from __future__ import annotations

import json

import pytest

import textcls
from textcls.errors import RunFolderError, TextclsError
from textcls.models.pretrained import PretrainedClassifier
from textcls.config import split_options
from textcls.runfolder import read_info as read_run_info
from tests.conftest import write_ag_news_folder


def tiny_options(tiny_bert, **extra):
    return {"model": str(tiny_bert), "batch_size": 8, "max_length": 32, "lr": 1e-3, **extra}


def test_resume_continues_from_the_last_checkpoint_of_an_interrupted_run(tiny_bert, tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=32, n_dev=8, n_test=0)
    out = tmp_path / "runs" / "resumed"
    loaded = textcls.runs.load_data(textcls.DataConfig(data=str(data)), splits=("train", "dev"))
    # An interrupted run: one epoch's checkpoint in the partial folder, no finished run folder.
    partial = tmp_path / "runs" / ".resumed.partial"
    config = textcls.TrainConfig(**tiny_options(tiny_bert, epochs=1))
    PretrainedClassifier.fit(loaded.splits["train"], loaded.splits["dev"], loaded.label_names, config, partial / "checkpoints")
    assert not out.exists()
    with pytest.raises(RunFolderError, match="continue it with --resume"):
        textcls.load(out)

    result = textcls.train(data=str(data), out=out, **tiny_options(tiny_bert, epochs=2, resume=True))
    summary = result.metrics["train"]
    assert summary["resumed_from"].endswith("checkpoint-4")  # 32 rows / batch 8 = 4 steps per epoch
    assert summary["global_step"] == 8
    assert [round(row["epoch"]) for row in summary["epochs"]] == [1, 2]
    assert not partial.exists()


def test_without_resume_leftovers_are_discarded(tiny_bert, tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=16, n_dev=8, n_test=0)
    partial = tmp_path / "runs" / ".fresh.partial"
    (partial / "checkpoints" / "checkpoint-99").mkdir(parents=True)
    result = textcls.train(data=str(data), out=tmp_path / "runs" / "fresh", **tiny_options(tiny_bert, epochs=1))
    assert result.metrics["train"]["resumed_from"] is None
    assert result.metrics["train"]["global_step"] == 2


def test_overwrite_replaces_a_run_only_when_the_new_one_is_complete(tiny_bert, tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=16, n_dev=8, n_test=0)
    out = tmp_path / "run"
    textcls.train(data=str(data), out=out, **tiny_options(tiny_bert, epochs=1))
    first = read_run_info(out)["created"]
    with pytest.raises(TextclsError, match="already exists"):
        textcls.train(data=str(data), out=out, **tiny_options(tiny_bert, epochs=1))
    # A failing replacement (bad data) leaves the old run untouched.
    (data / "dev.csv").write_text('"label","title","description"\n"9","x","y"\n')
    with pytest.raises(textcls.DataError):
        textcls.train(data=str(data), out=out, overwrite=True, **tiny_options(tiny_bert, epochs=1))
    assert read_run_info(out)["created"] == first
    assert not (tmp_path / ".run.partial").exists()
    assert textcls.load(out).predict(["shares profit"])[0] in ["World", "Sports", "Business", "Sci/Tech"]


def test_load_rejects_folders_that_are_not_runs(tmp_path):
    with pytest.raises(RunFolderError, match="expected textcls.json"):
        textcls.load(tmp_path)
    (tmp_path / "textcls.json").write_text(json.dumps({"format_version": 99, "family": "pretrained"}))
    with pytest.raises(RunFolderError, match="upgrade textcls"):
        textcls.load(tmp_path)
    (tmp_path / "textcls.json").write_text(json.dumps({"format_version": 1, "family": "gpt"}))
    with pytest.raises(RunFolderError, match="unknown model family"):
        textcls.load(tmp_path)


def test_split_options_routes_keywords_and_rejects_unknown_ones():
    data, train = split_options({"data": "d", "epochs": 2, "seed": 7, "skip_bad_rows": True})
    assert data.data == "d" and data.skip_bad_rows and data.seed == 7
    assert train.epochs == 2 and train.seed == 7
    with pytest.raises(TypeError, match="epochz"):
        split_options({"epochz": 2})
