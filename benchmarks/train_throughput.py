"""Training throughput: the lesson's recipe, the plain `Trainer` fit path and textcls's engine, side by
side in one run on the same rows and machine.

Side-by-side rows (always, on this machine's device: the CPU here, the GPU where there is one):
  (a) recipe:   tokenizer(padding="max_length") -> every text padded to 512 tokens, batch 8, `Trainer`
                defaults (fp32, random batches).
  (b) before:   the plain `Trainer` fit path, as textcls ran it without its engine (below: `datasets.map`
                tokenisation, `DataCollatorWithPadding`, `group_by_length`, batch 32).
  (c) engine:   `PretrainedClassifier.fit` with the defaults for this device (cached Rust tokenisation,
                batches padded to multiples of 8, the engine's data loaders under `Trainer`).
  Both (b) and (c) run on MiniLM (accuracy checked on the same dev rows) and on an overhead proxy: a
  2-layer, 64-wide BERT built from a config (random weights), 20,000 rows, 1 epoch, where the model is
  so small that the rest of the step shows; (d) adds the engine with `--batch-tokens` on the proxy.
  The proxy's bare step (forward, backward, fused AdamW on batches built beforehand, batch 32/64/160; on
  a CPU with the engine's `lean_cpu_training`) is timed alone too: the engine's step with nothing around
  it, so it bounds the ratio the engine can reach on this device.
  Tokenisation rates: `datasets.map`, the tokenizer called on the list, and the engine's Rust path.

With `--repeats N` each side-by-side row runs N times in turns and the fastest is kept (all are in the
JSON): on a shared machine a load that comes and goes then falls on every row alike. With
`--accuracy-seeds N` MiniLM's (b) and (c) also run on N more seeds, and the mean of their dev accuracy
differences is printed: one seed's difference is mostly the draw of dropout masks and batch order.

Columns: end-to-end samples/s = rows x epochs / the whole fit (model load, tokenisation, training,
per-epoch evaluation, checkpoints); Trainer's own `train_samples_per_second`; steady samples/s =
training steps only (the first 5 steps, each epoch's first step and evaluation left out).

CUDA rows (only where `torch.cuda.is_available()`; the same command): MiniLM on all 50,769 rows for 3
epochs with the GPU defaults (token budget, scaled lr, no compile), the plain `Trainer` path for comparison,
and a BERT-base-sized model built from a config (random weights).

    python benchmarks/train_throughput.py --data ../shared/data/ag_news
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import numpy as np
import torch

import textcls
from benchmarks import harness
from benchmarks.bare_step import BERT_BASE, PROXY, bert_from_config, first_batches, step_timing, token_rows
from textcls.config import TrainConfig
from textcls.data.loading import Split, load_data
from textcls.models.encoders import embedded_model_path
from textcls.models.pretrained import PretrainedClassifier
from textcls.training.cpu_speed import lean_cpu_training
from textcls.training.device import resolve_precision
from textcls.training.loaders import to_device
from textcls.training.throughput import ThroughputMeter
from textcls.training.tokens import encode_ids


# ---- (b) the plain Trainer path ------------------------------------------------------------
def before_fit(train: Split, dev: Split, label_names: list[str], config: TrainConfig, checkpoint_dir: Path) -> dict:
    """The fit without the engine, with a steady-state meter added: `datasets.map` tokenisation,
    `DataCollatorWithPadding`, Trainer's `group_by_length` sampler, batch 32, the engine's schedule,
    checkpoints and evaluation."""
    from datasets import Dataset
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    from textcls.models.pretrained import _load_tokenizer_and_model, clamp_max_length
    from textcls.reporting.metrics import headline_metrics
    from textcls.training.trainer import training_callbacks

    started = time.perf_counter()
    config = dataclasses.replace(config, batch_size=config.batch_size or 32, lr=config.lr or 1e-4)
    set_seed(config.seed)
    tokenizer, model = _load_tokenizer_and_model(str(config.model), label_names, False)
    max_length = clamp_max_length(config.max_length, tokenizer, model.config)
    precision = resolve_precision(config.precision)

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    def to_dataset(split: Split) -> Any:
        rows = Dataset.from_dict({"text": split.texts, "label": split.labels})
        return rows.map(tokenize, batched=True, remove_columns=["text"], desc=f"tokenising {split.name}")

    train_rows, dev_rows = to_dataset(train), to_dataset(dev)
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        lr_scheduler_type="linear",
        warmup_steps=config.warmup_ratio if config.warmup_ratio > 0 else 0,
        save_strategy="epoch",
        save_total_limit=2,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        per_device_eval_batch_size=config.eval_batch_size,
        eval_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
    )
    meter = ThroughputMeter()

    class Steady(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            meter.step_end(config.batch_size)

        def on_epoch_end(self, args, state, control, **kwargs):
            meter.pause()

    callbacks = [*training_callbacks(None), Steady()]
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_rows,
        eval_dataset=dev_rows,
        processing_class=tokenizer,
        compute_metrics=lambda p: headline_metrics(p.label_ids, np.argmax(p.predictions, axis=-1)),
        callbacks=callbacks,
    )
    result = trainer.train()  # stock modules and attention (`run_trainer` adds the CPU's fast dropout)
    return {
        "precision": precision,
        "fit_seconds": time.perf_counter() - started,
        "trainer_samples_per_second": result.metrics.get("train_samples_per_second"),
        "steady_samples_per_second": meter.samples_per_second,
        "dev_accuracy": trainer.state.best_metric,
        "global_step": trainer.state.global_step,
    }


# ---- (c) the engine ------------------------------------------------------------------------
def engine_fit(train: Split, dev: Split, label_names: list[str], config: TrainConfig, checkpoint_dir: Path) -> dict:
    started = time.perf_counter()
    _, summary = PretrainedClassifier.fit(train, dev, label_names, config, checkpoint_dir)
    return {
        "precision": summary["precision"],
        "fit_seconds": time.perf_counter() - started,
        "trainer_samples_per_second": summary["train_samples_per_second"],
        "steady_samples_per_second": summary["steady_samples_per_second"],
        "dev_accuracy": summary["best_checkpoint_metric"],
        "global_step": summary["global_step"],
    }


def measure(name: str, fit: Any, train: Split, dev: Split, label_names: list[str], config: TrainConfig) -> dict:
    """One fit in a fresh checkpoint folder and a fresh token cache (tokenisation counts, cold)."""
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["TEXTCLS_CACHE_DIR"] = str(Path(scratch) / "token-cache")
        row = fit(train, dev, label_names, config, Path(scratch) / "checkpoints")
    row.update(name=name, rows=len(train), epochs=config.epochs, dev_rows=len(dev))
    row["samples_per_second"] = round(len(train) * config.epochs / row["fit_seconds"], 2)
    print(
        f"  {name}: {row['samples_per_second']:.1f} samples/s end to end, steady {row['steady_samples_per_second']}, "
        f"dev accuracy {row['dev_accuracy']:.4f}",
        file=sys.stderr,
        flush=True,
    )
    return row


# ---- (a) the lesson's recipe ---------------------------------------------------------------
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
            output_dir=scratch,
            per_device_train_batch_size=8,
            max_steps=steps,
            report_to="none",
            save_strategy="no",
            seed=seed,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
        )
        result = Trainer(model=model, args=args, train_dataset=rows).train()
    return float(result.metrics["train_samples_per_second"])


# ---- tokenisation --------------------------------------------------------------------------
def tokenisation_rates(texts: list[str], max_length: int = 128) -> dict[str, float]:
    """Texts/s of three ways to tokenise the same texts with the embedded model's tokenizer."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    rates = {}

    def timed(name: str, work: Any) -> None:
        started = time.perf_counter()
        work()
        rates[name] = round(len(texts) / (time.perf_counter() - started), 1)

    rows = Dataset.from_dict({"text": texts})
    timed(
        "datasets.map",
        lambda: rows.map(
            lambda b: tokenizer(b["text"], truncation=True, max_length=max_length),
            batched=True,
            remove_columns=["text"],
            keep_in_memory=True,
        ),
    )
    timed("tokenizer(list)", lambda: tokenizer(texts, truncation=True, max_length=max_length))
    timed("engine (Rust encode_batch_fast)", lambda: encode_ids(tokenizer, texts, max_length, cache=False))
    return rates


# ---- the proxy's ceiling -------------------------------------------------------------------
def bare_step_rates(
    model_dir: Path, split: Split, batch_sizes: tuple[int, ...], steps: int | None, seed: int
) -> dict[str, float]:
    """Samples/s of the proxy's bare training step (forward, backward, fused AdamW; autocast as the engine
    resolves it, and on a CPU the engine's `lean_cpu_training`) on the engine's batches made beforehand,
    per batch size: no tokenisation, no data loading, no `Trainer`, no evaluation. What any engine can
    reach on this device with that model. `steps` None: the whole epoch, the very rows the engine's
    rows train on (a sample of batches has other lengths, and so another rate)."""
    from transformers import AutoModelForSequenceClassification

    rows = token_rows(model_dir, split.texts, split.labels)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rates = {}
    for batch_size in batch_sizes:
        batches = [
            to_device(batch, device)
            for batch in first_batches(rows, batch_size, seed, None if steps is None else steps + 5)
        ]
        if len(batches) <= 5:
            sys.exit(
                f"--proxy-rows {len(split)}: expected more than 5 batches of {batch_size} (5 warm up), found "
                f"{len(batches)}; pass --proxy-rows {6 * batch_size} or more"
            )
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        with lean_cpu_training(model):  # as the engine trains it on a CPU (elsewhere: nothing changes)
            timing = step_timing(model, optimizer, batches, 5, resolve_precision("auto"))  # 5 warm the kernels up
        rates[f"batch {batch_size}"] = round(timing.per_second, 1)
    return rates


# ---- main ----------------------------------------------------------------------------------
def alternate(
    runs: list[tuple[str, Any, TrainConfig]], train: Split, dev: Split, label_names: list[str], repeats: int
) -> list[dict]:
    """Each (name, fit, config) `repeats` times, in turns (a, b, a, b, ...), so a load that comes and goes on a
    shared machine falls on all of them; per name the fastest run end to end is kept, the others listed in it."""
    rows: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for name, fit, config in runs:
            rows.setdefault(name, []).append(measure(name, fit, train, dev, label_names, config))
    best = []
    for tries in rows.values():
        row = max(tries, key=lambda r: r["samples_per_second"])
        row["all_samples_per_second"] = [r["samples_per_second"] for r in tries]
        row["all_steady_samples_per_second"] = [r["steady_samples_per_second"] for r in tries]
        row["all_dev_accuracy"] = [r["dev_accuracy"] for r in tries]
        best.append(row)
    return best


def split_rows(split: Split, rows: int) -> Split:
    return Split(split.name, split.texts[:rows], split.labels[:rows], split.source)


def ratio(new: float | None, old: float | None) -> float | None:
    return round(new / old, 2) if new and old else None


def side_by_side_rows(args: argparse.Namespace, train: Split, dev: Split, label_names: list[str], models: Path) -> dict:
    report: dict[str, Any] = {}
    print("tokenisation rates ...", file=sys.stderr, flush=True)
    report["tokenisation_texts_per_second"] = tokenisation_rates(train.texts)
    print("recipe ...", file=sys.stderr, flush=True)
    report["recipe_samples_per_second"] = recipe_samples_per_second(
        train.texts, train.labels, args.recipe_steps, args.seed
    )

    minilm_train, minilm_dev = split_rows(train, args.rows), split_rows(dev, args.eval_rows)
    # metric="accuracy": the best epoch by dev accuracy, as the "before" path picks it (the default picks
    # macro-F1 on skewed rows, and these columns say accuracy); on balanced rows it is the default anyway
    minilm = TrainConfig(
        model=str(embedded_model_path()), epochs=1.0, seed=args.seed, early_stopping_patience=0, metric="accuracy"
    )
    proxy_dir = bert_from_config(models / "proxy", **PROXY)
    proxy_train, proxy_dev = split_rows(train, args.proxy_rows), split_rows(dev, args.eval_rows)
    proxy = TrainConfig(model=str(proxy_dir), epochs=1.0, seed=args.seed, early_stopping_patience=0, metric="accuracy")
    # (b) and (c) take turns, so a load that comes and goes on a shared machine falls on both
    report["minilm"] = alternate(
        [("before", before_fit, minilm), ("engine", engine_fit, minilm)],
        minilm_train,
        minilm_dev,
        label_names,
        args.repeats,
    )
    budget = dataclasses.replace(proxy, batch_tokens=args.proxy_batch_tokens)
    report["proxy"] = alternate(
        [
            ("before", before_fit, proxy),
            ("engine", engine_fit, proxy),
            (f"engine --batch-tokens {args.proxy_batch_tokens}", engine_fit, budget),
        ],
        proxy_train,
        proxy_dev,
        label_names,
        args.repeats,
    )
    print("the proxy's bare step ...", file=sys.stderr, flush=True)
    report["proxy_bare_step_samples_per_second"] = bare_step_rates(
        proxy_dir, proxy_train, (32, 64, 160), args.bare_steps, args.seed
    )
    if args.accuracy_seeds:
        report["minilm_dev_accuracy_over_seeds"] = accuracy_over_seeds(
            report["minilm"], minilm, minilm_train, minilm_dev, label_names, args.accuracy_seeds
        )
    if args.accuracy_rows:
        accuracy_train = split_rows(train, args.accuracy_rows)
        report["accuracy"] = [
            measure(
                precision,
                engine_fit,
                accuracy_train,
                dev,
                label_names,
                dataclasses.replace(minilm, precision=precision),
            )
            for precision in ("fp32", "bf16")
        ]
    return report


def accuracy_over_seeds(
    rows: list[dict], config: TrainConfig, train: Split, dev: Split, label_names: list[str], extra_seeds: int
) -> dict:
    """Dev accuracy of MiniLM's (b) and (c) at `config.seed` (from `rows`) and `extra_seeds` more seeds. One
    seed's difference is mostly the draw of dropout masks and batch order (on 2,000 dev rows a run moves by
    about half a point); the mean of the per-seed differences is the engine's own."""
    accuracy = {name: [next(r["dev_accuracy"] for r in rows if r["name"] == name)] for name in ("before", "engine")}
    for seed in range(config.seed + 1, config.seed + 1 + extra_seeds):
        for name, fit in (("before", before_fit), ("engine", engine_fit)):
            row = measure(f"{name}, seed {seed}", fit, train, dev, label_names, dataclasses.replace(config, seed=seed))
            accuracy[name].append(row["dev_accuracy"])
    differences = [100 * (engine - before) for before, engine in zip(accuracy["before"], accuracy["engine"])]
    return {
        "seeds": list(range(config.seed, config.seed + 1 + extra_seeds)),
        **accuracy,
        "mean": {name: round(statistics.mean(values), 4) for name, values in accuracy.items()},
        "difference_points_mean": round(statistics.mean(differences), 2),
        "difference_points_sd": round(statistics.stdev(differences), 2) if len(differences) > 1 else None,
    }


def cuda_rows(args: argparse.Namespace, train: Split, dev: Split, label_names: list[str], models: Path) -> dict:
    """MiniLM's full fine-tune with the GPU defaults, the plain `Trainer` path beside it, and BERT-base."""
    minilm = TrainConfig(model=str(embedded_model_path()), epochs=3.0, seed=args.seed, metric="accuracy")
    bert_base = bert_from_config(models / "bert-base", **BERT_BASE)
    cut_train = split_rows(train, args.cuda_compare_rows)
    return {
        "minilm_full": [measure("engine, 3 epochs, all rows", engine_fit, train, dev, label_names, minilm)],
        "minilm_compare": [
            measure("before", before_fit, cut_train, dev, label_names, dataclasses.replace(minilm, epochs=1.0)),
            measure("engine", engine_fit, cut_train, dev, label_names, dataclasses.replace(minilm, epochs=1.0)),
        ],
        "bert_base": [
            measure(
                "engine, BERT-base from a config",
                engine_fit,
                cut_train,
                dev,
                label_names,
                TrainConfig(model=str(bert_base), epochs=1.0, seed=args.seed, lr=5e-5, metric="accuracy"),
            )
        ],
    }


def print_table(report: dict) -> None:
    print(harness.describe(report))
    header = f"{'rows':<40}{'samples/s':>11}{'Trainer':>10}{'steady':>10}{'dev acc':>9}{'ratio':>8}{'steady':>8}"
    print(header + "\n" + f"{'':<40}{'end-to-end':>11}{'s/s':>10}{'s/s':>10}{'':>9}{'e2e':>8}{'ratio':>8}")
    groups = [
        (key, report[section][key])
        for section in ("side_by_side", "cuda")
        if section in report
        for key in report[section]
        if isinstance(report[section][key], list)
    ]
    for key, rows in groups:
        base = rows[0] if rows[0]["name"] == "before" else None
        for row in rows:
            label = f"{key}: {row['name']} ({row['rows']} rows x {row['epochs']:g}, {row['precision']})"
            e2e = ratio(row["samples_per_second"], base["samples_per_second"]) if base else None
            steady = ratio(row["steady_samples_per_second"], base["steady_samples_per_second"]) if base else None
            cells = [row["samples_per_second"], row["trainer_samples_per_second"], row["steady_samples_per_second"]]
            shown = "".join(f"{value:>8.2f}" if value is not None else f"{'-':>8}" for value in (e2e, steady))
            print(
                f"{label[:39]:<40}"
                + "".join(f"{c:>10.1f} " if c else f"{'-':>10} " for c in cells)
                + f"{row['dev_accuracy']:>8.4f}"
                + (shown if base and row is not base else "")
            )
        if base:
            for row in rows[1:]:
                points = 100 * (row["dev_accuracy"] - base["dev_accuracy"])
                print(f"  {row['name']}: dev accuracy {points:+.2f} points vs before")
    cpu = report.get("side_by_side", {})
    seeds = cpu.get("minilm_dev_accuracy_over_seeds")
    if seeds:
        print(
            f"minilm dev accuracy over seeds {seeds['seeds'][0]}-{seeds['seeds'][-1]}: "
            f"before {seeds['mean']['before']:.4f}, "
            f"engine {seeds['mean']['engine']:.4f}; engine - before {seeds['difference_points_mean']:+.2f} points "
            f"(sd of the per-seed differences {seeds['difference_points_sd']})"
        )
    if cpu:
        print(f"recipe (pad to 512, batch 8, fp32): {cpu['recipe_samples_per_second']:.2f} samples/s")
        before = next(row for row in cpu["proxy"] if row["name"] == "before")
        print(
            "proxy's bare step (model + fused AdamW only; the engine's step alone, its ceiling), samples/s: "
            + ", ".join(
                f"{k} {v:,.0f} ({ratio(v, before['samples_per_second'])}x before)"
                for k, v in cpu["proxy_bare_step_samples_per_second"].items()
            )
        )
        print(
            "tokenisation, texts/s: "
            + ", ".join(f"{k} {v:,.0f}" for k, v in cpu["tokenisation_texts_per_second"].items())
        )
    if "cuda" in report:
        full = report["cuda"]["minilm_full"][0]
        print(
            f"GPU MiniLM full fine-tune: {full['fit_seconds']:.1f} s incl. tokenisation and eval, "
            f"dev accuracy {full['dev_accuracy']:.4f}"
        )


def main() -> None:
    parser = harness.parser(
        __doc__,
        "train_throughput",
        rows=3000,
        seed=harness.SEED,
        repeats=1,
        help={
            "rows": "Training rows of the side-by-side MiniLM comparison.",
            "repeats": "Runs of each side-by-side row, in turns; the fastest is kept.",
        },
    )
    parser.add_argument("--recipe-steps", type=int, default=12, help="Training steps of the recipe (batch 8).")
    parser.add_argument(
        "--eval-rows", type=int, default=2000, help="Dev rows evaluated by the side-by-side comparisons."
    )
    parser.add_argument("--proxy-rows", type=int, default=20_000, help="Training rows of the overhead proxy.")
    parser.add_argument("--proxy-batch-tokens", type=int, default=8192, help="Token budget of row (d).")
    parser.add_argument(
        "--bare-steps",
        type=int,
        default=None,
        help="Timed steps of the proxy's bare step per batch size (default: the whole epoch of its rows).",
    )
    parser.add_argument(
        "--cuda-compare-rows", type=int, default=20_000, help="Rows of the GPU before/engine and BERT-base rows."
    )
    parser.add_argument(
        "--accuracy-seeds",
        type=int,
        default=0,
        help="Also run MiniLM's (b) and (c) on N more seeds and compare their mean dev accuracy.",
    )
    parser.add_argument(
        "--accuracy-rows", type=int, default=0, help="Also compare fp32 vs bf16 accuracy on N rows (engine)."
    )
    parser.add_argument("--skip-cpu", action="store_true", help="Only the CUDA rows (skip the side-by-side rows).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    dataset = load_data(textcls.DataConfig(data=args.data, seed=args.seed), splits=("train", "dev"))
    train, dev, label_names = dataset.splits["train"], dataset.splits["dev"], dataset.label_names
    started = time.time()
    head = harness.header("train_throughput", args)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as models:
        if not args.skip_cpu:
            result["side_by_side"] = side_by_side_rows(args, train, dev, label_names, Path(models))
        if torch.cuda.is_available():
            result["cuda"] = cuda_rows(args, train, dev, label_names, Path(models))
    result["wall_seconds"] = round(time.time() - started, 1)
    harness.write_result(args.output, head, result)
    report = {**head, **result}
    print_table(report)
    print(f"written to {args.output} ({report['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
