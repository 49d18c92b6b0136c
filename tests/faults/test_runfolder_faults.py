"""Fault tests for what a run folder claims about itself: `model_files` entries that lead out of the
folder, label names that do not match the model, and class weights too extreme to train with.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import textcls
from tests.conftest import train_tiny_bert, write_ag_news_folder
from textcls.config import TrainConfig
from textcls.errors import ConfigError, DataError, RunFolderError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ag_news_folder(tmp_path_factory.mktemp("runfolder_faults") / "data", n_train=48, n_dev=16, n_test=0)


@pytest.fixture(scope="module")
def tfidf_run(data: Path) -> Path:
    return textcls.train(data=str(data), out=data.parent / "tfidf", family="tfidf").run_dir


def altered_copy(run_dir: Path, folder: Path, **changes: object) -> Path:
    """A copy of `run_dir` in `folder` whose textcls.json has `changes` applied."""
    copy = folder / f"copy-of-{run_dir.name}"
    shutil.copytree(run_dir, copy)
    info = json.loads((copy / "textcls.json").read_text(encoding="utf-8"))
    info.update(changes)
    (copy / "textcls.json").write_text(json.dumps(info), encoding="utf-8")
    return copy


# ---- model_files that leave the run folder --------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "../textcls.json", "sub/../../x"])
def test_model_files_that_lead_out_of_the_folder_are_refused(tfidf_run: Path, tmp_path: Path, name: str) -> None:
    info = json.loads((tfidf_run / "textcls.json").read_text(encoding="utf-8"))
    files = {**info["model_files"], name: {"bytes": 1, "sha256": "0" * 64}}
    copy = altered_copy(tfidf_run, tmp_path, model_files=files)
    with pytest.raises(RunFolderError, match="model_files") as raised:
        textcls.load(copy)
    assert name in str(raised.value) and "leads out of the run folder" in str(raised.value)


def test_a_model_file_that_is_a_link_out_of_the_folder_is_refused(tfidf_run: Path, tmp_path: Path) -> None:
    copy = altered_copy(tfidf_run, tmp_path)
    outside = tmp_path / "elsewhere.npz"
    weights = next(name for name in json.loads((copy / "textcls.json").read_text())["model_files"])
    os.replace(copy / "model" / weights, outside)
    (copy / "model" / weights).symlink_to(outside)
    with pytest.raises(RunFolderError, match="leads out of the run folder"):
        textcls.load(copy)


# ---- label names against the model ----------------------------------------------------------------


def test_a_tfidf_run_with_label_names_the_model_does_not_have_is_refused(tfidf_run: Path, tmp_path: Path) -> None:
    names = textcls.load(tfidf_run).label_names
    for wrong in (names[:-1], [*names, "Extra"]):
        copy = altered_copy(tfidf_run, tmp_path / str(len(wrong)), label_names=wrong)
        with pytest.raises(RunFolderError, match=f"expected {len(names)} label names.*found {len(wrong)}"):
            textcls.load(copy).predict(["stocks fell"])


def test_a_pretrained_run_with_label_names_the_model_does_not_have_is_refused(
    tiny_bert: Path, data: Path, tmp_path: Path
) -> None:
    run_dir = train_tiny_bert(tiny_bert, tmp_path, data, epochs=1)
    names = textcls.load(run_dir).label_names
    copy = altered_copy(run_dir, tmp_path, label_names=names[:-1])
    with pytest.raises(RunFolderError, match=f"expected {len(names)} label names.*found {len(names) - 1}"):
        textcls.load(copy).predict(["stocks fell"])


# ---- class weights --------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [1e308, 1e4, 1e-5])
def test_class_weights_beyond_the_bound_are_refused(weight: float) -> None:
    with pytest.raises(ConfigError, match=r"class_weights, field 'Sports': expected a weight from 0\.001 to 1000"):
        TrainConfig(family="tfidf", class_weights=json.dumps({"Sports": weight}))


def test_class_weights_from_a_file_beyond_the_bound_are_refused(data: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"Sports": 1e308}), encoding="utf-8")
    with pytest.raises(DataError, match="weights.json, field 'Sports': expected a weight from"):
        textcls.train(data=str(data), out=tmp_path / "run", family="lstm", class_weights=str(weights), epochs=1)
    assert not (tmp_path / "run").exists()


def test_class_weights_within_the_bound_still_train(data: Path, tmp_path: Path) -> None:
    TrainConfig(family="tfidf", class_weights=json.dumps({"Sports": 1000, "World": 0.001}))
