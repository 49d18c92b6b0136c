"""Training throughput: the lesson's recipe against textcls's defaults, same model, rows and machine.

(a) recipe:  tokenizer(padding="max_length", truncation=True) -> every text padded to 512 tokens,
             batch 8, `Trainer` defaults (fp32, random batches).
(b) textcls: `textcls.train` with its defaults (dynamic padding, length-grouped batches of 32,
             bf16 autocast where the CPU has bf16 units, max_length 128).

Both figures are Trainer's own `train_samples_per_second` over a whole (short) training run,
so start-up and the per-epoch dev evaluation count against textcls, not in its favour.
With `--accuracy-rows N` it also trains textcls on N rows in fp32 and in bf16 and reports dev
accuracy for each, to show that the fast path does not cost accuracy.

    python benchmarks/train_throughput.py --data ../shared/data/ag_news
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import textcls
from textcls.data import load_data
from textcls.environment import embedded_model_path
from textcls.files import write_json
from textcls.runfolder import library_versions


def recipe_samples_per_second(texts: list[str], labels: list[int], steps: int, seed: int) -> float:
    """The lesson's hands-on recipe, verbatim in spirit: pad to max_length, batch 8, Trainer defaults."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    model_dir = embedded_model_path()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=4)
    rows = Dataset.from_dict({"text": texts[: steps * 8], "label": labels[: steps * 8]})
    rows = rows.map(lambda b: tokenizer(b["text"], padding="max_length", truncation=True), batched=True)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch, per_device_train_batch_size=8, max_steps=steps, report_to="none",
            save_strategy="no", seed=seed, use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
        )
        result = Trainer(model=model, args=args, train_dataset=rows).train()
    return float(result.metrics["train_samples_per_second"])


def textcls_run(data: str, rows: int, eval_rows: int, precision: str, epochs: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        result = textcls.train(
            data=data, out=Path(scratch) / "run", max_train_samples=rows, max_eval_samples=eval_rows,
            epochs=epochs, precision=precision, seed=seed,
        )
    train = result.metrics["train"]
    return {
        "precision": train["precision"],
        "rows": rows,
        "epochs": epochs,
        "samples_per_second": train["train_samples_per_second"],
        "train_seconds": train["train_seconds"],
        "dev_accuracy": result.metrics["dev"]["accuracy"],
        "dev_macro_f1": result.metrics["dev"]["macro_f1"],
        "dev_rows": result.metrics["dev"]["num_samples"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ag_news", help="AG News folder (train.csv, dev.csv).")
    parser.add_argument("--recipe-steps", type=int, default=12, help="Training steps of the recipe (batch 8).")
    parser.add_argument("--rows", type=int, default=3000, help="Training rows for the textcls throughput run.")
    parser.add_argument("--eval-rows", type=int, default=500, help="Dev rows evaluated by the textcls runs.")
    parser.add_argument("--accuracy-rows", type=int, default=0, help="Also compare fp32 vs bf16 accuracy on N rows.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    if not (Path(args.data) / "train.csv").is_file():
        sys.exit(f"no AG News data at {args.data}; pass --data DIR with train.csv and dev.csv")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    train_rows = load_data(textcls.DataConfig(data=args.data, seed=args.seed), splits=("train",)).splits["train"]
    started = time.time()
    recipe = recipe_samples_per_second(train_rows.texts, train_rows.labels, args.recipe_steps, args.seed)
    fast = textcls_run(args.data, args.rows, args.eval_rows, "auto", 1.0, args.seed)
    report = {
        "benchmark": "train_throughput",
        "recipe_samples_per_second": recipe,
        "textcls": fast,
        "speedup": fast["samples_per_second"] / recipe,
        "config": vars(args),
        "versions": library_versions(),
        "hardware": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
    }
    if args.accuracy_rows:
        report["accuracy"] = [
            textcls_run(args.data, args.accuracy_rows, 2000, precision, 1.0, args.seed) for precision in ("fp32", "bf16")
        ]
    report["wall_seconds"] = round(time.time() - started, 1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(args.output), report)

    print(f"{'configuration':<58}{'samples/s':>12}")
    print(f"{'(a) recipe: pad to 512, batch 8, fp32':<58}{recipe:>12.2f}")
    label = f"(b) textcls defaults: dynamic padding, groups, {fast['precision']}"
    print(f"{label:<58}{fast['samples_per_second']:>12.2f}")
    print(f"speed-up (b)/(a): {report['speedup']:.1f}x")
    for row in report.get("accuracy", []):
        print(f"accuracy check, {row['rows']} rows, 1 epoch, {row['precision']}: dev accuracy {row['dev_accuracy']:.4f}, "
              f"macro-F1 {row['dev_macro_f1']:.4f}, {row['samples_per_second']:.1f} samples/s")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
