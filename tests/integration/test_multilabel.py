"""Multi-label end to end on generated data: CLI train/predict/evaluate/report, thresholds saved and
overridden, the server's response shape, and ONNX (sigmoid) against torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import textcls
from tests.conftest import TOPIC_WORDS, write_ag_news_folder, write_multilabel_folder
from textcls.cli.main import app

LABELS = list(TOPIC_WORDS)
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tfidf_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multilabel-cli")
    data = write_multilabel_folder(root / "data", n_train=240, n_dev=60, jsonl=True)
    out = root / "runs" / "tfidf"
    result = invoke("train", "--data", data, "--family", "tfidf", "--multi-label", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dev"]["multi_label"] is True
    return out


def test_train_saves_thresholds_and_multi_label_metrics(tfidf_run):
    info = json.loads((tfidf_run / "textcls.json").read_text())
    assert info["multi_label"] is True and info["data_config"]["multi_label"] is True
    assert set(info["thresholds"]) == set(LABELS) and all(0 < t < 1 for t in info["thresholds"].values())
    dev = json.loads((tfidf_run / "metrics.json").read_text())["dev"]
    for key in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "per_label", "co_occurrence"):
        assert key in dev
    assert dev["thresholds"] == info["thresholds"] and dev["micro_f1"] >= 0.9
    assert set(dev["per_label"]["World"]) == {"precision", "recall", "f1", "support"}
    assert info["train_config"]["metric"] == "micro_f1"


def test_predict_answers_labels_and_scores_and_takes_a_threshold(tfidf_run):
    text = "Shares Profit merger investors Goal Coach striker season"
    result = invoke("predict", tfidf_run, text, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == {"labels", "scores"} and set(record["scores"]) == set(LABELS)
    assert record["labels"] == ["Sports", "Business"]
    high = json.loads(invoke("predict", tfidf_run, text, "--json", "--threshold", "0.999").stdout)
    assert high["labels"] == [] and high["scores"] == pytest.approx(record["scores"])
    low_world = json.loads(invoke("predict", tfidf_run, text, "--json", "--threshold", '{"World": 0.0001}').stdout)
    assert low_world["labels"] == ["World", "Sports", "Business"]
    table = invoke("predict", tfidf_run, text)
    assert table.exit_code == 0 and "Sports, Business" in table.stdout
    wrong = invoke("predict", tfidf_run, text, "--threshold", '{"Wrld": 0.3}')
    assert wrong.exit_code == 2 and "unknown label(s) ['Wrld']" in wrong.stderr


def test_python_api_predicts_label_sets(tfidf_run):
    run = textcls.load(tfidf_run)
    assert run.multi_label and run.predict(["goal coach shares profit"]) == [["Sports", "Business"]]
    forced = textcls.load(tfidf_run, textcls.PredictConfig(backend="torch", threshold=0.999))
    assert forced.thresholds.tolist() == [0.999] * 4 and forced.predict(["goal coach"]) == [[]]


def test_evaluate_and_report_show_per_label_figures_and_co_occurrence(tfidf_run, tmp_path):
    result = invoke("evaluate", tfidf_run, "--split", "dev", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["multi_label"] and metrics["num_samples"] == 60 and 0 <= metrics["hamming_loss"] <= 1
    assert np.diag(metrics["co_occurrence"]).tolist() == [metrics["per_label"][n]["support"] for n in LABELS]
    table = invoke("evaluate", tfidf_run, "--split", "dev")
    assert "micro F1" in table.stdout and "Hamming loss" in table.stdout and "gold labels together" in table.stdout
    strict = json.loads(invoke("evaluate", tfidf_run, "--split", "dev", "--json", "--threshold", "0.999").stdout)
    assert strict["thresholds"] == {name: 0.999 for name in LABELS} and strict["micro_f1"] < metrics["micro_f1"]

    page = tmp_path / "report.html"
    result = invoke("report", tfidf_run, "--split", "dev", "--out", page)
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert 'id="per-label"' in html and 'id="co-occurrence"' in html and "Hamming loss" in html
    assert "Confusion matrix" not in html


def test_single_label_runs_refuse_a_threshold_and_multi_label_refuses_class_weights(tfidf_run, tmp_path):
    data = write_ag_news_folder(tmp_path / "single", n_train=64, n_dev=16, n_test=0)
    out = tmp_path / "single-run"
    assert invoke("train", "--data", data, "--family", "tfidf", "--out", out).exit_code == 0
    result = invoke("predict", out, "goal", "--threshold", "0.3")
    assert result.exit_code == 2 and "expected a multi-label run for --threshold" in result.stderr
    data = write_multilabel_folder(tmp_path / "multi", n_train=60, n_dev=20)
    result = invoke(
        "train",
        "--data",
        data,
        "--family",
        "tfidf",
        "--multi-label",
        "--class-weights",
        "balanced",
        "--out",
        tmp_path / "weighted",
    )
    assert result.exit_code == 2 and "--multi-label training does not take --class-weights balanced" in result.stderr


def test_the_server_answers_labels_and_scores(tfidf_run):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from textcls.serving import create_app

    run = textcls.load(tfidf_run, textcls.PredictConfig(backend="torch"))
    with TestClient(create_app(run)) as client:
        answer = client.post("/v1/predict", json={"texts": ["goal coach shares profit", "chip internet"]})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert [p["labels"] for p in predictions] == [["Sports", "Business"], ["Sci/Tech"]]
        assert all(set(p) == {"labels", "scores"} and set(p["scores"]) == set(LABELS) for p in predictions)
        card = client.get("/v1/model").json()
        assert card["multi_label"] is True and card["thresholds"] == run.info["thresholds"]
        assert "micro_f1" in card["dev_metrics"]
        assert "result.labels" in client.get("/").text  # the page shows label sets


def test_pretrained_multi_label_uses_bce_and_onnx_sigmoid_agrees_with_torch(multilabel_run):
    pytest.importorskip("onnxruntime")
    from transformers import AutoConfig

    from textcls.inference.onnx import export_onnx

    assert AutoConfig.from_pretrained(multilabel_run / "model").problem_type == "multi_label_classification"
    metrics = json.loads((multilabel_run / "metrics.json").read_text())
    assert metrics["dev"]["micro_f1"] >= 0.6, metrics["dev"]
    record = export_onnx(multilabel_run, int8=True)
    assert record["multi_label"] is True
    texts = textcls.runs.api.score(
        multilabel_run, split="dev", predict_config=textcls.PredictConfig(backend="torch")
    ).texts
    torch_run = textcls.load(multilabel_run, textcls.PredictConfig(backend="torch"))
    expected = torch_run.predict_proba(texts)
    assert not np.allclose(expected.sum(axis=1), 1.0)  # sigmoids, not a softmax
    wanted = torch_run.predict(texts)
    onnx = textcls.load(multilabel_run, textcls.PredictConfig(backend="onnx"))
    assert onnx.predict(texts) == wanted
    assert np.abs(onnx.predict_proba(texts) - expected).max() < 1e-4
    # int8 may flip a label whose score sits at its threshold (export holds it to a log-probability
    # correlation, auto to 99% of its sample texts); a softmax head or shuffled labels would miss far more
    int8 = textcls.load(multilabel_run, textcls.PredictConfig(backend="onnx-int8"))
    found = int8.predict(texts)
    assert np.mean([a == b for a, b in zip(found, wanted)]) >= 0.9, (found, wanted)
    assert not np.allclose(int8.predict_proba(texts).sum(axis=1), 1.0)  # sigmoids here too
    # auto may pick torch bf16, which its rule lets differ on up to 1% of its sample texts (whole label sets)
    auto = textcls.load(multilabel_run)
    same = np.mean([a == b for a, b in zip(auto.predict(texts), torch_run.predict(texts))])
    assert same >= 0.95, (auto.predict_config, auto.backend_choice)
    assert all(row["label_agreement"] >= 0.99 for row in auto.backend_choice["candidates"] if row.get("ok"))
