"""The same `train` command under torchrun and accelerate launch: 2 CPU processes (gloo), Trainer's own DDP,
on one machine or as two nodes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import make_texts, write_ag_news_folder

# one xdist worker runs these one after another: each launches two processes, and accelerate's default port is fixed
pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.xdist_group("distributed")]


LAUNCHERS = {
    "torchrun": ["torchrun", "--standalone", "--nproc_per_node", "2"],  # --standalone: a free loopback port
    # accelerate's --multi_gpu means "torch.distributed processes"; on a CPU they use gloo
    "accelerate": [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ],
}


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _torchrun() -> str:
    program = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if program is None:
        pytest.skip("torchrun is not installed beside this Python")
    return program


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_train_with_two_processes(launcher, tiny_bert, tmp_path):
    program = shutil.which(LAUNCHERS[launcher][0], path=os.path.dirname(sys.executable))
    if program is None:
        pytest.skip(f"{launcher} is not installed beside this Python")
    # 21 dev rows in batches of 8 (8, 8, 5): the processes' last evaluation batches differ unless
    # evaluation is planned for them (Trainer's gather of a 5-row and an 8-row batch fails)
    data = write_ag_news_folder(tmp_path / "data", n_train=64, n_dev=21, n_test=0)
    out = tmp_path / "runs" / "ddp"
    command = [
        program,
        *LAUNCHERS[launcher][1:],
        "-m",
        "textcls",
        "train",
        "--data",
        str(data),
        "--model",
        str(tiny_bert),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--eval-batch-size",
        "8",
        "--max-length",
        "32",
        "--out",
        str(out),
        "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["world_size"] == 2
    # 64 rows, 2 processes x batch 8 = 16 rows per step: 4 steps per epoch, not 8 as on one process.
    assert metrics["train"]["global_step"] == 8
    assert [round(row["epoch"]) for row in metrics["train"]["epochs"]] == [1, 2]
    assert metrics["dev"]["num_samples"] == 21
    assert (out / "model" / "model.safetensors").is_file()
    # Only the main process prints results: exactly one JSON document on stdout.
    assert json.loads(result.stdout)["run_dir"] == str(out)


def test_a_family_that_trains_in_one_process_is_refused_under_a_launcher(tmp_path):
    # each process would train on every row and write the same run folder (they crashed on its checkpoints)
    data = write_ag_news_folder(tmp_path / "data", n_train=64, n_dev=16, n_test=0)
    out = tmp_path / "runs" / "tfidf"
    command = [
        *LAUNCHERS["torchrun"],
        "-m",
        "textcls",
        "train",
        "--data",
        str(data),
        "--family",
        "tfidf",
        "--out",
        str(out),
    ]
    result = subprocess.run([_torchrun(), *command[1:]], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode != 0
    assert "the tfidf family trains in one process, but 2 were started" in result.stderr
    assert not out.exists() and not list(out.parent.glob(".*partial"))


def test_pretrain_with_two_processes_writes_one_run(tiny_bert, tmp_path):
    corpus = tmp_path / "news.txt"
    corpus.write_text("\n\n".join(f"{t} {d}" for _, t, d in make_texts(120, 4)), encoding="utf-8")
    out = tmp_path / "runs" / "mlm"
    command = [
        _torchrun(),
        *LAUNCHERS["torchrun"][1:],
        "-m",
        "textcls",
        "pretrain",
        "--data",
        str(corpus),
        "--model",
        str(tiny_bert),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--pseudo-perplexity-texts",
        "2",
        "--out",
        str(out),
        "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    printed = json.loads(result.stdout)  # one JSON document: only the main process prints
    metrics = json.loads((out / "metrics.json").read_text())
    assert printed["train"] == metrics["train"] and metrics["train"]["world_size"] == 2
    # 114 texts to train on (5% held out), 2 processes x 8 a step: 8 steps, not the 15 of one process
    assert metrics["train"]["global_step"] == 8
    assert (out / "model" / "model.safetensors").is_file() and not list(out.parent.glob(".*partial"))


def _budget_step(rank: int, store_path: str, minutes: list[float], stopped) -> None:
    import types

    import torch.distributed as dist

    from textcls.training.trainer import _TimeBudget

    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    try:
        callback = _TimeBudget(minutes[rank]).callback
        args, state = types.SimpleNamespace(world_size=2), types.SimpleNamespace(global_step=1)
        control = types.SimpleNamespace(should_training_stop=False)
        callback.on_train_begin(args, state, control)
        stopped[rank] = callback.on_step_end(args, state, control).should_training_stop
    finally:
        dist.destroy_process_group()


def test_a_time_budget_stops_every_process_at_the_same_step(tmp_path):
    # each process read its own clock: one past the budget stopped while the other went into the next all-reduce
    import torch.multiprocessing as mp

    stopped = mp.Manager().dict()
    mp.spawn(_budget_step, args=(str(tmp_path / "store"), [60.0, 0.0], stopped), nprocs=2, join=True)
    assert dict(stopped) == {0: True, 1: True}  # process 0's own budget had an hour left


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_two_nodes(node_command, textcls_args: list[str], cwd=(None, None)) -> tuple[list, list]:
    """Start `node_command(rank, port)` + `-m textcls ...` for ranks 0 and 1 at once, as two machines would,
    in the folders `cwd`; (launchers, their stdout and stderr files). Output goes to files: a launcher
    blocked on a full pipe would hold up the other in their next collective."""
    port = _free_port()
    outputs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in (0, 1)]
    launchers = [
        subprocess.Popen(
            [*node_command(rank, port), "-m", "textcls", *textcls_args],
            stdout=outputs[rank][0],
            stderr=outputs[rank][1],
            text=True,
            env=ENV,
            cwd=cwd[rank],
            start_new_session=True,
        )
        for rank in (0, 1)
    ]
    return launchers, outputs


def _stop(launchers: list) -> None:
    """Stop the launchers still running, and so their processes: those run in sessions of their own, where
    only the launcher's SIGTERM reaches them."""
    for launcher in launchers:
        if launcher.poll() is None:
            launcher.terminate()
    for launcher in launchers:
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


def _two_nodes(node_command, textcls_args: list[str], cwd=(None, None), timeout: float = 300) -> list:
    """`_start_two_nodes`, then wait for both (every launcher is killed if one outlives `timeout`);
    a `subprocess.CompletedProcess` for each."""
    launchers, outputs = _start_two_nodes(node_command, textcls_args, cwd)
    try:
        for launcher in launchers:
            launcher.wait(timeout=timeout)
    finally:
        _stop(launchers)
    results = []
    for launcher, (stdout, stderr) in zip(launchers, outputs):
        stdout.seek(0), stderr.seek(0)
        results.append(subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout.read(), stderr.read()))
        stdout.close(), stderr.close()
    return results


def _torchrun_node(rank: int, port: int) -> list[str]:
    # static rendezvous: node 0 hosts it at the port, so ranks follow --node_rank (c10d ranks nodes by arrival)
    return [
        _torchrun(),
        "--nnodes",
        "2",
        "--nproc_per_node",
        "1",
        "--node_rank",
        str(rank),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
    ]


def _train_args(data, tiny_bert, out, epochs: int = 1) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--model",
        str(tiny_bert),
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--eval-batch-size",
        "8",
        "--max-length",
        "32",
        "--out",
        str(out),
        "--json",
    ]


def _accelerate_node(rank: int, port: int) -> list[str]:
    program = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if program is None:
        pytest.skip("accelerate is not installed beside this Python")
    # --num_processes counts every machine's processes
    return [
        program,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "2",
        "--machine_rank",
        str(rank),
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(port),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]


NODE_LAUNCHERS = {"torchrun": _torchrun_node, "accelerate": _accelerate_node}


@pytest.mark.parametrize("launcher", sorted(NODE_LAUNCHERS))
def test_train_on_two_nodes_writes_one_run(launcher, tiny_bert, tmp_path):
    import textcls

    # two launchers with one process each: two machines sharing the run folder's storage
    data = write_ag_news_folder(tmp_path / "data", n_train=64, n_dev=16, n_test=0)
    out = tmp_path / "runs" / "two-nodes"
    main_node, other_node = _two_nodes(NODE_LAUNCHERS[launcher], _train_args(data, tiny_bert, out))
    assert main_node.returncode == 0, main_node.stderr[-4000:]
    assert other_node.returncode == 0, other_node.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["world_size"] == 2
    assert metrics["train"]["global_step"] == 4  # 64 rows, 2 processes x batch 8
    # only the main process (rank 0, on node 0) prints and writes: one JSON document, one folder, no leftovers
    assert json.loads(main_node.stdout)["run_dir"] == str(out) and other_node.stdout == ""
    assert sorted(path.name for path in out.parent.iterdir()) == [".two-nodes.lock", "two-nodes"]
    run = textcls.load(out)
    assert run.predict(["stocks fell as markets slid"])[0] in run.label_names


def _resume_step(rank: int, store_path: str, checkpoint_dirs: list[str], outcomes) -> None:
    import types
    from pathlib import Path

    import torch
    import torch.distributed as dist

    from textcls.errors import TextclsError
    from textcls.training.trainer import run_trainer

    class Trainer:  # stands in for transformers' Trainer: only what run_trainer touches
        args = types.SimpleNamespace(should_save=rank == 0)
        model = torch.nn.Linear(2, 2)

        def train(self, resume_from_checkpoint=None):
            return f"trained from {resume_from_checkpoint}"

    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    try:
        outcomes[rank] = run_trainer(Trainer(), Path(checkpoint_dirs[rank]), resume=True)[0]
    except TextclsError as error:
        outcomes[rank] = str(error)
    finally:
        dist.destroy_process_group()


def test_resume_on_nodes_that_see_different_checkpoints_is_refused_by_every_process(tmp_path):
    # a run folder on each node's own disk: node 0 resumed from its checkpoint while node 1 started over,
    # and the two processes trained different steps against each other
    import torch.multiprocessing as mp

    from textcls.training.trainer import mark_complete

    node_dirs = [tmp_path / "node0" / "checkpoints", tmp_path / "node1" / "checkpoints"]
    checkpoint = node_dirs[0] / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    mark_complete(checkpoint)
    node_dirs[1].mkdir(parents=True)
    outcomes = mp.Manager().dict()
    mp.spawn(_resume_step, args=(str(tmp_path / "store"), [str(d) for d in node_dirs], outcomes), nprocs=2, join=True)
    for rank in (0, 1):
        assert "every node must see the same run folder" in outcomes[rank], outcomes[rank]
        assert str(checkpoint) in outcomes[rank] and "process 1" in outcomes[rank]


def test_an_interrupted_run_resumes_on_two_nodes_only_from_shared_storage(tiny_bert, tmp_path):
    import time

    # 320 rows, 2 processes x batch 8: 20 steps an epoch, checkpoint-20 after the first
    data = write_ag_news_folder(tmp_path / "data", n_train=320, n_dev=16, n_test=0)
    shared, elsewhere = tmp_path / "shared", tmp_path / "elsewhere"
    shared.mkdir(), elsewhere.mkdir()
    args = [*_train_args(data, tiny_bert, "runs/x", epochs=3), "--resume"]  # --resume from the start is harmless
    marker = shared / "runs" / ".x.partial" / "checkpoints" / "checkpoint-20" / "textcls-complete.json"
    launchers, outputs = _start_two_nodes(_torchrun_node, args, cwd=(shared, shared))
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and time.monotonic() < deadline and launchers[0].poll() is None:
            time.sleep(0.01)
    finally:
        _stop(launchers)
        for stdout, stderr in outputs:
            stdout.close(), stderr.close()
    if not marker.exists():
        pytest.skip("the first epoch's checkpoint was not written within 240 s")

    # --out relative to each node's own folder: node 1 sees no partial folder, as on its own disk
    refused = _two_nodes(_torchrun_node, args, cwd=(shared, elsewhere), timeout=120)
    for node in refused:
        assert node.returncode != 0
        message = " ".join(node.stderr.split())
        assert "every node must see the same run folder" in message and "checkpoint-20" in message, message[-3000:]
    assert marker.exists()  # the checkpoints are kept for a resume that can work

    main_node, other_node = _two_nodes(_torchrun_node, args, cwd=(shared, shared))
    assert main_node.returncode == 0, main_node.stderr[-3000:]
    assert other_node.returncode == 0, other_node.stderr[-3000:]
    metrics = json.loads(main_node.stdout)
    assert metrics["train"]["resumed_from"].endswith("checkpoint-20") and metrics["train"]["global_step"] == 60
    assert metrics["train"]["world_size"] == 2 and (shared / "runs" / "x" / "model" / "model.safetensors").is_file()


def _save_step(rank: int, store_path: str, output_dir: str) -> None:
    import time
    import types
    from pathlib import Path

    import torch.distributed as dist

    from textcls.training.trainer import training_callbacks

    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    try:
        checkpoint = Path(output_dir) / "checkpoint-4"
        if rank == 0:
            (checkpoint / "model.safetensors").write_bytes(b"weights")
        else:  # a process slower to write its own random state, as over a network file system
            time.sleep(1.0)
            (checkpoint / "rng_state_1.pth").write_bytes(b"random state")
        args = types.SimpleNamespace(world_size=2, should_save=rank == 0, output_dir=output_dir)
        guard = training_callbacks(None)[0]
        guard.on_save(args, types.SimpleNamespace(global_step=4), types.SimpleNamespace())
    finally:
        dist.destroy_process_group()


def test_a_checkpoint_is_marked_complete_once_every_process_has_written_its_files(tmp_path):
    # the main process listed the checkpoint's files while another process still wrote its random state:
    # the marker missed it (unchecked on resume), or recorded it half-written (the checkpoint then discarded)
    import torch.multiprocessing as mp

    from textcls.training.trainer import CHECKPOINT_MARKER

    (tmp_path / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    mp.spawn(_save_step, args=(str(tmp_path / "store"), str(tmp_path / "checkpoints")), nprocs=2, join=True)
    marker = json.loads((tmp_path / "checkpoints" / "checkpoint-4" / CHECKPOINT_MARKER).read_text())
    assert marker["files"] == {"model.safetensors": 7, "rng_state_1.pth": 12}
