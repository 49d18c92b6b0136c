"""Does torch.compile make a MiniLM training step faster on this CPU? Eager against compiled, in one run.

The embedded MiniLM's bare training step (forward, backward, fused AdamW, autocast as `--precision auto`
resolves it) on the same AG News batches (32 texts grouped by length, padded to multiples of 8), first
eager, then `torch.compile(model, dynamic=True)`; the compiled model's first steps (compilation) are timed
apart, with torch's compile caches off (a first run's cost). It backs `textcls train --compile` being GPU-only: a CPU run asking for it is warned and runs eager.

    python benchmarks/cpu_compile.py --data ../shared/data/ag_news
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

# compile cold, as a first run does: no inductor/FX graph caches from earlier runs (they cut 116 s to ~30 s here)
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
import torch  # noqa: E402
from train_throughput import MAX_LENGTH, first_batches, machine, timed_steps

import textcls
from textcls.data.loading import load_data
from textcls.files import write_json
from textcls.machine import library_versions
from textcls.models.encoders import embedded_model_path
from textcls.training.device import resolve_precision
from textcls.training.loaders import TokenizedRows
from textcls.training.tokens import encode_ids, pad_id


def measure(compiled: bool, batches: list[dict], warmup: int, precision: str, seed: int) -> dict:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(embedded_model_path(), num_labels=4).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    forward = torch.compile(model, dynamic=True) if compiled else model
    first, rate = timed_steps(forward, optimizer, batches, warmup, precision)
    row = {
        "compiled": compiled,
        "first_steps_seconds": round(first, 1),
        "steps": len(batches) - warmup,
        "samples_per_second": round(rate, 1),
    }
    print(
        f"  {'compiled' if compiled else 'eager'}: first {warmup} steps {first:.1f} s, then "
        f"{row['samples_per_second']} samples/s over {row['steps']} steps",
        file=sys.stderr,
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ag_news", help="AG News folder (train.csv).")
    parser.add_argument("--steps", type=int, default=25, help="Timed steps per mode (after the first ones).")
    parser.add_argument("--warmup", type=int, default=3, help="First steps timed apart (compilation happens there).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/cpu_compile.json")
    args = parser.parse_args()
    if not (Path(args.data) / "train.csv").is_file():
        sys.exit(f"no AG News data at {args.data}; pass --data DIR with train.csv")
    if torch.cuda.is_available():
        sys.exit("this benchmark measures the CPU; on a GPU see benchmarks/gpu_settings.py (setting 'compile')")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    train = load_data(textcls.DataConfig(data=args.data, seed=args.seed), splits=("train",)).splits["train"]
    rows = (args.steps + args.warmup) * args.batch_size * 4  # drawn from 4x the rows, so lengths vary as in training
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    token_rows = TokenizedRows(
        encode_ids(tokenizer, train.texts[:rows], MAX_LENGTH, cache=False), train.labels[:rows], pad_id(tokenizer)
    )
    batches = first_batches(token_rows, args.batch_size, args.seed, args.steps + args.warmup)
    precision = resolve_precision("auto")
    report = {
        "benchmark": "cpu_compile",
        "date": datetime.date.today().isoformat(),
        "precision": precision,
        "widths": sorted({int(b["input_ids"].shape[1]) for b in batches}),
    }
    report["rows"] = [measure(compiled, batches, args.warmup, precision, args.seed) for compiled in (False, True)]
    eager, compiled = report["rows"]
    report["ratio"] = round(compiled["samples_per_second"] / eager["samples_per_second"], 2)
    report.update(config=vars(args), versions=library_versions(), hardware=machine())
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(args.output), report)
    print(
        f"{report['date']}, CPU, {report['hardware']['cpus']} cores, {precision}, batch {args.batch_size}, "
        f"widths {report['widths']}"
    )
    print(f"{'mode':<10}{'first steps s':>14}{'samples/s':>11}")
    for row in report["rows"]:
        print(
            f"{'compiled' if row['compiled'] else 'eager':<10}{row['first_steps_seconds']:>14.1f}{row['samples_per_second']:>11.1f}"
        )
    print(f"compiled / eager: {report['ratio']}x; written to {args.output}")


if __name__ == "__main__":
    main()
