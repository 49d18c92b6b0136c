"""GPU training settings side by side: the full AG News fine-tune (all train rows, 3 epochs) under
several engine settings, the Rust tokenisation rate on all cores, and torch inference rates.

It answers what `benchmarks/train_throughput.py` does not: whether `torch.compile` and larger token
budgets pay end to end (model load, tokenisation, compilation, training, evaluation) on the job the
README's first command runs. Each setting is one `PretrainedClassifier.fit`, in the order given; on
a fresh machine the first compiled setting pays a cold compile cache, as a new user's first run does
(the cache on disk then serves later runs).

    python benchmarks/gpu_settings.py --data ../shared/data/ag_news                # every part
    python benchmarks/gpu_settings.py --data DIR --parts full --settings nocompile compile
    python benchmarks/gpu_settings.py --data DIR --parts full --settings bt16384-lr1.5e-4 bt8192-lr2e-4 bt16384-lr2e-4-ep4 --seeds 42 43

Writes one JSON line per result to --output (appending) and prints them; on a CPU it runs too, slowly.
The inference part needs a run folder (`--run`, e.g. from `textcls train ... --max-train-samples 2000`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

import textcls
from textcls.config import TrainConfig
from textcls.data.loading import load_data
from textcls.machine import hardware, library_versions
from textcls.models.encoders import embedded_model_path
from textcls.models.pretrained import PretrainedClassifier
from textcls.training.tokens import encode_ids

# the settings compared: the device defaults with or without compile, and other token budgets with an lr
# scaled by about the square root of the batch ratio
SETTINGS = {
    "nocompile": {"compile": False},
    "compile": {"compile": True},
    "nocompile-16k": {"compile": False, "batch_tokens": 16384, "lr": 3e-4},
    "nocompile-4k": {"compile": False, "batch_tokens": 4096, "lr": 1.5e-4},
}


def setting(name: str) -> dict:
    """A named setting, or `bt<tokens>-lr<lr>[-ep<epochs>]` (no compile): e.g. bt16384-lr1.5e-4, bt16384-lr2e-4-ep4."""
    if name in SETTINGS:
        return SETTINGS[name]
    match = re.fullmatch(r"bt(\d+)-lr([0-9.]+e-?\d+|[0-9.]+)(?:-ep([0-9.]+))?", name)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(SETTINGS)} or bt<tokens>-lr<lr>[-ep<epochs>], found {name!r}"
        )
    chosen = {"compile": False, "batch_tokens": int(match.group(1)), "lr": float(match.group(2))}
    if match.group(3):
        chosen["epochs"] = float(match.group(3))
    return chosen


def setting_name(name: str) -> str:
    """`name`, once `setting` reads it (argparse's check of --settings)."""
    setting(name)
    return name


def emit(output: Path, **row: object) -> None:
    with output.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ag_news", help="AG News folder (train.csv, dev.csv).")
    parser.add_argument("--parts", nargs="+", default=["tok", "full", "infer"], choices=["tok", "full", "infer"])
    parser.add_argument(
        "--settings",
        nargs="+",
        type=setting_name,
        default=list(SETTINGS),
        help=f"Settings to run, in order: {', '.join(SETTINGS)}, or bt<tokens>-lr<lr>[-ep<epochs>] (no compile).",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="Seeds each setting runs with.")
    parser.add_argument("--run", default="runs/agnews", help="Run folder the inference part loads.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/gpu_settings.jsonl"))
    args = parser.parse_args()
    if not (Path(args.data) / "train.csv").is_file():
        sys.exit(f"no AG News data at {args.data}; pass --data DIR with train.csv and dev.csv")
    data = load_data(textcls.DataConfig(data=args.data, seed=42), splits=("train", "dev"))
    train, dev, names = data.splits["train"], data.splits["dev"], data.label_names
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    # one line first that says where the rows after it come from (STYLE 11: config, versions, hardware)
    emit(
        args.output,
        what="session",
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
        device=device,
        config={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        versions=library_versions(),
        hardware={**hardware(), "torch_threads": torch.get_num_threads()},
    )

    if "tok" in args.parts:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
        for _ in range(2):
            started = time.perf_counter()
            encode_ids(tokenizer, train.texts, 128, cache=False)
            seconds = time.perf_counter() - started
            emit(
                args.output,
                what="tokenise-engine",
                device=device,
                texts=len(train),
                texts_per_s=round(len(train) / seconds),
            )

    if "full" in args.parts:
        base = TrainConfig(
            model=str(embedded_model_path()), seed=42, metric="accuracy"
        )  # "acc": the best epoch by accuracy
        for name, seed in [(name, seed) for seed in args.seeds for name in args.settings]:
            with tempfile.TemporaryDirectory() as scratch:
                started = time.perf_counter()
                _, summary = PretrainedClassifier.fit(
                    train, dev, names, dataclasses.replace(base, seed=seed, **setting(name)), Path(scratch)
                )
                emit(
                    args.output,
                    what="full",
                    device=device,
                    name=name,
                    seed=seed,
                    fit_s=round(time.perf_counter() - started, 1),
                    steady=summary["steady_samples_per_second"],
                    trainer_sps=summary["train_samples_per_second"],
                    acc=summary["best_checkpoint_metric"],
                    steps=summary["global_step"],
                    epochs=[(row["epoch"], row["dev_accuracy"]) for row in summary["epochs"]],
                )

    if "infer" in args.parts:
        # the product path (`textcls predict --backend torch`): on a GPU, batches of GPU_PREDICT_TOKENS tokens
        texts = train.texts  # speed only; accuracy on dev
        labels = {}
        for precision in ("bf16", "fp32"):
            run = textcls.load(args.run, textcls.PredictConfig(backend="torch", precision=precision))
            run.predict_proba(texts[:2000])  # warm-up
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            run.predict_proba(texts)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            labels[precision] = run.predict_proba(dev.texts).argmax(axis=1)
            emit(
                args.output,
                what="infer",
                device=device,
                precision=precision,
                texts=len(texts),
                texts_per_s=round(len(texts) / seconds),
                dev_acc=round(float((labels[precision] == dev.labels).mean()), 4),
            )
        emit(
            args.output,
            what="infer-agreement",
            device=device,
            bf16_vs_fp32=round(float((labels["bf16"] == labels["fp32"]).mean()), 4),
        )


if __name__ == "__main__":
    main()
