"""The same `train` command under torchrun and accelerate launch: 2 CPU processes (gloo), Trainer's own DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import write_ag_news_folder

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


LAUNCHERS = {
    "torchrun": ["torchrun", "--standalone", "--nproc_per_node", "2"],  # --standalone: a free loopback port
    # accelerate's --multi_gpu means "torch.distributed processes"; on a CPU they use gloo
    "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_train_with_two_processes(launcher, tiny_bert, tmp_path):
    program = shutil.which(LAUNCHERS[launcher][0], path=os.path.dirname(sys.executable))
    if program is None:
        pytest.skip(f"{launcher} is not installed beside this Python")
    data = write_ag_news_folder(tmp_path / "data", n_train=64, n_dev=16, n_test=0)
    out = tmp_path / "runs" / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        program, *LAUNCHERS[launcher][1:],
        "-m", "textcls", "train", "--data", str(data), "--model", str(tiny_bert), "--epochs", "2",
        "--batch-size", "8", "--max-length", "32", "--out", str(out), "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["world_size"] == 2
    # 64 rows, 2 processes x batch 8 = 16 rows per step: 4 steps per epoch, not 8 as on one process.
    assert metrics["train"]["global_step"] == 8
    assert [round(row["epoch"]) for row in metrics["train"]["epochs"]] == [1, 2]
    assert metrics["dev"]["num_samples"] == 16
    assert (out / "model" / "model.safetensors").is_file()
    # Only the main process prints results: exactly one JSON document on stdout.
    assert json.loads(result.stdout)["run_dir"] == str(out)
