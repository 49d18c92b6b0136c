"""Where a training step spends its time: `torch.profiler` over a few steps of the product's fit path.

It names the operators a step's time goes to (README, "Training speed on a GPU"), sorted by host time
and, on a GPU, by device time. It runs `PretrainedClassifier.fit` with this device's defaults on the
first `--rows` AG News rows, skips `--wait` steps (start-up, allocator growth), warms the profiler up
for 3, records `--steps` steps and stops training. It prints the top operators by self device time (on
a GPU) and by self host time, and writes them under the result header (config, versions, machine) to
`--output` (JSON).

    python benchmarks/step_profile.py --data ../shared/data/ag_news                       # MiniLM, defaults
    python benchmarks/step_profile.py --data DIR --batch-tokens 16384 --lr 3e-4 --steps 20
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import torch

import textcls
from benchmarks import harness
from textcls.config import TrainConfig
from textcls.data.loading import Split, load_data
from textcls.models.encoders import embedded_model_path
from textcls.models.pretrained import PretrainedClassifier

WARMUP = 3  # profiler warm-up steps: recorded, then dropped


def profiled_callback(profiler: torch.profiler.profile, last_step: int) -> object:
    """A Trainer callback that advances the profiler every step and stops training after `last_step`."""
    from transformers import TrainerCallback

    class Callback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            profiler.step()
            if state.global_step >= last_step:
                control.should_training_stop = True
            return control

    return Callback()


def top_operators(profiler: torch.profiler.profile, sort_by: str, rows: int) -> list[dict]:
    """The `rows` operators with the most `sort_by` time, in microseconds per profiled run."""
    events = sorted(profiler.key_averages(), key=lambda event: getattr(event, sort_by, 0.0), reverse=True)
    return [
        {
            "name": event.key,
            "calls": event.count,
            "self_host_us": round(event.self_cpu_time_total, 1),
            "self_device_us": round(getattr(event, "self_device_time_total", 0.0), 1),
        }
        for event in events[:rows]
    ]


def main() -> None:
    parser = harness.parser(
        __doc__,
        "step_profile",
        rows=10_000,
        seed=harness.SEED,
        help={"rows": "Training rows (enough for wait + warm-up + steps)."},
    )
    parser.add_argument("--model", default=None, help="Encoder folder (default: the embedded MiniLM).")
    parser.add_argument("--batch-tokens", type=int, default=None, help="Token budget (default: this device's).")
    parser.add_argument("--batch-size", type=int, default=None, help="Texts a batch instead of a token budget.")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--wait", type=int, default=10, help="Steps left out before the profiler starts.")
    parser.add_argument("--steps", type=int, default=12, help="Steps recorded.")
    parser.add_argument("--top", type=int, default=25, help="Operators shown per table.")
    args = parser.parse_args()

    data = load_data(textcls.DataConfig(data=args.data, seed=args.seed), splits=("train", "dev"))
    train, dev = data.splits["train"], data.splits["dev"]
    train = Split(train.name, train.texts[: args.rows], train.labels[: args.rows], train.source)
    dev = Split(dev.name, dev.texts[:200], dev.labels[:200], dev.source)
    options = {"batch_tokens": args.batch_tokens, "batch_size": args.batch_size, "lr": args.lr}
    config = TrainConfig(
        model=args.model or str(embedded_model_path()),
        epochs=1.0,
        seed=args.seed,
        early_stopping_patience=0,
        **{name: value for name, value in options.items() if value is not None},
    )

    gpu = torch.cuda.is_available()
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if gpu else [])
    schedule = torch.profiler.schedule(wait=args.wait, warmup=WARMUP, active=args.steps, repeat=1)
    profiler = torch.profiler.profile(activities=activities, schedule=schedule)
    import textcls.models.pretrained as pretrained

    shared_callbacks = pretrained.training_callbacks
    pretrained.training_callbacks = lambda budget: [
        *shared_callbacks(budget),
        profiled_callback(profiler, args.wait + WARMUP + args.steps),
    ]
    try:
        with profiler, tempfile.TemporaryDirectory() as scratch:
            _, summary = PretrainedClassifier.fit(train, dev, data.label_names, config, Path(scratch))
    finally:
        pretrained.training_callbacks = shared_callbacks

    totals = {"self_host_us": round(sum(event.self_cpu_time_total for event in profiler.key_averages()), 1)}
    if gpu:
        totals["self_device_us"] = round(
            sum(getattr(event, "self_device_time_total", 0.0) for event in profiler.key_averages()), 1
        )
    tables = {"self_host": top_operators(profiler, "self_cpu_time_total", args.top)}
    if gpu:
        tables["self_device"] = top_operators(profiler, "self_device_time_total", args.top)
    for name, rows in tables.items():
        total = totals.get(f"{name}_us", 0.0)
        print(f"\n{name} time over {args.steps} steps: {total / 1e3:.0f} ms in all operators; the top ones (us)")
        print(f"{'operator':<70} {'calls':>7} {'self host':>11} {'self device':>12}")
        for row in rows:
            print(
                f"{row['name'][:70]:<70} {row['calls']:>7} {row['self_host_us']:>11.0f} {row['self_device_us']:>12.0f}"
            )
    head = harness.header("step_profile", {**vars(args), "resolved": dataclasses.asdict(config)})
    harness.write_result(
        args.output,
        head,
        {
            "summary": {key: summary.get(key) for key in ("precision", "global_step", "steady_samples_per_second")},
            "totals": totals,
            "tables": tables,
        },
    )
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
