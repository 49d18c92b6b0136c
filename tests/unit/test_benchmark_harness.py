"""benchmarks.harness: the result header, the reuse check, the step timer and the common flags."""

from __future__ import annotations

import json
import time

import pytest

from benchmarks import harness
from textcls.machine import library_versions


def test_the_header_holds_the_config_the_versions_and_the_machine():
    args = harness.parser(None, "demo", data=(), rows=100, seed=3, repeats=2).parse_args(["--rows", "7"])
    head = harness.header("demo", args, packages=("no-such-package-here",))

    assert head["benchmark"] == "demo"
    assert head["config"] == {"rows": 7, "seed": 3, "repeats": 2, "output": "benchmarks/results/demo.json"}
    assert head["versions"]["torch"] == library_versions()["torch"]
    assert head["versions"]["no-such-package-here"] == "not installed"
    machine = head["machine"]
    assert {"platform", "processor", "cpus", "torch_threads", "gpu"} <= set(machine)
    assert set(harness.MATRIX_FLAGS) == set(machine["cpu_flags"])
    assert machine["cpu_flags"]["avx512_bf16"] in (True, False) and "amx_bf16" in machine["cpu_flags"]


def test_variables_that_hold_the_kernels_down_are_recorded_with_the_machine(monkeypatch):
    for name in harness.LIMITING_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(harness, "cpu_quota", lambda: None)  # a CI container may run under a CPU quota
    assert "limited_by" not in harness.machine()

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    head = harness.header("demo", {"rows": 5})

    limits = head["machine"]["limited_by"]
    assert limits["ONEDNN_MAX_CPU_ISA"] == "AVX2" and limits["OMP_NUM_THREADS"] == "1"
    assert "ATEN_CPU_CAPABILITY" not in limits and limits["torch_cpu_capability"]
    assert "limited by ONEDNN_MAX_CPU_ISA=AVX2, OMP_NUM_THREADS=1" in harness.describe(head)


@pytest.mark.parametrize(
    ("groups", "files", "expected"),
    [
        ("0::/slow\n", {"slow/cpu.max": "66000 100000\n"}, 0.66),
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),
        (
            "1:cpu,cpuacct:/slow\n0::/\n",
            {"cpu/slow/cpu.cfs_quota_us": "50000", "cpu/slow/cpu.cfs_period_us": "100000"},
            0.5,
        ),
        ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
        ("1:cpu:/gone\n", {}, None),
    ],
)
def test_a_capped_cgroup_is_read_as_the_cpus_it_may_use(tmp_path, groups, files, expected):
    (tmp_path / "cgroup").write_text(groups, encoding="utf-8")
    for name, text in files.items():
        (tmp_path / "root" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / name).write_text(text, encoding="utf-8")

    assert harness.cpu_quota(tmp_path / "cgroup", tmp_path / "root") == expected


def test_a_result_file_starts_with_the_header(tmp_path):
    head = harness.header("demo", {"rows": 5, "output": tmp_path / "out.json"})
    path = harness.write_result(tmp_path / "deeper" / "out.json", head, {"rows": [1, 2]})

    written = json.loads(path.read_text(encoding="utf-8"))
    assert list(written)[:5] == ["benchmark", "measured", "config", "versions", "machine"]
    assert written["config"]["output"] == str(tmp_path / "out.json")  # paths written as text
    assert written["rows"] == [1, 2]


def test_a_run_made_with_another_setting_stops_the_benchmark_naming_only_that_setting(tmp_path):
    made = {"rows": 500, "seed": 0, "epochs": 3.0}
    with pytest.raises(SystemExit) as stopped:
        harness.check_reused(tmp_path / "run", made, {**made, "rows": 2000})
    message = str(stopped.value)
    assert str(tmp_path / "run") in message and "rows 500 (asked: 2000)" in message
    assert "seed" not in message and "epochs" not in message


def test_a_run_made_with_the_same_settings_is_reused(tmp_path):
    made = {"rows": 500, "seed": 0, "encoder": None}
    assert harness.check_reused(tmp_path / "run", made, dict(made)) is None


def test_generated_data_is_reused_only_when_made_with_the_same_options(tmp_path):
    folder = tmp_path / "data"
    assert harness.reuse_generated(folder, {"rows": 10}) is False  # nothing generated yet
    harness.record_generated(folder, {"rows": 10, "source": tmp_path})
    assert harness.reuse_generated(folder, {"rows": 10, "source": tmp_path}) is True
    with pytest.raises(SystemExit, match=r"rows 10 \(asked: 20\)"):
        harness.reuse_generated(folder, {"rows": 20, "source": tmp_path})


def test_the_timer_leaves_the_warm_up_steps_out():
    def step(seconds: float) -> None:
        time.sleep(seconds)

    timing = harness.time_steps(step, [0.2, 0.01, 0.01], warmup=1, size=lambda _: 4)

    assert timing.warmup_seconds >= 0.2
    assert 0.02 <= timing.seconds < 0.2  # the slow first step is not in it
    assert timing.count == 8 and timing.per_second == pytest.approx(8 / timing.seconds)


def test_the_timer_needs_a_step_after_the_warm_up():
    with pytest.raises(ValueError, match="more steps than the 2 warm-up steps"):
        harness.time_steps(print, [1, 2], warmup=2)


def test_the_common_flags_are_checked_once_parsed(tmp_path, capsys):
    (tmp_path / "train.csv").write_text("label,title,description\n", encoding="utf-8")
    parser = harness.parser(None, "demo", repeats=1)

    with pytest.raises(SystemExit, match="found no dev.csv; pass --data FOLDER with train.csv, dev.csv"):
        parser.parse_args(["--data", str(tmp_path)])
    (tmp_path / "dev.csv").write_text("label,title,description\n", encoding="utf-8")
    args = parser.parse_args(["--data", str(tmp_path)])
    assert str(args.output) == "benchmarks/results/demo.json" and args.repeats == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", str(tmp_path), "--repeats", "0"])
    assert "--repeats: expected an integer >= 1, found 0" in capsys.readouterr().err
