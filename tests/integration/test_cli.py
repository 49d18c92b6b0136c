"""One smoke test per CLI command, asserting on the files and numbers it writes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textcls.cli.main import app
from textcls.families import FAMILIES

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def run_dir(tiny_bert, tmp_path_factory) -> Path:
    from tests.conftest import write_ag_news_folder

    root = tmp_path_factory.mktemp("cli")
    data = write_ag_news_folder(root / "data", n_train=96, n_dev=32, n_test=40)
    out = root / "runs" / "tiny"
    result = invoke(
        "train",
        "--data",
        data,
        "--model",
        tiny_bert,
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--max-length",
        "32",
        "--out",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["run_dir"] == str(out)
    return out


def test_train_writes_a_self_describing_run_folder(run_dir):
    info = json.loads((run_dir / "textcls.json").read_text())
    assert info["family"] == "pretrained"
    assert info["label_names"] == ["World", "Sports", "Business", "Sci/Tech"]
    assert info["data"]["rows"] == {"train": 96, "dev": 32}
    assert len(info["data"]["fingerprint"]) == 64
    import torch

    assert info["train_config"]["epochs"] == 2 and info["versions"]["torch"] == torch.__version__
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["train"]["epochs"]) == 2
    assert metrics["dev"]["num_samples"] == 32
    assert sum(map(sum, metrics["dev"]["confusion_matrix"])) == 32
    assert (run_dir / "model" / "model.safetensors").is_file()
    # Checkpoints are working files of the temporary folder; none is left behind.
    assert not (run_dir / "checkpoints").exists()
    assert not list(run_dir.parent.glob(".*partial"))


def test_train_refuses_to_overwrite_an_existing_run(run_dir, tiny_bert):
    result = invoke("train", "--data", run_dir, "--model", tiny_bert, "--out", run_dir)
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--overwrite" in result.stderr


def test_evaluate_defaults_to_test_split_and_writes_metrics(run_dir, tmp_path):
    output = tmp_path / "eval.json"
    result = invoke("evaluate", run_dir, "--output", output, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(output.read_text())
    assert metrics["split"] == "test" and metrics["num_samples"] == 40
    assert set(metrics["per_class"]) == {"World", "Sports", "Business", "Sci/Tech"}
    assert json.loads((run_dir / "eval_test.json").read_text())["accuracy"] == metrics["accuracy"]
    assert json.loads(result.stdout)["macro_f1"] == metrics["macro_f1"]


def test_evaluate_falls_back_to_dev_when_there_is_no_test_split(run_dir, tmp_path):
    from tests.conftest import write_ag_news_folder

    data = write_ag_news_folder(tmp_path / "nodev", n_train=8, n_dev=12, n_test=0)
    result = invoke("evaluate", run_dir, "--data", data)
    assert result.exit_code == 0, result.output
    assert "no test split" in result.stderr
    assert "confusion matrix" in result.stdout and "accuracy" in result.stdout


def test_predict_texts_and_file_keep_input_order(run_dir, tmp_path):
    result = invoke("predict", run_dir, "shares profit merger", "coach goal season", "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    for record in lines:
        assert set(record) == {"label", "score", "probs"}
        assert record["label"] in record["probs"] and abs(sum(record["probs"].values()) - 1) < 1e-4
        assert record["score"] == max(record["probs"].values())

    texts = ["minister election treaty", "software chip laptop", "stocks investors", "playoff striker"]
    source = tmp_path / "input.txt"
    source.write_text("\n".join(texts) + "\n")
    output = tmp_path / "preds.jsonl"
    result = invoke("predict", run_dir, "--input", source, "--output", output)
    assert result.exit_code == 0, result.output
    from_file = [json.loads(line) for line in output.read_text().splitlines()]
    direct = [json.loads(line) for line in invoke("predict", run_dir, *texts, "--json").stdout.splitlines()]
    assert [r["label"] for r in from_file] == [r["label"] for r in direct]
    assert len(from_file) == len(texts)


def test_explain_writes_figures_html_and_json(run_dir, tmp_path):
    out = tmp_path / "explain"
    result = invoke("explain", run_dir, "shares profit merger today", "--out", out, "--words", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["family"] == "pretrained" and payload["label"] in payload["probs"]
    assert payload["tokens"][0] == "[CLS]"
    for name in ("heatmap.png", "grid.png", "rollout.png", "explanation.html", "explanation.json"):
        assert (out / name).stat().st_size > 0, name
    table = invoke(
        "explain", run_dir, "shares profit merger today", "--out", out, "--words", "--layer", "0", "--head", "1"
    )
    assert table.exit_code == 0 and "most weighted words" in table.stdout
    bad = invoke("explain", run_dir, "shares", "--layer", "7")
    assert bad.exit_code == 2 and "--layer" in bad.stderr


def test_train_writes_a_report_and_report_command_rebuilds_it(run_dir, tmp_path):
    sections = ('id="headline"', 'id="per-class"', 'id="confusion"', 'id="curves"', 'id="calibration"', 'id="mistakes"')
    trained = (run_dir / "report.html").read_text()
    assert all(section in trained for section in sections)
    out = tmp_path / "report.html"
    result = invoke("report", run_dir, "--out", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert all(section in page for section in sections)
    assert page.count('<img src="data:image/png;base64,') >= 3
    assert "test" in result.stdout and "40 rows" in result.stdout


def test_predict_needs_texts_or_input(run_dir):
    result = invoke("predict", run_dir)
    assert result.exit_code == 2 and "exactly one of them" in result.stderr


def test_bad_data_is_a_clear_error_not_a_traceback(tiny_bert, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.csv").write_text('"label","text"\n"0","fine"\n"7","unknown label here"\n')
    (bad / "classes.txt").write_text("a\nb\n")
    result = invoke("train", "--data", bad, "--model", tiny_bert, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "train.csv" in result.stderr and "row 2" in result.stderr and "label" in result.stderr
    assert not (tmp_path / "run").exists()


def test_config_file_is_overridden_by_flags(tiny_bert, tmp_path):
    from tests.conftest import write_ag_news_folder

    data = write_ag_news_folder(tmp_path / "data", n_train=16, n_dev=8, n_test=0)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"epochs": 5, "batch-size": 4, "max_length": 16, "model": str(tiny_bert)}))
    result = invoke("train", "--data", data, "--config", config, "--epochs", "1", "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "textcls.json").read_text())["train_config"]
    assert saved["epochs"] == 1 and saved["batch_size"] == 4 and saved["max_length"] == 16


def test_a_run_records_the_batching_and_lr_it_trained_with_not_null(tiny_bert, tmp_path):
    import torch

    from tests.conftest import write_ag_news_folder

    data = write_ag_news_folder(tmp_path / "data", n_train=16, n_dev=8, n_test=0)
    result = invoke(
        "train",
        "--data",
        data,
        "--model",
        tiny_bert,
        "--epochs",
        "1",
        "--max-length",
        "16",
        "--out",
        tmp_path / "run",
        "--json",
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "textcls.json").read_text())["train_config"]
    gpu = torch.cuda.is_available()  # the defaults differ per device: asserted for the one this runs on
    batching = (saved["batch_size"], saved["batch_tokens"], saved["lr"], saved["compile"], saved["num_workers"])
    spec = FAMILIES["pretrained"].gpu_defaults
    assert batching == ((None, spec["batch_tokens"], spec["lr"], False, 2) if gpu else (32, None, 1e-4, False, 0))


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"epochz": 2}, r"unknown option\(s\) \['epochz'\].*epochs"),  # a typo: the known names are listed
        ({"train": "t.csv"}, r"'train' is --train, whose field is 'train_file'"),  # a flag's name, not its field's
        ({"warmup-ratio": 1.2}, r"warmup_ratio: expected a fraction in \[0, 1\), found 1.2"),
        ({"family": "gpt"}, r"family: expected one of \('tfidf'"),
        (["epochs", 2], r"expected a JSON object, found list"),
        ({"max_train_samples": "300"}, r"max_train_samples: expected an integer, found '300' \(str\)"),
        ({"multi_label": "false"}, r"multi_label: expected true or false, found 'false'"),
    ],
)
@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_bad_config_file_is_a_clear_error_not_a_traceback(command, values, expected, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(values))
    result = invoke(command, "--data", tmp_path / "no-data", "--config", config, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert re.search(expected, " ".join(result.stderr.split())), result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_console_script_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "textcls", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in (
        "--data",
        "--train",
        "--dev",
        "--test",
        "--text-column",
        "--skip-bad-rows",
        "--max-train-samples",
        "--epochs",
        "--batch-size",
        "--lr",
        "--time-budget",
        "--resume",
        "--model",
        "--out",
    ):
        assert flag in result.stdout


def test_export_then_predict_and_evaluate_on_the_onnx_backends(run_dir):
    pytest.importorskip("onnxruntime")
    result = invoke("export", run_dir, "--format", "onnx", "--int8", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record["files"]) == {"onnx", "onnx-int8"}
    assert (run_dir / "onnx" / "model.int8.onnx").is_file()

    torch_lines = invoke("predict", run_dir, "shares profit stocks", "goal coach", "--json", "--backend", "torch")
    onnx_lines = invoke("predict", run_dir, "shares profit stocks", "goal coach", "--json", "--backend", "onnx")
    assert onnx_lines.exit_code == 0, onnx_lines.output
    torch_records = [json.loads(line) for line in torch_lines.stdout.splitlines()]
    onnx_records = [json.loads(line) for line in onnx_lines.stdout.splitlines()]
    assert [r["label"] for r in onnx_records] == [r["label"] for r in torch_records]
    assert onnx_records[0]["score"] == pytest.approx(torch_records[0]["score"], abs=1e-4)

    result = invoke("evaluate", run_dir, "--backend", "onnx-int8", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["backend"] == "onnx-int8" and metrics["num_samples"] == 40
    assert (run_dir / "eval_test.onnx-int8.json").is_file()

    unknown = invoke("predict", run_dir, "x", "--backend", "tensorrt")
    assert unknown.exit_code == 2 and "backend: expected one of" in unknown.stderr
    wrong_format = invoke("export", run_dir, "--format", "torchscript")
    assert wrong_format.exit_code == 2 and "expected onnx" in wrong_format.stderr


def test_negative_bool_flags_turn_options_off(monkeypatch, tmp_path):
    import textcls.runs.api

    seen = {}
    monkeypatch.setattr(
        textcls.runs.api, "train", lambda **kwargs: seen.update(kwargs) or (_ for _ in ()).throw(ValueError("stop"))
    )
    invoke("train", "--data", "x", "--no-group-by-length", "--skip-bad-rows")
    assert seen["train_config"].group_by_length is False
    assert seen["data_config"].skip_bad_rows is True
    invoke("train", "--data", "x")
    assert seen["train_config"].group_by_length is True and seen["data_config"].skip_bad_rows is False
    # an option a --config file turns on, the command line turns off again
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"skip_bad_rows": True, "multi_label": True}))
    invoke("train", "--data", "x", "--config", config, "--no-skip-bad-rows")
    assert seen["data_config"].skip_bad_rows is False and seen["data_config"].multi_label is True


def test_predict_by_default_times_the_backends_once_and_says_what_it_chose(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "backends.json").unlink(missing_ok=True)
    first = invoke("predict", copy, "shares profit stocks", "goal coach", "--json")
    assert first.exit_code == 0, first.output
    assert "backend auto: chose" in first.stderr and (copy / "backends.json").is_file()
    cache = json.loads((copy / "backends.json").read_text())
    [entry] = cache["machines"].values()
    assert entry["backend"] in ("torch", "onnx", "onnx-int8") and entry["candidates"][0]["name"] == "torch fp32"
    second = invoke("predict", copy, "shares profit stocks", "--json")
    assert second.exit_code == 0 and "measured on" in second.stderr and "timing" not in second.stderr
    forced = invoke("predict", copy, "shares profit stocks", "--json", "--backend", "torch")
    assert forced.exit_code == 0 and "backend auto" not in forced.stderr
    assert len(first.stdout.splitlines()) == 2 and json.loads(forced.stdout)["label"] in (
        "World",
        "Sports",
        "Business",
        "Sci/Tech",
    )


def test_train_takes_imbalance_and_long_text_flags_and_predict_reads_windows(tmp_path):
    from tests.conftest import write_long_text_folder

    data = write_long_text_folder(tmp_path / "data", n_train=64, n_dev=16)
    out = tmp_path / "run"
    result = invoke(
        "train",
        "--data",
        data,
        "--family",
        "lstm",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "16",
        "--class-weights",
        '{"Sports": 2}',
        "--sampler",
        "balanced",
        "--metric",
        "balanced_accuracy",
        "--long-text",
        "chunk",
        "--stride",
        "4",
        "--pooling",
        "max",
        "--out",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics["dev"]["per_class_recall"]) == {"World", "Sports", "Business", "Sci/Tech"}
    config = json.loads((out / "textcls.json").read_text())["train_config"]
    assert (config["class_weights"], config["sampler"], config["metric"]) == (
        '{"Sports": 2}',
        "balanced",
        "balanced_accuracy",
    )
    assert (config["long_text"], config["stride"], config["pooling"]) == ("chunk", 4, "max")
    assert "exceed max_length 16 tokens" in result.stderr and "windows" in result.stderr
    predicted = invoke("predict", out, "filler " * 60 + "goal striker season", "--json", "--backend", "torch")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout.splitlines()[0])["label"] in {"World", "Sports", "Business", "Sci/Tech"}


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--class-weights", "{oops"], r"class_weights: expected none, balanced or a JSON object, found '\{oops'"),
        (
            ["--class-weights", '{"Sprots": 3}'],
            r"--class-weights, field 'Sprots': unknown label \(did you mean 'Sports'\?\)",
        ),
        (
            ["--family", "tfidf", "--long-text", "chunk"],
            r"long_text: the tfidf family does not support --long-text chunk",
        ),
        (
            ["--family", "tfidf", "--sampler", "balanced"],
            r"sampler: the tfidf family does not support --sampler balanced",
        ),
    ],
)
def test_bad_imbalance_and_long_text_flags_are_one_line_errors(tmp_path, ag_folder, flags, expected):
    result = invoke("train", "--data", ag_folder, "--out", tmp_path / "run", *flags)
    assert result.exit_code == 2, result.output
    assert re.search(expected, " ".join(result.stderr.split())), result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command",
    [["evaluate", "OUT"], ["seq2seq", "data", "--task", "dates", "--out", "OUT"], ["compare", "--out", "OUT"]],
)
def test_commands_that_run_in_one_process_refuse_a_launcher(command, tmp_path):
    # under torchrun each process would run the command and write the same files
    out = tmp_path / "out"
    result = runner.invoke(app, [str(out) if word == "OUT" else word for word in command], env={"WORLD_SIZE": "2"})
    assert result.exit_code == 2
    assert f"textcls {command[0]} runs in one process, but 2 were started" in result.stderr
    assert not out.exists()
    assert (
        runner.invoke(
            app, ["seq2seq", "data", "--task", "dates", "--rows", "10", "--out", str(out)], env={"WORLD_SIZE": "1"}
        ).exit_code
        == 0
    )


def test_every_help_text_keeps_its_default():
    # rich reads "[default: ...]" as markup and drops it unless escaped: "--out  Folder for the figures ."
    for command, default in (
        ("compare", "[default: tfidf,lstm"),
        ("explain", "[default: RUN/explain]"),
        ("report", "[default: RUN/report_<split>.html]"),
        ("train", "[default: 0.1]"),
    ):
        result = runner.invoke(app, [command, "--help"], env={"TERMINAL_WIDTH": "400"})
        assert result.exit_code == 0 and default in result.stdout, (command, result.stdout[-2000:])
