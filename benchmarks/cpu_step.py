"""What `cpu_speed.lean_cpu_training` buys a training step on this CPU, piece by piece, in one run.

The bare training step (forward, backward, fused AdamW, autocast as `--precision auto` resolves it) of
the embedded MiniLM and of the overhead proxy (a 2-layer, 64-wide BERT from a config) on the same AG News
batches (32 texts grouped by length, padded to multiples of 8, as the engine plans them), three ways:

    stock        transformers' model as loaded (SDPA attention, nn.Dropout)
    eager        eager attention, nn.Dropout: what the switch of attention kernel alone gives
    lean         `cpu_speed.lean_cpu_training`, what `textcls train` runs on a CPU: FastDropout modules,
                 eager attention with fast dropout

Each way runs `--repeats` times in turns (stock, eager, lean, stock, ...) so a load that comes and goes
falls on all of them; the median is kept. A fresh model per run, seeded alike.

    python benchmarks/cpu_step.py --data ../shared/data/ag_news
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import torch

import textcls
from benchmarks import harness
from benchmarks.bare_step import PROXY, bert_from_config, engine_batches, step_timing
from textcls.data.loading import load_data
from textcls.models.encoders import embedded_model_path
from textcls.training.cpu_speed import lean_cpu_training
from textcls.training.device import resolve_precision

WAYS = {"stock": "sdpa", "eager": "eager", "lean": "sdpa"}  # the attention kernel each loads with
WARMUP = 3  # steps that warm the kernels and allocator up


def step_rate(model_dir: Path, way: str, batches: list[dict], precision: str, seed: int) -> float:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=4, attn_implementation=WAYS[way]
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    with lean_cpu_training(model) if way == "lean" else contextlib.nullcontext():
        return step_timing(model, optimizer, batches, WARMUP, precision).per_second


def measure(name: str, model_dir: Path, batches: list[dict], precision: str, repeats: int, seed: int) -> dict:
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(repeats):
        for way in WAYS:
            rates[way].append(round(step_rate(model_dir, way, batches, precision, seed), 1))
            print(f"  {name} {way}: {rates[way][-1]} samples/s", file=sys.stderr, flush=True)
    median = {way: statistics.median(r) for way, r in rates.items()}
    return {
        "model": name,
        "samples_per_second": median,
        "ratio_to_stock": {way: round(rate / median["stock"], 2) for way, rate in median.items()},
        "all_samples_per_second": rates,
    }


def main() -> None:
    parser = harness.parser(
        __doc__,
        "cpu_step",
        data=("train.csv",),
        seed=harness.SEED,
        repeats=3,
        help={"repeats": "Runs of each way, in turns; the median is kept."},
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--minilm-steps", type=int, default=60, help="Timed MiniLM steps per run.")
    parser.add_argument("--proxy-steps", type=int, default=300, help="Timed proxy steps per run.")
    args = parser.parse_args()
    if torch.cuda.is_available():
        sys.exit("this benchmark measures the CPU (lean_cpu_training changes nothing on a GPU)")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    started = time.time()
    train = load_data(textcls.DataConfig(data=args.data, seed=args.seed), splits=("train",)).splits["train"]
    precision = resolve_precision("auto")
    head = harness.header("cpu_step", args)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        models = [
            ("MiniLM", embedded_model_path(), args.minilm_steps),
            ("proxy", bert_from_config(Path(folder) / "proxy", **PROXY), args.proxy_steps),
        ]
        for name, model_dir, steps in models:
            batches = engine_batches(model_dir, train.texts, train.labels, args.batch_size, args.seed, steps + WARMUP)
            rows.append(measure(name, model_dir, batches, precision, args.repeats, args.seed))
    wall = round(time.time() - started, 1)
    harness.write_result(args.output, head, {"precision": precision, "rows": rows, "wall_seconds": wall})
    print(f"{harness.describe(head)}; {precision}, batch {args.batch_size}, median of {args.repeats} runs in turns")
    print(f"{'model':<8}" + "".join(f"{way:>16}" for way in WAYS))
    for row in rows:
        cells = [f"{row['samples_per_second'][way]:,.1f} ({row['ratio_to_stock'][way]:.2f}x)" for way in WAYS]
        print(f"{row['model']:<8}" + "".join(f"{cell:>16}" for cell in cells))
    print(f"samples/s (ratio to stock); written to {args.output} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
