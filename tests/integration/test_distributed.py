"""The same `train` command under torchrun: 2 CPU processes (gloo) through Trainer's own DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import write_ag_news_folder

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_train_under_torchrun_with_two_processes(tiny_bert, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    data = write_ag_news_folder(tmp_path / "data", n_train=64, n_dev=16, n_test=0)
    out = tmp_path / "runs" / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        torchrun, "--standalone", "--nproc_per_node", "2",  # --standalone: a free loopback port
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
