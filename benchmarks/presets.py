"""What the presets buy: `textcls train` as it is (default) beside `--preset accurate` and `--preset fast`.

For each configuration (--configs, default: default,accurate,fast) and seed (--seeds), train afresh on
--rows rows of the training pool (default: all) and score dev.csv; print dev accuracy mean ± sd and the
wall time (the whole command: for a preset, its measuring, every stage and putting the run in place)
per configuration, and write JSON (under the result header: config, versions, machine) to --output.

    python benchmarks/presets.py --data ../shared/data/ag_news
    python benchmarks/presets.py --configs default --seeds 42 --compare-to benchmarks/results/presets.json

--compare-to reads an earlier result (say, the CPU's) and prints the default's dev accuracy beside it.
Runs go to --work/<config>-<seed> and are replaced on every run of the benchmark. Each preset run also
records its plan (the speed it measured, what it chose, its estimate) and each stage's seconds.

A faster CPU stands in for a slower one with its kernels and threads held down and, in a cgroup with a
CPU quota, its time capped; the result's machine records both (`limited_by`). The fast preset on a
machine of about 12 MiniLM samples/s (AVX2, fp32), from a 2-core Xeon (cgroup v1, as root):

    mkdir /sys/fs/cgroup/cpu/slow && echo 66000 > /sys/fs/cgroup/cpu/slow/cpu.cfs_quota_us
    sh -c 'echo $$ > /sys/fs/cgroup/cpu/slow/cgroup.procs; OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2 \\
        ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 exec taskset -c 0 python benchmarks/presets.py \\
        --configs fast --precision fp32 --seeds 42,43,44 --output benchmarks/results/presets_fast_slow.json'
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import textcls
from benchmarks import harness
from textcls import runfolder

log = logging.getLogger("benchmark")

CONFIGS = ("default", "accurate", "fast")
# what each run's training summary (metrics.json "train") contributes to the result
TRAIN_KEYS = ("precision", "max_length", "train_samples_per_second", "global_step", "stopped_by_time_budget")


def run_once(config: str, seed: int, out: Path, args: Any) -> dict[str, Any]:
    """Train configuration `config` with `seed` into `out`; its dev accuracy and wall seconds."""
    options: dict[str, Any] = {"seed": seed, "model": args.model}
    if args.rows is not None:
        options["max_train_samples"] = args.rows
    for name in ("epochs", "batch_size", "max_length", "lr", "precision"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if config == "fast":
        options["time_budget"] = args.time_budget
    if config == "accurate" and args.pretrain_minutes is not None:
        options["stage_options"] = {"pretrain": {"time_budget": args.pretrain_minutes}}
    started = time.perf_counter()
    preset = None if config == "default" else config
    result = textcls.train(data=args.data, out=str(out), preset=preset, overwrite=True, **options)
    wall = time.perf_counter() - started
    accuracy = result.metrics["dev"]["accuracy"]
    log.info("%s seed %d: dev accuracy %.4f in %.0fs", config, seed, accuracy, wall)
    trained = result.metrics.get("train", {})
    found: dict[str, Any] = {
        "seed": seed,
        "dev_accuracy": accuracy,
        "wall_seconds": round(wall, 1),
        "train": {key: trained.get(key) for key in TRAIN_KEYS},
    }
    manifest = runfolder.preset_manifest_path(out)
    if preset is not None and manifest.is_file():
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        found["plan"] = recorded["plan"]
        found["stages"] = {stage["name"]: stage["seconds"] for stage in recorded["stages"]}
    return found


def summary(config: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    accuracies = [run["dev_accuracy"] for run in runs]
    walls = [run["wall_seconds"] for run in runs]
    return {
        "config": config,
        "runs": runs,
        "mean": statistics.mean(accuracies),
        "sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "wall_seconds_mean": round(statistics.mean(walls), 1),
    }


def compared_default(path: Path) -> float | None:
    """The default's mean dev accuracy in an earlier result of this benchmark, or None."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None
    return next((cell["mean"] for cell in cells if cell["config"] == "default"), None)


def main() -> None:
    parser = harness.parser(__doc__, "presets", work=True)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="Comma-separated: default, accurate, fast.")
    parser.add_argument("--seeds", default="42,43,44", help="Comma-separated seeds, one training each.")
    parser.add_argument("--rows", type=int, default=None, help="Training rows of the pool (seeded); default: all.")
    parser.add_argument("--model", default=None, help="Encoder folder or hub id; default: the embedded MiniLM.")
    parser.add_argument("--time-budget", type=float, default=10.0, help="Minutes for --preset fast.")
    parser.add_argument(
        "--pretrain-minutes", type=float, default=None, help="accurate: its pretrain stage's bound (default: its own)."
    )
    parser.add_argument("--epochs", type=float, default=None, help="Override every configuration's epochs.")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--precision", default=None, help="Every configuration's precision (auto, fp32, bf16, fp16); default: auto."
    )
    parser.add_argument("--compare-to", type=Path, default=None, help="An earlier result (say the CPU's) to compare.")
    args = parser.parse_args()
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: expected names from {', '.join(CONFIGS)}, found {', '.join(unknown)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    head = harness.header("presets", args)
    work = Path(args.work)

    cells = [
        summary(config, [run_once(config, seed, work / f"{config}-{seed}", args) for seed in seeds])
        for config in configs
    ]

    rows = "all" if args.rows is None else args.rows
    print(f"\npresets on AG News dev, {rows} training rows, seeds {seeds}; {harness.describe(head)}")
    print(f"{'configuration':<14} {'dev accuracy':>17} {'wall s':>8}")
    for cell in cells:
        print(f"{cell['config']:<14} {cell['mean']:.4f} ± {cell['sd']:.4f} {cell['wall_seconds_mean']:>8.0f}")
    body: dict[str, Any] = {"cells": cells}
    if args.compare_to is not None:
        earlier = compared_default(args.compare_to)
        here = next((cell["mean"] for cell in cells if cell["config"] == "default"), None)
        body["compared_to"] = {"file": str(args.compare_to), "default_mean": earlier}
        if earlier is None or here is None:
            print(f"no default to compare in {args.compare_to} or in this run")
        else:
            gain = 100 * (here - earlier)
            print(f"default here {here:.4f} vs {earlier:.4f} in {args.compare_to} ({gain:+.2f} points)")
    harness.write_result(args.output, head, body)
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
