"""What every benchmark shares: its common flags, the header at the top of its result JSON, step timing,
and the check that a run folder or generated data found on disk was made the way the command asks.

    parser = harness.parser(__doc__, "inference", rows=7600, seed=0, repeats=2, run=True)
    args = parser.parse_args()                                 # also checks --data holds the files it needs
    timing = harness.time_steps(predict, [texts[:64], texts], warmup=1, size=len)
    harness.write_result(args.output, harness.header("inference", args), {"rows": rows})

Scripts run from the repository root (`python benchmarks/NAME.py` or `python -m benchmarks.NAME`), so
the relative defaults below are read from there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from textcls.files import write_json
from textcls.machine import cpu_flags, hardware, library_versions

ROOT = Path(__file__).resolve().parents[1]
DATA = "../shared/data/ag_news"  # the AG News rows beside the repository
RUN = "runs/agnews"  # the run folder the README's first `textcls train` writes
RESULTS = "benchmarks/results"
SEED = 42
MADE_WITH = "made_with.json"  # in a folder of generated data: the options it was generated with

# CPU features that decide which kernels torch and ONNX Runtime can use (bf16 and int8 matrix units)
MATRIX_FLAGS = ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
# Environment variables that hold torch, oneDNN or MKL to fewer kernels or threads than the CPU offers (a
# faster machine standing in for a slower one): recorded with the machine when set.
LIMITING_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")

HELP = {
    "rows": "Rows measured.",
    "seed": "Seed of every draw (rows, weights, batch order).",
    "repeats": "Passes of each measurement, in turns, so a load that comes and goes falls on all of them.",
    "run": "A fine-tuned pretrained-family run folder (e.g. from `textcls train`).",
    "work": "Folder for generated data and runs, reused when made with the same rows and options.",
    "output": "Where the result JSON goes.",
}

Step = TypeVar("Step")


# ---- common options --------------------------------------------------------------------------
class BenchmarkParser(argparse.ArgumentParser):
    """An `ArgumentParser` that also checks the common flags once parsed: --data holds the files the
    benchmark reads, and counts (--rows, --repeats) are at least 1."""

    def __init__(self, *args: Any, data_files: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_files = tuple(data_files)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        for name in ("rows", "repeats"):
            value = getattr(parsed, name, None)
            if value is not None and value < 1:
                self.error(f"--{name}: expected an integer >= 1, found {value}")
        if self.data_files:
            require_data(parsed.data, self.data_files)
        return parsed


def parser(
    doc: str | None,
    name: str,
    *,
    data: Sequence[str] = ("train.csv", "dev.csv"),
    rows: int | None = None,
    seed: int | None = None,
    repeats: int | None = None,
    run: bool = False,
    work: bool = False,
    output: str | None = ".json",
    help: Mapping[str, str] | None = None,
) -> BenchmarkParser:
    """The parser of benchmark `name` with the flags benchmarks share, each with the shared default unless
    given: --data (a folder holding `data`; none when empty), --rows, --seed and --repeats (when given a
    default), --run, --work (`runs/NAME`) and --output (`benchmarks/results/NAME` + `output`; none when None).
    `help` replaces a flag's shared help text."""
    texts = {**HELP, **(help or {})}
    made = BenchmarkParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, data_files=data)
    if data:
        made.add_argument("--data", default=DATA, help=f"AG News folder ({', '.join(data)}).")
    if run:
        made.add_argument("--run", default=RUN, help=texts["run"])
    if work:
        made.add_argument("--work", default=f"runs/{name}", help=texts["work"])
    if rows is not None:
        made.add_argument("--rows", type=int, default=rows, help=texts["rows"])
    if seed is not None:
        made.add_argument("--seed", type=int, default=seed, help=texts["seed"])
    if repeats is not None:
        made.add_argument("--repeats", type=int, default=repeats, help=texts["repeats"])
    if output is not None:
        made.add_argument("--output", type=Path, default=Path(RESULTS) / f"{name}{output}", help=texts["output"])
    return made


def require_data(folder: str | Path, files: Sequence[str]) -> Path:
    """`folder`, once it holds every one of `files`; else the benchmark stops saying which are missing."""
    folder = Path(folder)
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        sys.exit(
            f"expected AG News data at {folder} ({', '.join(files)}), found no {', '.join(missing)}; "
            f"pass --data FOLDER with {', '.join(files)}"
        )
    return folder


def require_run(run: str | Path, data: str | Path, onnx: bool = False) -> Path:
    """`run`, once it is a run folder (exported to ONNX, fp32 and int8, first when `onnx` and it was
    not); else the benchmark stops saying how to train one."""
    from textcls.runfolder import is_run

    run_dir = Path(run)
    if not is_run(run_dir):
        sys.exit(
            f"expected a run folder at {run_dir}, found none; train one: textcls train --data {data} --out {run_dir}"
        )
    if onnx:
        from textcls.inference.onnx import ONNX_DIR, ONNX_FILES, export_onnx

        if not all((run_dir / ONNX_DIR / name).is_file() for name in ONNX_FILES.values()):
            print(f"exporting {run_dir} to ONNX (fp32 and int8)", file=sys.stderr, flush=True)
            export_onnx(run_dir, int8=True)
    return run_dir


def read_ag_news(path: Path) -> tuple[list[str], list[int]]:
    """The texts ("title description") and label indices of an AG News CSV with a header."""
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        rows = [(f"{row['title']} {row['description']}".strip(), int(row["label"])) for row in csv.DictReader(handle)]
    return [text for text, _ in rows], [label for _, label in rows]


# ---- the result header -----------------------------------------------------------------------
def jsonable(config: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """A command's options as JSON holds them (paths as text)."""
    values = vars(config) if isinstance(config, argparse.Namespace) else dict(config)
    return json.loads(json.dumps(values, default=str))


def versions(*extra: str) -> dict[str, str]:
    """`textcls.machine.library_versions()` and the installed version of each package in `extra`."""
    from importlib.metadata import PackageNotFoundError, version

    found = library_versions()
    for package in extra:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine(onednn: bool = False) -> dict[str, Any]:
    """The machine a benchmark ran on: platform, CPU by name, cores, the matrix-unit flags, torch's
    threads, the GPU if any, the `LIMITING_ENV` variables set (with the kernels torch then uses), and
    (`onednn`) what oneDNN picks for a bf16 matrix product here."""
    import torch

    flags = cpu_flags()
    found = {
        **hardware(),
        "cpu_flags": {flag: flag in flags for flag in MATRIX_FLAGS},
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    limits: dict[str, Any] = {name: os.environ[name] for name in LIMITING_ENV if os.environ.get(name)}
    quota = cpu_quota()
    if quota is not None:
        limits["cpu_quota"] = quota
    if limits:
        found["limited_by"] = {**limits, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if onednn:
        found["onednn"] = onednn_choice()
    return found


def cpu_quota(cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs' worth of time this process's cgroup may use (its CFS quota over its period; `cgroup`
    names the groups, `root` is where their controls are), or None when it is not capped: a capped
    cgroup makes a machine stand in for a slower one."""
    try:
        groups = cgroup.read_text(encoding="utf-8").splitlines()
        for line in groups:
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # cgroup v2: "max 100000" or "66000 100000"
                quota, period = (root / path.lstrip("/") / "cpu.max").read_text().split()
                return None if quota == "max" else round(int(quota) / int(period), 3)
            if "cpu" in controllers.split(","):  # cgroup v1
                folder = root / "cpu" / path.lstrip("/")
                quota = int((folder / "cpu.cfs_quota_us").read_text())
                period = int((folder / "cpu.cfs_period_us").read_text())
                return None if quota <= 0 else round(quota / period, 3)
    except (OSError, ValueError):
        return None
    return None


def onednn_choice() -> dict[str, Any]:
    """The ISA torch's oneDNN uses on this CPU and its bf16 kernels, from one Linear layer under bf16
    autocast in a fresh process (ONEDNN_VERBOSE prints them)."""
    import torch

    probe = (
        "import torch; x = torch.randn(64, 384); l = torch.nn.Linear(384, 384);\n"
        "with torch.autocast('cpu', dtype=torch.bfloat16): l(x)"
    )
    verbose = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "ONEDNN_VERBOSE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    lines = verbose.splitlines()
    kernels = {
        part
        for line in lines
        if line.startswith("onednn_verbose,v1,primitive,exec")
        for part in line.split(",")
        if part.startswith(("brg", "gemm", "jit"))
    }
    return {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "isa": next((line.split(",")[-1] for line in lines if ",isa:" in line), None),
        "bf16_kernels": sorted(kernels),
    }


def header(
    name: str,
    config: argparse.Namespace | Mapping[str, Any],
    *,
    packages: Sequence[str] = (),
    onednn: bool = False,
) -> dict[str, Any]:
    """What heads every result JSON: the benchmark, when it was measured, its config, the library
    versions (and those of `packages`) and the machine."""
    return {
        "benchmark": name,
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": jsonable(config),
        "versions": versions(*packages),
        "machine": machine(onednn),
    }


def write_result(path: str | Path, head: Mapping[str, Any], body: Mapping[str, Any]) -> Path:
    """Write `head` then `body` as one JSON file at `path` (its folder made if needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**head, **body})
    return path


def describe(head: Mapping[str, Any]) -> str:
    """One line naming the machine of a header, for the top of a printed table."""
    found = head["machine"]
    units = [flag for flag, present in found["cpu_flags"].items() if present]
    line = (
        f"{head['measured']}, {found['gpu'] or 'CPU only'}, {found['processor']}, {found['cpus']} cores, "
        f"{found['torch_threads']} torch threads, matrix units: {', '.join(units) or 'none'}"
    )
    if "limited_by" in found:
        line += "; limited by " + ", ".join(f"{name}={value}" for name, value in found["limited_by"].items())
    if "onednn" in found:
        kernels = ", ".join(found["onednn"]["bf16_kernels"]) or "-"
        line += f"; oneDNN ISA: {found['onednn']['isa']}, bf16 kernels: {kernels}"
    return line


# ---- step timing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Seconds of the warm-up steps, seconds of the timed ones, and what the timed ones did (`size`)."""

    warmup_seconds: float
    seconds: float
    count: int

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def time_steps(
    step: Callable[[Step], object],
    steps: Sequence[Step],
    warmup: int,
    *,
    size: Callable[[Step], int] = lambda _: 1,
    synchronize: Callable[[], object] | None = None,
) -> Timing:
    """Run `step` on each of `steps`: the first `warmup` ones warm up (kernels, allocator, caches) and are
    timed apart, the rest are timed; `size` counts what a step does (texts, samples) for `per_second`.
    `synchronize` (e.g. `torch.cuda.synchronize`) runs before and after each clock, so queued device work
    is counted where it was asked for.

        >>> time_steps(lambda texts: predict(texts), [texts[:64], texts], warmup=1, size=len)  # doctest: +SKIP
    """
    if len(steps) <= warmup:
        raise ValueError(f"expected more steps than the {warmup} warm-up steps, found {len(steps)}")

    def clock(part: Sequence[Step]) -> float:
        if synchronize is not None:
            synchronize()
        started = time.perf_counter()
        for item in part:
            step(item)
        if synchronize is not None:
            synchronize()
        return time.perf_counter() - started

    first = clock(steps[:warmup])
    seconds = clock(steps[warmup:])
    return Timing(first, seconds, sum(size(item) for item in steps[warmup:]))


def device_synchronize() -> Callable[[], object] | None:
    """`torch.cuda.synchronize` where a GPU runs the steps, else None (a CPU step ends when it returns)."""
    import torch

    return torch.cuda.synchronize if torch.cuda.is_available() else None


# ---- reuse of what an earlier run made -------------------------------------------------------
def check_reused(path: Path, made_with: Mapping[str, Any], asked: Mapping[str, Any]) -> None:
    """Stop when `path` (a run folder or generated data found on disk) was made with other settings than
    this command asks for: reusing it would silently mix two recipes in one table. Only the settings
    that differ are named."""
    differ = {key: (made_with.get(key), value) for key, value in asked.items() if made_with.get(key) != value}
    if differ:
        found = ", ".join(f"{key} {old!r} (asked: {new!r})" for key, (old, new) in differ.items())
        sys.exit(f"{path}: made with {found}; pass another --work, or delete {path} to redo it")


def reuse_generated(folder: Path, made_with: Mapping[str, Any]) -> bool:
    """Whether `folder` already holds data generated with `made_with` (then it is reused); stops when it
    holds data generated otherwise. False when nothing was generated there yet."""
    record = folder / MADE_WITH
    if not record.is_file():
        return False
    check_reused(folder, json.loads(record.read_text(encoding="utf-8")), jsonable(made_with))
    return True


def record_generated(folder: Path, made_with: Mapping[str, Any]) -> None:
    """Note in `folder` the options its data was generated with, for `reuse_generated`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / MADE_WITH, jsonable(made_with))
