"""Faults around run folders: kills and a full disk while training, damaged weights, writes that
cannot happen, data paths, and pickle. Each test is one row of the fault table it fixes.

Tests that need a size-limited or read-only file system mount a tmpfs (root on Linux, as in CI);
elsewhere they skip with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import textcls
from tests.conftest import write_ag_news_folder

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")


def cli(*args: object, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m textcls ARGS` in a fresh process, as a user runs it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "textcls", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, a one-line message holding `fragments`, and no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in message, message[-2000:]


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False):
    """A size-limited (or read-only) file system at `path`, unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root?'}); the test needs one")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def tiny_train_args(tiny_bert: Path, data: Path, out: Path, epochs: int = 3) -> list[object]:
    return [
        "train",
        "--data",
        data,
        "--model",
        tiny_bert,
        "--epochs",
        epochs,
        "--batch-size",
        8,
        "--lr",
        1e-3,
        "--max-length",
        32,
        "--early-stopping-patience",
        0,
        "--seed",
        1,
        "--precision",
        "fp32",
        "--out",
        out,
        "--json",
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_ag_news_folder(tmp_path_factory.mktemp("faults") / "data", n_train=96, n_dev=32, n_test=32)


@pytest.fixture(scope="module")
def uninterrupted(tiny_bert, data, tmp_path_factory) -> dict:
    """The per-epoch dev accuracy of a run that nothing interrupted: what every resumed run must reach."""
    out = tmp_path_factory.mktemp("whole") / "run"
    result = cli(*tiny_train_args(tiny_bert, data, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def dev_accuracies(metrics: dict) -> list[float]:
    return [row["dev_accuracy"] for row in metrics["train"]["epochs"]]


# ---- row 1: kill -9 while a checkpoint is written, then --resume ---------------------------------
def test_kill_while_a_checkpoint_is_written_then_resume_reaches_the_uninterrupted_result(
    tiny_bert, data, uninterrupted, tmp_path
):
    out = tmp_path / "run"
    checkpoints = tmp_path / ".run.partial" / "checkpoints"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "textcls", *map(str, tiny_train_args(tiny_bert, data, out))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    # Kill at the first moment the second checkpoint's folder exists but is not marked complete.
    victim, deadline = None, time.monotonic() + 240
    while victim is None and time.monotonic() < deadline and process.poll() is None:
        for folder in checkpoints.glob("checkpoint-*") if checkpoints.is_dir() else []:
            if folder.name != "checkpoint-12" and not (folder / "textcls-complete.json").exists():
                process.send_signal(signal.SIGKILL)
                victim = folder
                break
        time.sleep(0.002)
    if process.poll() is None:  # the deadline passed: never leave the training running behind the test
        process.kill()
    process.wait(timeout=60)
    if victim is None:
        pytest.skip("no checkpoint was caught mid-write (training finished first, or 240 s passed)")
    assert victim.exists() and not (victim / "textcls-complete.json").exists()

    resumed = cli(*tiny_train_args(tiny_bert, data, out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "was not written completely" in resumed.stderr and victim.name in resumed.stderr
    metrics = json.loads(resumed.stdout)
    assert metrics["train"]["resumed_from"].endswith("checkpoint-12")  # the last complete one (epoch 1)
    assert dev_accuracies(metrics) == dev_accuracies(uninterrupted)
    assert metrics["dev"]["accuracy"] == uninterrupted["dev"]["accuracy"]


def test_resume_skips_and_removes_a_checkpoint_cut_short(tiny_bert, data, uninterrupted, tmp_path):
    # The same row without timing luck: training is killed once epoch 1's checkpoint is complete,
    # and a copy of it stands in as a later checkpoint cut short: weights halved, no completion marker.
    out = tmp_path / "run"
    checkpoints = tmp_path / ".run.partial" / "checkpoints"
    process = subprocess.Popen(
        [sys.executable, "-m", "textcls", *map(str, tiny_train_args(tiny_bert, data, out))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    marker = checkpoints / "checkpoint-12" / "textcls-complete.json"
    deadline = time.monotonic() + 240
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert marker.exists(), "epoch 1's checkpoint was never completed"
    for later in checkpoints.glob("checkpoint-*"):
        if later.name != "checkpoint-12":
            shutil.rmtree(later)
    cut = checkpoints / "checkpoint-24"
    shutil.copytree(checkpoints / "checkpoint-12", cut)
    (cut / "textcls-complete.json").unlink()
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    resumed = cli(*tiny_train_args(tiny_bert, data, out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-24" in resumed.stderr and "was not written completely" in resumed.stderr
    metrics = json.loads(resumed.stdout)
    assert metrics["train"]["resumed_from"].endswith("checkpoint-12")
    assert dev_accuracies(metrics) == dev_accuracies(uninterrupted)


# ---- row 9: the disk fills up during training ------------------------------------------------------
def test_a_full_disk_is_a_clear_error_and_resume_continues_once_there_is_room(tiny_bert, data, uninterrupted, tmp_path):
    with tmpfs(tmp_path / "small", "3m") as small:
        out = small / "run"
        full = cli(*tiny_train_args(tiny_bert, data, out))
        assert_clean_failure(full, "No space left on device", "--resume")
        checkpoints = small / ".run.partial" / "checkpoints"
        leftovers = [p.name for p in checkpoints.glob("checkpoint-*") if not (p / "textcls-complete.json").exists()]
        assert leftovers == []  # no half-written checkpoint for resume to trip over
        assert not out.exists()
        subprocess.run(["mount", "-o", "remount,size=200m", str(small)], check=True)
        resumed = cli(*tiny_train_args(tiny_bert, data, out), "--resume")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        metrics = json.loads(resumed.stdout)
        assert dev_accuracies(metrics) == dev_accuracies(uninterrupted)


# ---- row 14: no pickle at rest, none read back --------------------------------------------------
def test_checkpoints_and_run_folders_hold_no_pickle_and_resume_loads_only_weights(
    tiny_bert, data, tmp_path, monkeypatch
):
    import torch

    from textcls.config import TrainConfig
    from textcls.models.pretrained import PretrainedClassifier

    rows = textcls.runs.api.load_data(textcls.DataConfig(data=str(data)), splits=("train", "dev"))
    train, dev = rows.splits["train"], rows.splits["dev"]
    options = {"model": str(tiny_bert), "batch_size": 8, "max_length": 32, "lr": 1e-3, "precision": "fp32"}
    PretrainedClassifier.fit(train, dev, rows.label_names, TrainConfig(epochs=1, **options), tmp_path / "ckpt")
    stored = [p for p in (tmp_path / "ckpt").rglob("*") if p.is_file()]
    assert not [p.name for p in stored if p.name == "training_args.bin"]

    loads: list[dict] = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        loads.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    _, summary = PretrainedClassifier.fit(
        train, dev, rows.label_names, TrainConfig(epochs=2, resume=True, **options), tmp_path / "ckpt"
    )
    assert summary["resumed_from"] is not None and loads  # optimizer, scheduler, RNG state
    assert all(kwargs.get("weights_only") is True for kwargs in loads)


def test_a_finished_run_folder_holds_no_pickle(tiny_run):
    pickled = [str(p) for p in Path(tiny_run).rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert pickled == []
    info = json.loads((Path(tiny_run) / "textcls.json").read_text())
    assert "model.safetensors" in info["model_files"]  # sizes and digests of what training wrote


# ---- row 7: damaged weights ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family_runs(tiny_run, data, tmp_path_factory) -> dict[str, Path]:
    """A finished run per kind of weights file: safetensors (pretrained, lstm), npz (tfidf)."""
    root = tmp_path_factory.mktemp("damage")
    runs = {"pretrained": Path(tiny_run)}
    for family in ("tfidf", "lstm"):
        options = {"family": family, "epochs": 1, "max_length": 32}
        runs[family] = textcls.train(data=str(data), out=root / family, **options).run_dir
    return runs


WEIGHTS = {"pretrained": "model/model.safetensors", "lstm": "model/model.safetensors", "tfidf": "model/weights.npz"}


def damage(path: Path, how: str) -> None:
    content = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(content[: len(content) // 2]))
    elif how == "tiny":
        path.write_bytes(bytes(content[:100]))
    else:  # one bit flipped in the middle, where the numbers are
        content[len(content) // 2] ^= 0x10
        path.write_bytes(bytes(content))


@pytest.mark.parametrize("how", ["truncated", "tiny", "bit-flipped"])
@pytest.mark.parametrize("family", ["pretrained", "lstm", "tfidf"])
def test_damaged_weights_are_named_not_a_traceback(family_runs, family, how, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(family_runs[family], run)
    damage(run / WEIGHTS[family], how)
    result = cli("predict", run, "shares profit stocks")
    assert_clean_failure(result, "damaged", str(run / WEIGHTS[family]), "train again or restore the folder")


@pytest.mark.parametrize("family", ["pretrained", "lstm", "tfidf"])
def test_damaged_weights_of_runs_without_a_record_are_still_named(family_runs, family, tmp_path):
    # Runs written before textcls.json recorded digests: the loaders' own parsers meet the damage.
    run = tmp_path / "run"
    shutil.copytree(family_runs[family], run)
    info = json.loads((run / "textcls.json").read_text())
    del info["model_files"]
    (run / "textcls.json").write_text(json.dumps(info))
    damage(run / WEIGHTS[family], "tiny")
    assert_clean_failure(cli("predict", run, "shares profit stocks"), "damaged", "train again or restore the folder")


@pytest.fixture(scope="module")
def exported_run(tiny_run, tmp_path_factory) -> Path:
    """A copy of `tiny_run` with both ONNX graphs exported by the CLI, once for every damage below."""
    pytest.importorskip("onnxruntime")
    run = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(tiny_run, run)
    exported = cli("export", run, "--format", "onnx", "--int8")
    assert exported.returncode == 0, exported.stderr[-3000:]
    return run


@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_damaged_onnx_graphs_are_named(exported_run, backend, how, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported_run, run)
    graph = run / "onnx" / ("model.onnx" if backend == "onnx" else "model.int8.onnx")
    damage(graph, how)
    assert_clean_failure(
        cli("predict", run, "--backend", backend, "shares profit"), "damaged", str(graph), "export again"
    )


# ---- row 8: writes that cannot happen -----------------------------------------------------------------
def test_predict_output_onto_a_folder_is_a_clear_error(tiny_run, tmp_path):
    (tmp_path / "out").mkdir()
    result = cli("predict", tiny_run, "shares profit", "--output", tmp_path / "out")
    assert_clean_failure(result, f"could not write {tmp_path / 'out'}", "a folder is in the way")


def test_explain_into_a_path_that_is_a_file_is_a_clear_error(tiny_run, tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    result = cli("explain", tiny_run, "shares profit", "--out", tmp_path / "taken")
    assert_clean_failure(result, f"could not make the folder {tmp_path / 'taken'}", "a file is in the way")


def test_writes_onto_a_read_only_file_system_are_a_clear_error(tiny_run, tmp_path):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as read_only:
        result = cli("predict", tiny_run, "shares profit", "--output", read_only / "preds.jsonl")
        assert_clean_failure(result, f"could not write {read_only / 'preds.jsonl'}", "read-only")
        result = cli("evaluate", tiny_run, "--output", read_only / "eval.json")
        assert_clean_failure(result, "read-only")


def test_a_read_only_run_folder_is_still_scored(tiny_run, tmp_path):
    # evaluate's record beside the run (eval_dev.json) is a warning when it cannot be written, not the end
    with tmpfs(tmp_path / "ro", "64m") as mounted:
        run = mounted / "run"
        shutil.copytree(tiny_run, run)
        subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True, capture_output=True)
        result = cli(
            "evaluate", run, "--split", "dev", "--backend", "torch", "--output", tmp_path / "eval.json", "--json"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout) == json.loads((tmp_path / "eval.json").read_text())
        assert json.loads(result.stdout)["num_samples"] == 32
        assert f"themetricsarenotrecordedin{run / 'eval_dev.json'}" in "".join(
            result.stderr.split()
        )  # rich wraps lines


def test_an_existing_output_survives_a_failed_write(tiny_run, tmp_path, monkeypatch):
    from textcls import files

    target = tmp_path / "preds.jsonl"
    target.write_text("old\n")

    def full_disk(temporary: Path) -> None:
        temporary.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(textcls.TextclsError, match="No space left on device; free some disk space"):
        files.write_atomic(target, full_disk)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["preds.jsonl"]  # the temporary file is gone


# ---- rows 5 and 6: data paths mean what they say ---------------------------------------------------
def test_evaluate_with_data_flags_alone_uses_the_runs_own_data(tiny_run):
    result = cli("evaluate", tiny_run, "--split", "dev", "--max-eval-samples", 10, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout)
    info = json.loads((Path(tiny_run) / "textcls.json").read_text())
    assert metrics["num_samples"] == 10
    assert metrics["source"].startswith(info["data_config"]["data"])  # not the hub's ag_news


def test_a_run_trained_on_a_relative_path_is_evaluated_from_anywhere(tiny_bert, tmp_path):
    project = tmp_path / "project"
    write_ag_news_folder(project / "data", n_train=32, n_dev=16, n_test=16)
    options = ["--model", tiny_bert, "--epochs", 1, "--batch-size", 8, "--max-length", 32]
    trained = cli("train", "--data", "data", *options, "--out", "runs/rel", cwd=project)
    assert trained.returncode == 0, trained.stderr[-3000:]
    info = json.loads((project / "runs" / "rel" / "textcls.json").read_text())
    assert info["data_config"]["data"] == str((project / "data").resolve())
    assert info["data_config_as_given"]["data"] == "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("evaluate", project / "runs" / "rel", "--json", cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["num_samples"] == 16


def test_pretrained_heads_are_classifiers_never_regression(tiny_run):
    config = json.loads((Path(tiny_run) / "model" / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification"


# ---- claiming --out: other folders, a second writer, a replacement cut short ------------------------------
def _tfidf_run(data: Path, out: Path, **options: object) -> textcls.TrainResult:
    return textcls.train(data=str(data), out=out, family="tfidf", **options)


def test_overwrite_never_replaces_a_folder_that_is_not_a_run(tmp_path):
    # --overwrite used to delete whatever --out named: here the user's notes and the training data itself
    victim = tmp_path / "victim"
    data = write_ag_news_folder(victim / "data", n_train=40, n_dev=12, n_test=0)
    (victim / "thesis.txt").write_text("my thesis", encoding="utf-8")
    result = cli("train", "--data", data, "--family", "tfidf", "--out", victim, "--overwrite")
    assert_clean_failure(result, f"{victim} exists and is not a textcls run folder", "remove it yourself")
    assert (victim / "thesis.txt").read_text(encoding="utf-8") == "my thesis" and (data / "train.csv").is_file()
    assert_clean_failure(
        cli("train", "--data", data, "--family", "tfidf", "--out", ".", "--overwrite", cwd=tmp_path),
        "expected a folder to write the run in, found '.'",
    )
    (tmp_path / "empty").mkdir()  # an empty folder holds nothing to lose
    assert textcls.load(_tfidf_run(data, tmp_path / "empty", overwrite=True).run_dir).predict(["oil prices"])


def test_a_second_command_writing_the_same_run_is_refused_while_the_first_holds_it(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=12, n_test=0)
    out = tmp_path / "runs" / "cd"
    out.parent.mkdir()
    # another process holding the claim, as a first `train --out runs/cd` does until its run is in place
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1], timeout=0); lock.acquire(); "
            "print('held', flush=True); time.sleep(120)",
            str(out.parent / ".cd.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = cli("train", "--data", data, "--family", "tfidf", "--out", out, "--overwrite")
        assert_clean_failure(result, f"another textcls command is writing {out}")
        assert not out.exists() and not (out.parent / ".cd.partial").exists()
    finally:
        holder.kill()
        holder.wait()
    assert _tfidf_run(data, out).run_dir == out  # the lock goes with the process that held it


@pytest.mark.parametrize("new_run_finished", [True, False])
def test_a_replacement_cut_between_its_renames_is_completed_by_the_next_train(tmp_path, new_run_finished):
    from textcls import runfolder

    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=12, n_test=0)
    out, old, partial = tmp_path / "w", tmp_path / ".w.old", tmp_path / ".w.partial"
    _tfidf_run(data, out)
    shutil.copytree(out, partial)
    (partial / "marker").write_text("new", encoding="utf-8")
    if not new_run_finished:
        runfolder.write_resume_identity(partial, {"family": "tfidf"})  # still training: not a run to put in place
    os.replace(out, old)  # where move_into_place stops if killed between its renames
    with pytest.raises(
        textcls.RunFolderError, match=r"being replaced when the command stopped: the previous run is in"
    ):
        textcls.load(out)
    with pytest.raises(textcls.RunFolderError, match="already exists; pass --overwrite"):
        _tfidf_run(data, out)
    assert not old.exists() and runfolder.is_run(out)
    assert (out / "marker").exists() == new_run_finished  # the finished new run, else the previous one back


def test_a_failed_export_leaves_the_previous_export_whole(tiny_run, tmp_path, monkeypatch):
    # export wrote model.onnx, then model.int8.onnx, then export.json in place: cut after the first, the
    # new graph sat beside the old record and the backend called the good graph damaged
    pytest.importorskip("onnxruntime")
    import errno

    from textcls.inference import onnx as onnx_backend

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    onnx_backend.export_onnx(run, int8=True)
    before = {path.name: path.read_bytes() for path in (run / "onnx").iterdir()}

    def full_disk(source: Path, target: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx_backend, "quantise_int8", full_disk)
    with pytest.raises(textcls.TextclsError, match="No space left on device"):
        onnx_backend.export_onnx(run, int8=True, opset=14)
    assert {path.name: path.read_bytes() for path in (run / "onnx").iterdir()} == before
    assert not list(run.glob(".onnx*"))  # no work folder left
    assert textcls.load(run, textcls.PredictConfig(backend="onnx-int8")).predict(["shares profit"])


def test_two_exports_of_one_run_at_once_both_finish(tiny_run, tmp_path):
    # `--backend auto` exports on first use, so two commands may export one run together: a shared work
    # folder would be deleted under the other, and two swaps at once would collide
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    exports = [
        subprocess.Popen(
            [sys.executable, "-m", "textcls", "export", str(run), "--int8"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    assert [process.wait(timeout=300) for process in exports] == [0, 0], [
        process.stderr.read()[-2000:] for process in exports
    ]
    assert sorted(path.name for path in (run / "onnx").iterdir()) == ["export.json", "model.int8.onnx", "model.onnx"]
    assert not list(run.glob(".onnx*"))
    assert textcls.load(run, textcls.PredictConfig(backend="onnx")).predict(["shares profit"])


def test_a_bad_out_or_bad_data_is_a_clear_error_that_writes_nothing(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=12, n_test=0)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    for out in (a_file / "run", a_file / "sub" / "run"):  # part of the path is a file
        assert_clean_failure(
            cli("train", "--data", data, "--family", "tfidf", "--out", out), "part of the path is a file"
        )
    # bad data fails before the run folder is claimed: no folders made, no lock file
    result = cli(
        "train", "--data", tmp_path / "nosuch.csv", "--family", "tfidf", "--out", tmp_path / "fresh" / "deep" / "run"
    )
    assert_clean_failure(result, "nosuch.csv")
    assert not (tmp_path / "fresh").exists()


def test_replacing_a_linked_run_folder_leaves_the_link_target_and_no_old_copy(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=12, n_test=0)
    runs = tmp_path / "runs"
    _tfidf_run(data, runs / "a")
    (runs / "link").symlink_to("a")
    _tfidf_run(data, runs / "link", overwrite=True)
    assert not (runs / "link").is_symlink() and (runs / "link" / "textcls.json").is_file()
    assert (runs / "a" / "textcls.json").is_file()  # what the link pointed to is left alone
    assert not (runs / ".link.old").exists() and not (runs / ".link.old").is_symlink()
    _tfidf_run(data, runs / "link", overwrite=True)  # a second replacement: the old copy was a link in the way
    shutil.rmtree(runs / "link")
    (runs / ".link.old").symlink_to("a")  # a link left by an older textcls is not a run to bring back
    assert _tfidf_run(data, runs / "link").run_dir == runs / "link"
    assert not (runs / ".link.old").is_symlink()


def test_two_explains_into_one_folder_each_leave_a_whole_set(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=12, n_test=0)
    run = _tfidf_run(data, tmp_path / "run").run_dir
    out = tmp_path / "explained"
    texts = ["stocks shares profit merger", "goal coach season striker"]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    for _ in range(3):
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "textcls", "explain", str(run), text, "--out", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for text in texts
        ]
        assert [process.wait(timeout=120) for process in runs] == [0, 0], [
            process.stderr.read()[-2000:] for process in runs
        ]
        shown = json.loads((out / "explanation.json").read_text(encoding="utf-8"))["text"]
        assert shown in texts and shown in (out / "explanation.html").read_text(
            encoding="utf-8"
        )  # one explanation's set
        assert not list(out.glob(".explanation*"))
