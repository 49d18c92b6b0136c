"""benchmarks/pretrain_gain.py reuses the runs it finds in --work only when they were made the way its command asks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "pretrain_gain.py"


@pytest.fixture(scope="module")
def pretrain_gain():
    spec = importlib.util.spec_from_file_location("pretrain_gain", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_made_with_other_settings_stops_the_benchmark_naming_them(pretrain_gain, tmp_path):
    made = {"mlm_probability": 0.15, "whole_word_masking": False, "lr": 2e-4}
    with pytest.raises(SystemExit) as stopped:
        pretrain_gain.check_reused(tmp_path / "mlm", made, {**made, "whole_word_masking": True})
    message = str(stopped.value)
    assert str(tmp_path / "mlm") in message and "whole_word_masking False (asked: True)" in message
    assert "mlm_probability" not in message and "lr 0.0002" not in message  # only what differs


def test_a_run_made_the_same_way_is_reused(pretrain_gain, tmp_path):
    made = {"epochs": 3.0, "batch_size": 16, "lr": 1e-4, "seed": 2, "rows": 500, "encoder": None}
    assert pretrain_gain.check_reused(tmp_path / "base-500-2", made, dict(made)) is None
