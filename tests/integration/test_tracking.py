"""`--report-to mlflow|tensorboard`: train tiny models, read the MLflow run and the event files back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_texts, write_ag_news_folder
from textcls.cli.main import app

mlflow = pytest.importorskip("mlflow")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

runner = CliRunner()


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh MLflow tracking store in `tmp_path`, named by MLFLOW_TRACKING_URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow's artefacts go under ./mlruns
    return uri


def _train(tmp_path: Path, *options: str) -> Path:
    data = write_ag_news_folder(tmp_path / "data", n_train=48, n_dev=16, n_test=16)
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--data", str(data), "--out", str(out), "--max-length", "32", "--seed", "1", "--json", *options]
    )
    assert result.exit_code == 0, result.output
    return out


def _run_named(uri: str, name: str):
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    matching = [run for run in runs if run.info.run_name == name]
    assert len(matching) == 1, [run.info.run_name for run in runs]
    return client, matching[0]


def _artifacts(client, run_id: str) -> set[str]:
    return {item.path for item in client.list_artifacts(run_id)}


def _check_final_metrics(run, metrics: dict) -> None:
    """Every number of metrics.json's dev section is a final/ metric of the run, with its value."""
    for name, value in metrics["dev"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert run.data.metrics[f"final/dev/{name}"] == pytest.approx(value)


def test_lstm_reports_params_epochs_final_metrics_and_files_to_mlflow(store, tmp_path):
    options = ["--family", "lstm", "--epochs", "2", "--batch-size", "8", "--logging-steps", "1"]
    out = _train(tmp_path, *options, "--report-to", "mlflow")
    client, run = _run_named(store, "run")
    assert run.info.status == "FINISHED"
    assert run.data.params["train.family"] == "lstm" and run.data.params["train.epochs"] == "2.0"
    assert run.data.params["data.seed"] == "1"
    history = client.get_metric_history(run.info.run_id, "dev/accuracy")
    assert len(history) == 2  # one evaluation per epoch
    steps = json.loads((out / "metrics.json").read_text())["train"]["global_step"]
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == steps  # --logging-steps 1
    metrics = json.loads((out / "metrics.json").read_text())
    _check_final_metrics(run, metrics)
    assert [row["dev_accuracy"] for row in metrics["train"]["epochs"]] == pytest.approx([m.value for m in history])
    assert {"metrics.json", "textcls.json", "report.html"} <= _artifacts(client, run.info.run_id)


def test_tfidf_reports_params_and_final_metrics(store, tmp_path):
    out = _train(tmp_path, "--family", "tfidf", "--report-to", "mlflow")
    client, run = _run_named(store, "run")
    assert run.data.params["train.family"] == "tfidf"
    _check_final_metrics(run, json.loads((out / "metrics.json").read_text()))
    assert {"metrics.json", "textcls.json"} <= _artifacts(client, run.info.run_id)
    assert "README.md" in _artifacts(client, run.info.run_id)  # the model card


def test_report_to_mlflow_logs_a_model_that_predicts_like_the_run(store, tmp_path):
    import pandas

    import textcls

    out = _train(tmp_path, "--family", "tfidf", "--report-to", "mlflow")
    _, run = _run_named(store, "run")
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    texts = ["stocks fell on oil prices", "the team won the final"]
    predicted = model.predict(pandas.DataFrame({"text": texts}))
    expected = textcls.load(out).predict(texts)
    assert list(predicted["label"]) == list(expected)


def test_pretrained_logs_trainer_evaluations_into_the_same_mlflow_run_and_tensorboard_folder(
    store, tmp_path, tiny_bert
):
    out = _train(
        tmp_path,
        "--model",
        str(tiny_bert),
        "--family",
        "pretrained",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--early-stopping-patience",
        "0",
        "--report-to",
        "mlflow,tensorboard",
    )
    client, run = _run_named(store, "run")  # one run: Trainer's callback logged into textcls's
    assert run.data.params["train.family"] == "pretrained" and "learning_rate" in run.data.params
    assert len(client.get_metric_history(run.info.run_id, "eval_accuracy")) == 2
    _check_final_metrics(run, json.loads((out / "metrics.json").read_text()))
    scalars = _tensorboard_scalars(out / "tensorboard")
    assert len(scalars["eval/accuracy"]) == 2


def _tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    """Every scalar of every event file in `folder`, by tag."""
    found: dict[str, list[float]] = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        accumulator = event_accumulator.EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend(event.value for event in accumulator.Scalars(tag))
    return found


def test_lstm_writes_per_epoch_dev_metrics_to_tensorboard_in_the_run_folder(tmp_path):
    out = _train(tmp_path, "--family", "lstm", "--epochs", "2", "--batch-size", "8", "--report-to", "tensorboard")
    scalars = _tensorboard_scalars(out / "tensorboard")
    metrics = json.loads((out / "metrics.json").read_text())
    assert scalars["dev/accuracy"] == pytest.approx([row["dev_accuracy"] for row in metrics["train"]["epochs"]])
    assert scalars["final/dev/accuracy"] == pytest.approx([metrics["dev"]["accuracy"]])


def test_seq2seq_reports_to_mlflow(store, tmp_path):
    data = tmp_path / "dates"
    assert runner.invoke(app, ["seq2seq", "data", "--task", "dates", "--rows", "60", "--out", str(data)]).exit_code == 0
    sizes = ["--embedding-size", "8", "--encoder-hidden", "8", "--decoder-hidden", "16", "--attention-size", "8"]
    result = runner.invoke(
        app,
        ["seq2seq", "train", "--data", str(data), "--out", str(tmp_path / "s2s"), "--epochs", "2", *sizes]
        + ["--threads", "1", "--report-to", "mlflow"],
    )
    assert result.exit_code == 0, result.output
    client, run = _run_named(store, "s2s")
    assert run.data.params["seq2seq.attention"] == "additive"
    assert len(client.get_metric_history(run.info.run_id, "dev/token_accuracy")) == 2
    metrics = json.loads((tmp_path / "s2s" / "metrics.json").read_text())
    assert run.data.metrics["final/dev/bleu"] == pytest.approx(metrics["dev"]["bleu"])
    assert "metrics.json" in _artifacts(client, run.info.run_id)


def test_pretrain_reports_held_out_scores_to_mlflow(store, tmp_path, tiny_bert):
    corpus = tmp_path / "news.txt"
    corpus.write_text("\n".join(f"{t} {d}" for _, t, d in make_texts(40, 4)), encoding="utf-8")
    options = ["--model", str(tiny_bert), "--epochs", "1", "--batch-size", "16", "--max-length", "32"]
    options += ["--precision", "fp32", "--pseudo-perplexity-texts", "2", "--report-to", "mlflow"]
    result = runner.invoke(app, ["pretrain", "--data", str(corpus), "--out", str(tmp_path / "mlm"), *options])
    assert result.exit_code == 0, result.output
    client, run = _run_named(store, "mlm")
    metrics = json.loads((tmp_path / "mlm" / "metrics.json").read_text())
    after = metrics["held_out"]["after"]["masked_loss"]
    assert run.data.metrics["final/held_out/after/masked_loss"] == pytest.approx(after)
    assert run.data.params["pretrain.mlm_probability"] == "0.15"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["wandb"], "expected names from ('none', 'tensorboard', 'mlflow'), found wandb"),
        (["none", "mlflow"], "expected none alone"),
        (["none,tensorboard"], "expected none alone"),
    ],
)
def test_bad_report_to_values_fail_before_training(tmp_path, values, expected):
    command = ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]
    result = runner.invoke(app, [*command, *(part for value in values for part in ("--report-to", value))])
    assert result.exit_code == 2
    assert expected in result.output and "--report-to" in result.output
    assert not (tmp_path / "run").exists()


def test_an_unreachable_tracking_server_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    data = write_ag_news_folder(tmp_path / "data", n_train=16, n_dev=8, n_test=8)
    for command in (
        ["train", "--data", str(data), "--family", "tfidf"],
        ["pretrain", "--data", str(data)],
        ["seq2seq", "train", "--data", str(data)],
    ):
        result = runner.invoke(app, [*command, "--out", str(tmp_path / "run"), "--report-to", "mlflow"])
        assert result.exit_code == 2, result.output
        assert "http://127.0.0.1:9" in result.output and "MLFLOW_TRACKING_URI" in result.output
        assert not (tmp_path / "run").exists()


def test_a_config_file_takes_report_to(store, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"family": "tfidf", "report_to": ["mlflow"]}), encoding="utf-8")
    out = _train(tmp_path, "--config", str(config))
    assert json.loads((out / "textcls.json").read_text())["train_config"]["report_to"] == ["mlflow"]
    _run_named(store, "run")


@pytest.mark.parametrize("config", ["PretrainConfig", "Seq2SeqConfig"])
def test_pretrain_and_seq2seq_configs_check_report_to(config):
    from textcls.config import PretrainConfig
    from textcls.errors import ConfigError
    from textcls.seq2seq.config import Seq2SeqConfig

    cls = {"PretrainConfig": PretrainConfig, "Seq2SeqConfig": Seq2SeqConfig}[config]
    options = {"data": "news.txt"} if cls is PretrainConfig else {}
    assert cls(report_to="tensorboard,MLflow", **options).report_to == ("tensorboard", "mlflow")
    assert cls(report_to=["none"], **options).report_to == ()
    with pytest.raises(ConfigError, match="expected none alone"):
        cls(report_to=["none", "mlflow"], **options)
    with pytest.raises(ConfigError, match="found comet"):
        cls(report_to="comet", **options)
