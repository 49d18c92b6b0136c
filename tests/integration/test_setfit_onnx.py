"""ONNX export of setfit runs (body, mean pooling, normalisation and head in one graph) and the onnx backends."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import textcls
from tests.conftest import make_multilabel_rows, make_texts, write_ag_news_folder, write_multilabel_folder
from textcls.config import PredictConfig
from textcls.errors import RunFolderError
from textcls.inference import auto as autobackend
from textcls.inference.auto import Candidate, candidates
from textcls.inference.onnx import ONNX_DIR, OnnxClassifier, export_onnx
from textcls.runfolder import backend_cache_path, file_digest, read_info

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'textcls[onnx]')")

# fast settings for the tiny BERT: 2 pairs per row, a high rate, no early stopping
TINY = {"lr": 1e-3, "max_length": 32, "setfit_iterations": 2, "early_stopping_patience": 0, "seed": 1}


def topic_texts(n: int = 40) -> list[str]:
    return [f"{title} {body}" for _, title, body in make_texts(n, seed=11)]


def export_with_the_cli(run_dir) -> None:
    from typer.testing import CliRunner

    from textcls.cli.main import app

    result = CliRunner().invoke(app, ["export", str(run_dir), "--format", "onnx", "--int8"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def setfit_run(tiny_bert, tmp_path_factory):
    """A single-label setfit run on generated topics, exported to ONNX (fp32 and int8) by `textcls export`."""
    root = tmp_path_factory.mktemp("setfit-onnx")
    data = write_ag_news_folder(root / "data", n_train=32, n_dev=16, n_test=0)
    run_dir = textcls.train(data=str(data), out=root / "run", family="setfit", model=str(tiny_bert), **TINY).run_dir
    export_with_the_cli(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def multilabel_setfit_run(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("setfit-onnx-multi")
    data = write_multilabel_folder(root / "data", n_train=48, n_dev=24)
    run_dir = textcls.train(
        data=str(data), out=root / "run", family="setfit", model=str(tiny_bert), multi_label=True, **TINY
    ).run_dir
    export_onnx(run_dir, int8=True)
    return run_dir


def test_the_export_is_one_graph_from_token_ids_to_logits_checked_against_torch(setfit_run):
    record = json.loads((setfit_run / ONNX_DIR / "export.json").read_text())
    assert record["family"] == "setfit" and not record["multi_label"]
    assert record["inputs"] == ["input_ids", "attention_mask"]  # the body reads no token types
    assert record["files"]["onnx"]["check"]["max_abs_prob_diff"] < 1e-4
    assert record["files"]["onnx-int8"]["bytes"] < record["files"]["onnx"]["bytes"]


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_backends_give_the_torch_probabilities_of_a_setfit_run(setfit_run, backend):
    sample = topic_texts(40)
    expected = textcls.load(setfit_run, PredictConfig(backend="torch")).predict_proba(sample)
    run = textcls.load(setfit_run, PredictConfig(backend=backend, threads=1))
    assert isinstance(run.classifier, OnnxClassifier) and run.predict_config.backend == backend
    assert run.family == "setfit"  # as `GET /v1/model` reports it
    found = run.classifier.predict_proba(sample, batch_size=7)  # batches cut across length buckets
    np.testing.assert_allclose(found.sum(axis=1), 1.0, atol=1e-5)
    same_labels = (found.argmax(axis=1) == expected.argmax(axis=1)).mean()
    if backend == "onnx":
        np.testing.assert_allclose(found, expected, atol=1e-4)
        assert same_labels == 1.0
    else:
        np.testing.assert_allclose(found, expected, atol=0.1)
        assert same_labels >= 0.9


@pytest.mark.parametrize("backend, atol", [("onnx", 1e-4), ("onnx-int8", 0.1)])
def test_a_multi_label_setfit_run_keeps_one_sigmoid_per_label_on_onnx(multilabel_setfit_run, backend, atol):
    sample = [text for _, text in make_multilabel_rows(30, seed=5)]
    expected = textcls.load(multilabel_setfit_run, PredictConfig(backend="torch")).predict_proba(sample)
    run = textcls.load(multilabel_setfit_run, PredictConfig(backend=backend, threads=1))
    assert isinstance(run.classifier, OnnxClassifier) and run.classifier.multi_label
    found = run.classifier.predict_proba(sample)
    np.testing.assert_allclose(found, expected, atol=atol)
    assert not np.allclose(found.sum(axis=1), 1.0)  # sigmoids, not a softmax
    if backend == "onnx":
        assert ((found >= 0.5) == (expected >= 0.5)).all()


def test_the_onnx_backend_explains_a_setfit_run_with_its_bodys_attention(setfit_run):
    run = textcls.load(setfit_run, PredictConfig(backend="onnx"))
    explanation = run.explain("the coach and the striker after the playoff goal")
    assert explanation.family == "setfit" and explanation.attention.shape[:2] == (2, 4)  # tiny BERT's layers, heads
    assert run.classifier.num_parameters() == textcls.load(setfit_run, PredictConfig(backend="torch")).num_parameters()


def test_predict_backend_auto_times_the_onnx_backends_of_a_setfit_run_and_picks_the_fastest(
    setfit_run, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from textcls.cli.main import app

    run_dir = tmp_path / "run"
    shutil.copytree(setfit_run, run_dir)
    assert {Candidate("onnx"), Candidate("onnx-int8")} <= set(candidates(run_dir, read_info(run_dir), PredictConfig()))
    timed = []

    def measure(predictor, texts, batch_size):  # onnx-int8 the fastest; real probabilities
        name = getattr(predictor, "backend", "torch")
        timed.append(name)
        return {"onnx": 300.0, "onnx-int8": 400.0}.get(name, 100.0), predictor.predict_proba(texts, batch_size)

    monkeypatch.setattr(autobackend, "time_predictions", measure)
    result = CliRunner().invoke(app, ["predict", str(run_dir), "--backend", "auto", "goal coach season"])
    assert result.exit_code == 0, result.output
    assert {"onnx", "onnx-int8"} <= set(timed)
    (entry,) = json.loads(backend_cache_path(run_dir).read_text())["machines"].values()
    assert entry["backend"] == "onnx-int8"
    run = textcls.load(run_dir)  # --backend auto, from the cache
    assert run.backend_choice["chosen"] == "onnx-int8" and isinstance(run.classifier, OnnxClassifier)
    assert run.predict(["goal coach season"])[0] in result.stdout


def test_a_damaged_graph_of_a_setfit_run_is_refused_naming_the_file_and_the_fix(setfit_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(setfit_run, run_dir)
    graph = run_dir / ONNX_DIR / "model.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # cut short
    with pytest.raises(RunFolderError, match=r"model\.onnx are damaged .*textcls export .* --format onnx"):
        textcls.load(run_dir, PredictConfig(backend="onnx"))


def test_a_graph_exported_before_the_head_changed_is_refused(setfit_run, tmp_path):
    from safetensors.torch import load_file, save_file

    run_dir = tmp_path / "run"
    shutil.copytree(setfit_run, run_dir)
    head = run_dir / "model" / "head.safetensors"
    weights = load_file(head)
    weights["bias"][0] += 1.0  # one class's logit moves: the stale graph would answer otherwise
    save_file(weights, head)
    # the run's own record follows the new head (as a retrain would); only the export is stale
    info = json.loads((run_dir / "textcls.json").read_text())
    info["model_files"]["head.safetensors"] = {"bytes": head.stat().st_size, "sha256": file_digest(head)}
    (run_dir / "textcls.json").write_text(json.dumps(info))
    with pytest.raises(RunFolderError, match="exported from other weights.*textcls export"):
        textcls.load(run_dir, PredictConfig(backend="onnx-int8"))


def test_setfit_embeds_with_the_one_mean_pooling_of_sentence_embeddings(setfit_run):
    from textcls.models.pretrained import sentence_embeddings

    sample = topic_texts(12)
    own = textcls.load(setfit_run, PredictConfig(backend="torch")).classifier.embed(sample)
    frozen = sentence_embeddings(sample, model=str(setfit_run / "model"), max_length=32)  # the body's folder
    np.testing.assert_allclose(frozen, own, atol=1e-5)
