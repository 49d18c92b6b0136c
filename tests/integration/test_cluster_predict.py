"""`textcls predict --on ray` on a real two-node Ray cluster started on this machine.

The fixture starts a head node and a second node (`ray start --block`, one CPU each, their own
`--temp-dir`) in their own process groups, and stops them by killing those groups and any process
that runs from that temp dir: `ray stop` would stop every Ray on the machine, other jobs' too.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import make_texts
from textcls.cluster.batch import BatchPredictor, predict_on_ray
from textcls.config import PredictConfig, RayPredictConfig
from textcls.errors import DataError
from textcls.inference.predictions import prediction_records
from textcls.runs.api import load

pytestmark = [pytest.mark.slow]
pytest.importorskip("ray")

SRC = Path(__file__).resolve().parents[2] / "src"
TORCH_FP32 = PredictConfig(backend="torch", precision="fp32")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _kill_cluster(nodes: list[subprocess.Popen], temp_dir: str) -> None:
    import psutil

    for node in nodes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGTERM)
    for node in nodes:
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
    for process in psutil.process_iter(["cmdline"]):  # workers the raylets started in groups of their own
        if any(temp_dir in part for part in process.info["cmdline"] or ()):
            process.kill()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """The address of a head node and a second node, one CPU each, on this machine."""
    temp_dir = tempfile.mkdtemp(prefix="textcls-ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    from ray.util import get_node_ip_address

    port = _free_port()
    address = f"{get_node_ip_address()}:{port}"  # the address Ray itself picks for this machine
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(SRC.parent)]), "RAY_USAGE_STATS_ENABLED": "0"}
    env["RAY_AUTH_MODE"] = "disabled"  # a throwaway cluster on one machine: no token to hand to every driver
    common = ["--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", "100000000", "--block"]
    ray = str(Path(sys.executable).with_name("ray"))
    head = [ray, "start", "--head", "--port", str(port), "--temp-dir", temp_dir]
    second = [ray, "start", "--address", address, "--temp-dir", temp_dir]
    nodes = [subprocess.Popen([*head, "--include-dashboard", "false", *common], env=env, start_new_session=True)]
    try:
        _wait_for_nodes(address, 1, env)
        nodes.append(
            subprocess.Popen([*second, "--resources", '{"second_node": 1}', *common], env=env, start_new_session=True)
        )
        _wait_for_nodes(address, 2, env)
        yield address
    finally:
        _kill_cluster(nodes, temp_dir)


def _wait_for_nodes(address: str, count: int, env: dict[str, str]) -> None:
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(len([node for node in ray.nodes() if node['Alive']]))"
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} did not reach {count} nodes")


def _write_inputs(folder: Path) -> list[Path]:
    """~200 texts over two files: a CSV (title, description) and a .txt."""
    folder.mkdir()
    rows = make_texts(200, seed=7)
    with (folder / "a.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "description"])
        writer.writerows((title, body) for _, title, body in rows[:120])
    (folder / "b.txt").write_text("".join(f"{title} {body}\n" for _, title, body in rows[120:]), encoding="utf-8")
    return [folder / "a.csv", folder / "b.txt"]


def _plain(run_dir: Path, files: list[Path]) -> dict[tuple[str, int], dict]:
    """What `textcls predict` gives each (file, row), computed by the same library in this process."""
    from textcls.data.loading import read_texts
    from textcls.runs.api import run_text_columns

    run = load(run_dir, TORCH_FP32)
    expected = {}
    for file in files:
        texts = read_texts(file, None, run_text_columns(run.info))
        records = prediction_records(run.predict_proba(texts), run.label_names, run.thresholds)
        expected.update({(str(file), row): record for row, record in enumerate(records)})
    return expected


def _read_shards(folder: Path) -> list[dict]:
    rows = []
    for shard in sorted(folder.iterdir()):
        if shard.suffix == ".parquet":
            rows.extend(pq.read_table(shard).to_pylist())
        else:
            rows.extend(json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines())
    return rows


def _assert_same(rows: list[dict], expected: dict[tuple[str, int], dict]) -> None:
    keys = [(row["file"], row["row"]) for row in rows]
    assert len(keys) == len(set(keys)) == len(expected)  # every row once
    assert set(keys) == set(expected)
    for row in rows:
        want = expected[(row["file"], row["row"])]
        if "label" in want:
            assert row["label"] == want["label"]
            assert row["probs"] == pytest.approx(want["probs"], abs=1e-5)
        else:
            assert row["labels"] == want["labels"]
            assert row["scores"] == pytest.approx(want["scores"], abs=1e-5)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "textcls", *args], env=environment, capture_output=True, text=True, timeout=300
    )


def test_ray_output_on_two_nodes_equals_plain_predict(ray_cluster, tiny_run, tmp_path):
    files = _write_inputs(tmp_path / "in")
    out = tmp_path / "scored"
    done = _cli(
        "predict", str(tiny_run), "--input", str(tmp_path / "in"), "--output", str(out), "--on", "ray",
        "--address", ray_cluster, "--workers", "2", "--ray-batch-size", "32", "--backend", "torch",
        "--precision", "fp32",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote 200 predictions" in done.stdout
    assert not list(tmp_path.glob(".scored*"))  # the partial folder is gone
    _assert_same(_read_shards(out), _plain(tiny_run, files))
    # the existing folder is refused without --overwrite
    again = _cli("predict", str(tiny_run), "--input", str(files[1]), "--output", str(out), "--on", "ray")
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_multi_label_run_to_jsonl_through_ray_address_env(ray_cluster, multilabel_run, tmp_path):
    files = _write_inputs(tmp_path / "in")
    out = tmp_path / "scored"
    done = _cli(
        "predict", str(multilabel_run), "--input", str(tmp_path / "in" / "*"), "--output", str(out), "--on", "ray",
        "--output-format", "jsonl", "--backend", "torch", "--precision", "fp32",
        env={"RAY_ADDRESS": ray_cluster},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {shard.suffix for shard in out.iterdir()} == {".jsonl"}
    _assert_same(_read_shards(out), _plain(multilabel_run, files))


def _dying_predictor(marker: Path) -> type[BatchPredictor]:
    """A BatchPredictor whose first batch, on whichever actor takes it, kills its own process."""

    class DyingOnce(BatchPredictor):
        def __call__(self, batch):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return super().__call__(batch)
            os.kill(os.getpid(), signal.SIGKILL)

    return DyingOnce


def test_a_worker_killed_mid_job_still_gives_every_row_once(ray_cluster, tiny_run, tmp_path):
    files = _write_inputs(tmp_path / "in")
    marker = tmp_path / "died"
    result = predict_on_ray(
        tiny_run,
        tmp_path / "in",
        tmp_path / "scored",
        RayPredictConfig(workers="1-2", ray_batch_size=16, address=ray_cluster),
        TORCH_FP32,
        predictor=_dying_predictor(marker),
    )
    assert marker.exists()  # a worker did die
    assert result.rows == 200
    _assert_same(_read_shards(tmp_path / "scored"), _plain(tiny_run, files))


def test_bad_input_fails_with_file_and_row_before_ray_starts(tiny_run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nfine words\n   \nmore words\n", encoding="utf-8")
    done = _cli("predict", str(tiny_run), "--input", str(bad), "--output", str(tmp_path / "o"), "--on", "ray")
    assert done.returncode == 2
    assert "bad.csv" in done.stderr and "row" in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(DataError, match="found none"):
        predict_on_ray(tiny_run, tmp_path / "*.jsonl", tmp_path / "o")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--on", "ray", "--workers", "0"], "workers: expected"),
        (["--on", "ray", "--workers", "3-1"], "workers: expected"),
        (["--on", "ray", "--output-format", "xml"], "output_format: expected"),
        (["--on", "spark"], "--on: expected local or ray"),
        (["--workers", "2"], "--workers: expected --on ray"),
    ],
)
def test_bad_ray_options_are_clear_errors(tiny_run, tmp_path, flags, message):
    (tmp_path / "in.txt").write_text("a text\n", encoding="utf-8")
    args = ["predict", str(tiny_run), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o")]
    done = _cli(*args, *flags)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr


def test_inputs_on_another_file_system_are_copied_and_named_by_their_uri(tmp_path):
    # pyarrow's file systems: a `file://` URI goes through the same path as s3:// or gs://
    from textcls.cluster.batch import fetch_inputs

    files = _write_inputs(tmp_path / "in")
    (tmp_path / "in" / "notes.md").write_text("not an input\n", encoding="utf-8")
    for uri in (f"file://{tmp_path / 'in'}", f"file://{tmp_path / 'in'}/*.*"):
        into = tmp_path / ("copies" + str(len(uri)))
        into.mkdir()
        copies = fetch_inputs(uri, into)
        assert sorted(copies.values()) == sorted(f"file://{file}" for file in files)
        for local, name in copies.items():
            assert local.is_relative_to(into) and local.read_bytes() == Path(name.removeprefix("file://")).read_bytes()
    with pytest.raises(DataError, match="no such file"):
        fetch_inputs(f"file://{tmp_path / 'missing.csv'}", tmp_path)
    with pytest.raises(DataError, match="found none"):
        fetch_inputs(f"file://{tmp_path / 'in'}/*.xml", tmp_path)


def test_a_uri_input_on_ray_names_rows_by_uri_and_equals_plain_predict(ray_cluster, tiny_run, tmp_path):
    files = _write_inputs(tmp_path / "in")
    out = tmp_path / "scored"
    done = _cli(
        "predict", str(tiny_run), "--input", f"file://{tmp_path / 'in'}/*.*", "--output", str(out), "--on", "ray",
        "--address", ray_cluster, "--workers", "1", "--backend", "torch", "--precision", "fp32",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = _read_shards(out)
    assert {row["file"] for row in rows} == {f"file://{file}" for file in files}  # the URI, not the temporary copy
    _assert_same([{**row, "file": row["file"].removeprefix("file://")} for row in rows], _plain(tiny_run, files))
