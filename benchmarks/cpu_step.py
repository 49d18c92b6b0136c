"""What `cpu_speed.lean_cpu_training` buys a training step on this CPU, piece by piece, in one run.

The bare training step (forward, backward, fused AdamW, autocast as `--precision auto` resolves it) of
the embedded MiniLM and of the overhead proxy (a 2-layer, 64-wide BERT from a config) on the same AG News
batches (32 texts grouped by length, padded to multiples of 8, as the engine plans them), three ways:

    stock        transformers' model as loaded (SDPA attention, nn.Dropout): the engine before
    eager        eager attention, nn.Dropout: what the switch of attention kernel alone gives
    lean         `cpu_speed.lean_cpu_training`, what `textcls train` runs on a CPU: FastDropout modules,
                 eager attention with fast dropout

Each way runs `--repeats` times in turns (stock, eager, lean, stock, ...) so a load that comes and goes
falls on all of them; the median is kept. A fresh model per run, seeded alike.

    python benchmarks/cpu_step.py --data ../shared/data/ag_news
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from train_throughput import MAX_LENGTH, PROXY, bert_from_config, first_batches, machine, timed_steps

import textcls
from textcls.data.loading import load_data
from textcls.files import write_json
from textcls.machine import library_versions
from textcls.models.encoders import embedded_model_path
from textcls.training.cpu_speed import lean_cpu_training
from textcls.training.device import resolve_precision
from textcls.training.loaders import TokenizedRows
from textcls.training.tokens import encode_ids, pad_id

WAYS = {"stock": "sdpa", "eager": "eager", "lean": "sdpa"}  # the attention kernel each loads with


def step_rate(model_dir: Path, way: str, batches: list[dict], precision: str, seed: int) -> float:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=4, attn_implementation=WAYS[way]
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    with lean_cpu_training(model) if way == "lean" else contextlib.nullcontext():
        _, rate = timed_steps(model, optimizer, batches, 3, precision)  # 3 steps warm the kernels and allocator up
    return rate


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ag_news", help="AG News folder (train.csv).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--minilm-steps", type=int, default=60, help="Timed MiniLM steps per run.")
    parser.add_argument("--proxy-steps", type=int, default=300, help="Timed proxy steps per run.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each way, in turns; the median is kept.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default="benchmarks/results/cpu_step.json")
    args = parser.parse_args()
    if not (Path(args.data) / "train.csv").is_file():
        sys.exit(f"no AG News data at {args.data}; pass --data DIR with train.csv")
    if torch.cuda.is_available():
        sys.exit("this benchmark measures the CPU (lean_cpu_training changes nothing on a GPU)")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    started = time.time()
    train = load_data(textcls.DataConfig(data=args.data, seed=args.seed), splits=("train",)).splits["train"]
    precision = resolve_precision("auto")
    report = {"benchmark": "cpu_step", "date": datetime.date.today().isoformat(), "precision": precision, "rows": []}
    with tempfile.TemporaryDirectory() as folder:
        models = [
            ("MiniLM", embedded_model_path(), args.minilm_steps),
            ("proxy", bert_from_config(Path(folder) / "proxy", **PROXY), args.proxy_steps),
        ]
        for name, model_dir, steps in models:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            texts = train.texts[: (steps + 3) * args.batch_size * 4]  # 4x the rows, so lengths vary as in an epoch
            rows = TokenizedRows(
                encode_ids(tokenizer, texts, MAX_LENGTH, cache=False), train.labels[: len(texts)], pad_id(tokenizer)
            )
            batches = first_batches(rows, args.batch_size, args.seed, steps + 3)
            report["rows"].append(measure(name, model_dir, batches, precision, args.repeats, args.seed))
    report.update(
        config=vars(args), versions=library_versions(), wall_seconds=round(time.time() - started, 1), hardware=machine()
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(args.output), report)
    print(
        f"{report['date']}, {report['hardware']['processor']}, {report['hardware']['cpus']} cores, {precision}, "
        f"batch {args.batch_size}, median of {args.repeats} runs in turns"
    )
    print(f"{'model':<8}" + "".join(f"{way:>16}" for way in WAYS))
    for row in report["rows"]:
        cells = [f"{row['samples_per_second'][way]:,.1f} ({row['ratio_to_stock'][way]:.2f}x)" for way in WAYS]
        print(f"{row['model']:<8}" + "".join(f"{cell:>16}" for cell in cells))
    print(f"samples/s (ratio to stock); written to {args.output} ({report['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
