"""Does torch.compile make a MiniLM training step faster on this CPU? Eager against compiled, in one run.

The embedded MiniLM's bare training step (forward, backward, fused AdamW, autocast as `--precision auto`
resolves it) on the same AG News batches (32 texts grouped by length, padded to multiples of 8), first
eager, then `torch.compile(model, dynamic=True)`; the compiled model's first steps (compilation) are timed
apart, with torch's compile caches off (a first run's cost). It backs `textcls train --compile` being
GPU-only: a CPU run asking for it is warned and runs eager.

    python benchmarks/cpu_compile.py --data ../shared/data/ag_news
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too
# compile cold, as a first run does: no inductor/FX graph caches from earlier runs (they hide most of it)
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch

import textcls
from benchmarks import harness
from benchmarks.bare_step import engine_batches, step_timing
from textcls.data.loading import load_data
from textcls.models.encoders import embedded_model_path
from textcls.training.device import resolve_precision


def measure(compiled: bool, batches: list[dict], warmup: int, precision: str, seed: int) -> dict:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(embedded_model_path(), num_labels=4).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    forward = torch.compile(model, dynamic=True) if compiled else model
    timing = step_timing(forward, optimizer, batches, warmup, precision)
    row = {
        "compiled": compiled,
        "first_steps_seconds": round(timing.warmup_seconds, 1),
        "steps": len(batches) - warmup,
        "samples_per_second": round(timing.per_second, 1),
    }
    print(
        f"  {'compiled' if compiled else 'eager'}: first {warmup} steps {timing.warmup_seconds:.1f} s, then "
        f"{row['samples_per_second']} samples/s over {row['steps']} steps",
        file=sys.stderr,
        flush=True,
    )
    return row


def main() -> None:
    parser = harness.parser(__doc__, "cpu_compile", data=("train.csv",), seed=0)
    parser.add_argument("--steps", type=int, default=25, help="Timed steps per mode (after the first ones).")
    parser.add_argument("--warmup", type=int, default=3, help="First steps timed apart (compilation happens there).")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if torch.cuda.is_available():
        sys.exit("this benchmark measures the CPU; on a GPU see benchmarks/gpu_settings.py (setting 'compile')")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    train = load_data(textcls.DataConfig(data=args.data, seed=args.seed), splits=("train",)).splits["train"]
    batches = engine_batches(
        embedded_model_path(), train.texts, train.labels, args.batch_size, args.seed, args.steps + args.warmup
    )
    precision = resolve_precision("auto")
    head = harness.header("cpu_compile", args)
    rows = [measure(compiled, batches, args.warmup, precision, args.seed) for compiled in (False, True)]
    eager, compiled = rows
    result = {
        "precision": precision,
        "widths": sorted({int(b["input_ids"].shape[1]) for b in batches}),
        "rows": rows,
        "ratio": round(compiled["samples_per_second"] / eager["samples_per_second"], 2),
    }
    harness.write_result(args.output, head, result)
    print(f"{harness.describe(head)}; {precision}, batch {args.batch_size}, widths {result['widths']}")
    print(f"{'mode':<10}{'first steps s':>14}{'samples/s':>11}")
    for row in rows:
        mode = "compiled" if row["compiled"] else "eager"
        print(f"{mode:<10}{row['first_steps_seconds']:>14.1f}{row['samples_per_second']:>11.1f}")
    print(f"compiled / eager: {result['ratio']}x; written to {args.output}")


if __name__ == "__main__":
    main()
