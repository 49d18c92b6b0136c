"""Does masked-word pre-training on the task's own text help when labels are few? (Sun et al. 2019)

1. `textcls pretrain` the embedded MiniLM on the texts of all train.csv rows (labels unused), within
   --pretrain-minutes; its held-out masked loss and pseudo-perplexity before and after are recorded.
2. Fine-tune, for each labelled-set size (--labels, default 500 and 2000) and seed (--seeds 3),
   both the embedded MiniLM and the pre-trained encoder on the same seeded sample of labelled rows;
   dev accuracy on all of dev.csv.
3. Print mean ± sd per cell and the gain, and write JSON (under the result header: config, versions,
   machine) to --output.

    python benchmarks/pretrain_gain.py --data ../shared/data/ag_news

Steps already done are reused from --work (delete it to start over), so an interrupted run continues;
a run there made with other settings than the command asks for stops it with a message.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import textcls
from benchmarks import harness
from benchmarks.harness import check_reused
from textcls.config import PretrainConfig
from textcls.runfolder import is_run, read_record

log = logging.getLogger("benchmark")


def fine_tune(data: str, model: str | None, rows: int, seed: int, out: Path, args: argparse.Namespace) -> float:
    """Dev accuracy of one fine-tune on `rows` labelled rows (reused when `out` is already a run made the same way)."""
    if not is_run(out):
        textcls.train(
            data=data,
            out=out,
            model=model,
            max_train_samples=rows,
            seed=seed,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            early_stopping_patience=0,
            overwrite=True,
        )
    record = read_record(out)
    made = record.info["train_config"]
    check_reused(
        out,
        {
            "encoder": made["model"] and str(Path(made["model"]).resolve()),
            "epochs": made["epochs"],
            "batch_size": made["batch_size"],
            "lr": made["lr"],
            "seed": made["seed"],
            "rows": record.info["data_config"]["max_train_samples"],
        },
        {
            "encoder": model and str(Path(model).resolve()),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": seed,
            "rows": rows,
        },
    )
    return record.metrics["dev"]["accuracy"]


def main() -> None:
    parser = harness.parser(__doc__, "pretrain_gain", work=True)
    parser.add_argument("--labels", default="500,2000", help="Labelled-set sizes, comma-separated.")
    parser.add_argument("--seeds", type=int, default=3, help="Fine-tunes per cell, seeded 0, 1, ...")
    parser.add_argument("--pretrain-minutes", type=float, default=30.0, help="Time budget of the pre-training.")
    parser.add_argument(
        "--pretrain-epochs",
        type=float,
        default=1.6,
        help="Passes planned over the text (the time budget may stop it first).",
    )
    parser.add_argument(
        "--pretrain-lr",
        type=float,
        default=PretrainConfig.lr,
        help="Pre-training peak lr (default: textcls pretrain's).",
    )
    parser.add_argument(
        "--mlm-probability",
        type=float,
        default=0.3,
        help="Share of tokens masked in the pre-training (pretrain's own default: 0.15).",
    )
    parser.add_argument(
        "--whole-word-masking",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Mask every piece of a word together (the measured best here; pretrain's own default: off).",
    )
    parser.add_argument(
        "--fresh-head",
        default="data",
        choices=("data", "random"),
        help="How the embedded MiniLM's missing MLM head starts (textcls pretrain --fresh-head).",
    )
    parser.add_argument("--epochs", type=float, default=3.0, help="Fine-tuning epochs on the small labelled sets.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    data, work = args.data, Path(args.work)
    head = harness.header("pretrain_gain", args)

    encoder = work / "mlm"
    started = time.perf_counter()
    if not is_run(encoder):
        textcls.pretrain(
            str(Path(data) / "train.csv"),
            str(encoder),
            overwrite=True,
            epochs=args.pretrain_epochs,
            lr=args.pretrain_lr,
            time_budget=args.pretrain_minutes,
            whole_word_masking=args.whole_word_masking,
            fresh_head=args.fresh_head,
            mlm_probability=args.mlm_probability,
        )
    record = read_record(encoder)
    asked = {
        "epochs": args.pretrain_epochs,
        "lr": args.pretrain_lr,
        "time_budget": args.pretrain_minutes,
        "mlm_probability": args.mlm_probability,
        "whole_word_masking": args.whole_word_masking,
        "fresh_head": args.fresh_head,
    }
    check_reused(encoder, {key: record.info["pretrain_config"][key] for key in asked}, asked)
    pretraining = record.metrics
    log.info("pre-training: %s", pretraining["held_out"])

    sizes = [int(n) for n in args.labels.split(",")]
    cells = []
    for rows in sizes:
        for name, model in (("embedded MiniLM", None), ("after textcls pretrain", str(encoder))):
            accuracies = [
                fine_tune(data, model, rows, seed, work / f"{'mlm' if model else 'base'}-{rows}-{seed}", args)
                for seed in range(args.seeds)
            ]
            cells.append(
                {
                    "labels": rows,
                    "encoder": name,
                    "dev_accuracy": accuracies,
                    "mean": statistics.mean(accuracies),
                    "sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                }
            )
    wall = time.perf_counter() - started

    print(f"\nlow-label fine-tuning on AG News dev ({args.seeds} seeds); {harness.describe(head)}")
    print(f"{'labelled rows':>13} {'encoder':<24} {'dev accuracy':>16}")
    for cell in cells:
        print(f"{cell['labels']:>13} {cell['encoder']:<24} {cell['mean']:.4f} ± {cell['sd']:.4f}")
    for rows in sizes:
        base, tuned = (c["mean"] for c in cells if c["labels"] == rows)
        print(f"gain at {rows} labels: {100 * (tuned - base):+.2f} points")
    before, after = pretraining["held_out"]["before"], pretraining["held_out"]["after"]
    print(
        f"pre-training: {pretraining['train']['train_seconds']:.0f} s; held-out pseudo-perplexity "
        f"{before.get('pseudo_perplexity', float('nan')):.1f} -> {after.get('pseudo_perplexity', float('nan')):.1f}, "
        f"masked accuracy {before['masked_accuracy']:.3f} -> {after['masked_accuracy']:.3f}"
    )
    harness.write_result(
        args.output, head, {"cells": cells, "pretraining": pretraining, "wall_seconds": round(wall, 1)}
    )
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
