"""Fault tests for what commands write: links and pipes as outputs, `--output -`, outputs that are also
inputs, explanation folders holding the user's own files, and the permissions of a run folder.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import textcls
from tests.conftest import train_tiny_bert, write_ag_news_folder
from textcls.files import write_text_atomic


@pytest.fixture(scope="module")
def tfidf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("output_faults")
    data = write_ag_news_folder(root / "data", n_train=48, n_dev=16, n_test=16)
    return textcls.train(data=str(data), out=root / "run", family="tfidf").run_dir


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m textcls ARGS` in a fresh process (in `cwd`), its stdout a pipe (as in a shell pipeline)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(textcls.__file__).parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "textcls", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    message = " ".join(result.stderr.split())
    for fragment in fragments:
        assert fragment in message, message[-2000:]


# ---- links and pipes ------------------------------------------------------------------------------


def test_an_output_that_is_a_link_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    target, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    target.write_text("old\n", encoding="utf-8")
    link.symlink_to(target)
    write_text_atomic(link, "new\n")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "new\n"
    dangling = tmp_path / "later.jsonl"
    dangling.symlink_to(tmp_path / "made-by-the-write.jsonl")
    write_text_atomic(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "made-by-the-write.jsonl").read_text(encoding="utf-8") == "made\n"


def test_an_output_that_is_a_named_pipe_gets_the_bytes_and_stays_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "predictions.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_text_atomic(fifo, '{"label": "Sports"}\n')
    reader.join(timeout=30)
    assert received == [b'{"label": "Sports"}\n']
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_predict_output_through_a_link_to_stdout_reaches_stdout(tfidf_run: Path, tmp_path: Path) -> None:
    link = tmp_path / "to-stdout"
    link.symlink_to("/dev/stdout")
    result = cli("predict", tfidf_run, "the team won the cup", "--output", link)
    assert result.returncode == 0, result.stderr[-2000:]
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"
    assert json.loads(result.stdout.splitlines()[0])["label"] in textcls.load(tfidf_run).label_names


def test_predict_and_evaluate_output_dash_mean_stdout(tfidf_run: Path, tmp_path: Path) -> None:
    predicted = cli("predict", tfidf_run.resolve(), "stocks fell", "rain in the city", "--output", "-", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    records = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(records) == 2 and all("label" in record and "probs" in record for record in records)
    assert not (tmp_path / "-").exists()
    evaluated = cli("evaluate", tfidf_run, "--output", "-")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "accuracy" in json.loads(evaluated.stdout)


# ---- outputs that are inputs ----------------------------------------------------------------------


def test_predict_refuses_to_write_over_its_input(tfidf_run: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("stocks fell\nthe team won\n", encoding="utf-8")
    for output in (texts, tmp_path / "." / "texts.txt"):
        assert_refused(cli("predict", tfidf_run, "--input", texts, "--output", output), "also an input")
    link = tmp_path / "alias.txt"
    link.symlink_to(texts)
    assert_refused(cli("predict", tfidf_run, "--input", link, "--output", texts), "also an input")
    assert texts.read_text(encoding="utf-8") == "stocks fell\nthe team won\n"


def test_outputs_never_replace_a_file_of_the_run_folder(tfidf_run: Path) -> None:
    info = (tfidf_run / "textcls.json").read_bytes()
    assert_refused(cli("evaluate", tfidf_run, "--output", tfidf_run / "textcls.json"), "textcls.json", "reads")
    assert_refused(cli("predict", tfidf_run, "a text", "--output", tfidf_run / "metrics.json"), "metrics.json")
    assert (tfidf_run / "textcls.json").read_bytes() == info
    textcls.load(tfidf_run)


# ---- explanation folders --------------------------------------------------------------------------


def test_explain_never_replaces_files_it_did_not_write(tfidf_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    out.mkdir()
    mine = out / "weights.png"
    mine.write_bytes(b"my own figure")
    (out / "explanation.html").write_text("my page", encoding="utf-8")
    result = cli("explain", tfidf_run, "stocks fell", "--out", out)
    assert_refused(result, "weights.png", "did not write")
    assert mine.read_bytes() == b"my own figure"
    assert (out / "explanation.html").read_text(encoding="utf-8") == "my page"

    again = tmp_path / "mine"
    first = cli("explain", tfidf_run, "stocks fell", "--out", again)
    second = cli("explain", tfidf_run, "the team won", "--out", again)  # its own earlier explanation
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    assert json.loads((again / "explanation.json").read_text(encoding="utf-8"))["text"] == "the team won"


# ---- permissions ----------------------------------------------------------------------------------


def test_a_run_folder_and_its_onnx_export_are_readable_by_others(tiny_bert: Path, tmp_path: Path) -> None:
    from textcls.inference.onnx import export

    previous = os.umask(0o022)
    try:
        data = write_ag_news_folder(tmp_path / "data", n_train=24, n_dev=8, n_test=0)
        run_dir = train_tiny_bert(tiny_bert, tmp_path, data, epochs=1)
        export(run_dir, format="onnx", int8=False, opset=17)
    finally:
        os.umask(previous)
    for path in [run_dir, *run_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o755, f"{path}: {oct(mode)}"
        else:
            assert mode == 0o644, f"{path}: {oct(mode)}"


def test_the_umask_is_read_without_changing_it_so_other_threads_never_see_it_cleared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from textcls.files import shared_mode

    previous = os.umask(0o027)
    try:
        assert (shared_mode(), shared_mode(folder=True)) == (0o640, 0o750)
        if Path("/proc/self/status").is_file():  # Linux says it; setting it, even briefly, is a race

            def refuse(mask: int) -> int:
                raise AssertionError("os.umask called: a file another thread creates meanwhile gets that mask")

            monkeypatch.setattr(os, "umask", refuse)
            assert shared_mode() == 0o640
    finally:
        monkeypatch.undo()
        os.umask(previous)
