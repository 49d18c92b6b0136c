"""Runs in the formats other tools load: the model card, `export --format hf` (transformers' pipeline),
`export --format mlflow` (pyfunc), `push` refused offline, and the bad inputs of each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import write_ag_news_folder
from textcls.cli.main import app

runner = CliRunner()
TEXTS = ["stocks fell on the market today", "the team won the match", "a new chip for the computer", "the war ended"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def predicted(run_dir: Path, texts: list[str]) -> list[dict]:
    result = invoke("predict", run_dir, *texts, "--json", "--backend", "torch")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def tfidf_run(tmp_path_factory) -> Path:
    import textcls

    root = tmp_path_factory.mktemp("tfidf")
    data = write_ag_news_folder(root / "data", n_train=64, n_dev=32, n_test=16)
    return textcls.train(data=str(data), out=root / "run", family="tfidf").run_dir


def test_train_writes_a_model_card_hub_tools_read(tiny_run):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    card = ModelCard.load(tiny_run / "README.md")
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    info = json.loads((tiny_run / "textcls.json").read_text())
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "text-classification"
    assert data["label_names"] == info["label_names"]
    assert data["datasets"] and data["textcls"]["versions"]["textcls"]
    _, results = model_index_to_eval_results(data["model-index"])
    scores = {(r.dataset_split, r.metric_name): r.metric_value for r in results}
    assert scores[("dev", "Accuracy")] == metrics["dev"]["accuracy"]
    assert scores[("dev", "Macro F1")] == metrics["dev"]["macro_f1"]
    for name in info["label_names"]:
        assert f"| {name} |" in card.text
    assert f"cut to {info['max_length']} tokens" in card.text
    assert "--format hf" in card.text


def test_every_family_writes_a_card(tfidf_run):
    from huggingface_hub import ModelCard

    card = ModelCard.load(tfidf_run / "README.md")
    assert card.data.to_dict()["textcls"]["family"] == "tfidf"
    assert "base_model" not in card.data.to_dict()
    assert "--format hf" not in card.text  # only transformers runs export for the pipeline


def test_a_card_that_cannot_be_written_costs_a_warning_not_the_run(tmp_path, monkeypatch, caplog):
    import textcls
    from textcls.runs import card

    def broken(*args, **kwargs):
        raise ValueError("no card today")

    monkeypatch.setattr(card, "card_text", broken)
    data = write_ag_news_folder(tmp_path / "data", n_train=32, n_dev=16, n_test=8)
    run = textcls.train(data=str(data), out=tmp_path / "run", family="tfidf").run_dir
    assert (run / "textcls.json").is_file() and not (run / "README.md").exists()
    assert "no card today" in caplog.text


def test_hf_export_loads_in_the_pipeline_offline_and_agrees_with_predict(tiny_run, tmp_path, monkeypatch):
    out = tmp_path / "hf"
    result = invoke("export", tiny_run, "--format", "hf", "--out", out)
    assert result.exit_code == 0, result.output
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    info = json.loads((tiny_run / "textcls.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(info["label_names"])}

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(out), device="cpu")
    answers = classify(TEXTS, truncation=True)
    expected = predicted(tiny_run, TEXTS)
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    assert [a["score"] for a in answers] == pytest.approx([e["score"] for e in expected], abs=1e-4)
    # exporting again replaces the earlier export
    assert invoke("export", tiny_run, "--format", "hf", "--out", out).exit_code == 0


def test_multi_label_hf_export_tells_the_pipeline(multilabel_run, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "hf"
    assert invoke("export", multilabel_run, "--format", "hf", "--out", out).exit_code == 0
    assert json.loads((out / "config.json").read_text())["problem_type"] == "multi_label_classification"
    assert "top_k=None" in ModelCard.load(out / "README.md").text

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(out), device="cpu")
    answers = classify(TEXTS, top_k=None)
    expected = predicted(multilabel_run, TEXTS)
    for answer, record in zip(answers, expected):
        assert {a["label"]: a["score"] for a in answer} == pytest.approx(record["scores"], abs=1e-4)


def test_mlflow_export_predicts_as_textcls_predict(tiny_run, tmp_path):
    import mlflow.pyfunc
    import pandas as pd

    out = tmp_path / "mlflow"
    result = invoke("export", tiny_run, "--format", "mlflow", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "MLmodel").is_file()
    requirements = (out / "requirements.txt").read_text()
    assert "textcls==" in requirements and "torch" in requirements
    model = mlflow.pyfunc.load_model(str(out))
    assert model.metadata.get_input_schema().input_names() == ["text"]
    answers = model.predict(pd.DataFrame({"text": TEXTS}))
    expected = predicted(tiny_run, TEXTS)
    assert list(answers["label"]) == [e["label"] for e in expected]
    assert list(answers["score"]) == pytest.approx([e["score"] for e in expected], abs=1e-5)
    assert list(answers.columns) == ["label", "score", "probs"]


def test_log_mlflow_model_logs_into_the_active_run(tfidf_run, tmp_path, monkeypatch):
    import mlflow
    import pandas as pd

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from textcls.runs.export import log_mlflow_model

    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    with mlflow.start_run():
        logged = log_mlflow_model(tfidf_run)
    model = mlflow.pyfunc.load_model(logged.model_uri)
    expected = predicted(tfidf_run, TEXTS)
    assert list(model.predict(pd.DataFrame({"text": TEXTS}))["label"]) == [e["label"] for e in expected]


def test_push_is_refused_offline_before_any_work(tiny_run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("push", tiny_run, "--repo", "someone/model")
    assert result.exit_code == 2
    assert "HF_HUB_OFFLINE" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tiny_run / "hf").exists()


def test_push_is_refused_when_the_hub_is_unreachable(tiny_run, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    result = invoke("push", tiny_run, "--repo", "someone/model", "--token", "hf_x")
    assert result.exit_code == 2, result.output
    assert "unreachable" in result.output


def test_hf_export_of_another_family_says_which_can(tfidf_run, tmp_path):
    result = invoke("export", tfidf_run, "--format", "hf", "--out", tmp_path / "hf")
    assert result.exit_code == 2
    assert "pretrained" in result.output and "tfidf" in result.output
    assert not (tmp_path / "hf").exists()


def test_unknown_format_lists_the_allowed_ones(tiny_run):
    result = invoke("export", tiny_run, "--format", "tflite")
    assert result.exit_code == 2
    assert all(name in result.output for name in ("onnx", "hf", "mlflow"))
    int8 = invoke("export", tiny_run, "--format", "hf", "--int8")
    assert int8.exit_code == 2 and "--int8" in int8.output


def test_a_run_without_weights_is_refused(tiny_run, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(tiny_run, broken, ignore=shutil.ignore_patterns("hf", "mlflow", "onnx"))
    for path in (broken / "model").iterdir():
        path.unlink()
    for format in ("hf", "mlflow"):
        result = invoke("export", broken, "--format", format)
        assert result.exit_code == 2, result.output
        assert "model" in result.output
        assert not (broken / format).exists()


def test_an_out_folder_that_is_not_an_earlier_export_is_kept(tiny_run, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for format in ("hf", "mlflow"):
        result = invoke("export", tiny_run, "--format", format, "--out", out)
        assert result.exit_code == 2
        assert "not an earlier" in result.output
    assert (out / "notes.txt").read_text() == "keep me"


def test_pretrain_writes_a_fill_mask_card(tiny_bert, tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from tests.conftest import make_texts

    corpus = tmp_path / "news.txt"
    corpus.write_text("\n\n".join(f"{t} {d}" for _, t, d in make_texts(40, 4)), encoding="utf-8")
    out = tmp_path / "mlm"
    flags = ["--epochs", "1", "--batch-size", "16", "--max-length", "32", "--pseudo-perplexity-texts", "2"]
    result = invoke("pretrain", "--data", corpus, "--model", tiny_bert, *flags, "--out", out)
    assert result.exit_code == 0, result.output
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    metrics = json.loads((out / "metrics.json").read_text())
    assert data["pipeline_tag"] == "fill-mask" and data["datasets"] == [str(corpus)]
    _, results = model_index_to_eval_results(data["model-index"])
    assert [r.metric_value for r in results] == [metrics["held_out"]["after"]["masked_accuracy"]]
    assert f"textcls train --model {out.name}" in card.text
