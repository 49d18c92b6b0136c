"""GPU training settings side by side: the full AG News fine-tune (all train rows, 3 epochs) under
several engine settings, the Rust tokenisation rate on all cores, and torch inference rates.

It answers what `benchmarks/train_throughput.py` does not: whether `torch.compile` and larger token
budgets pay end to end (model load, tokenisation, compilation, training, evaluation) on the job the
README's first command runs. Each setting is one `PretrainedClassifier.fit`, in the order given; on
a fresh machine the first compiled setting pays a cold compile cache, as a new user's first run does
(the cache on disk then serves later runs).

    python benchmarks/gpu_settings.py --data ../shared/data/ag_news                # every part
    python benchmarks/gpu_settings.py --data DIR --parts full --settings nocompile compile
    python benchmarks/gpu_settings.py --data DIR --parts full --seeds 42 43 \
        --settings bt16384-lr1.5e-4 bt8192-lr2e-4 bt16384-lr2e-4-ep4

Writes one JSON line per result to --output (appending), the first one the result header (config,
versions, machine), and prints them; on a CPU it runs too, slowly.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import torch

import textcls
from benchmarks import harness
from textcls.config import TrainConfig
from textcls.data.loading import load_data
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
    parser = harness.parser(__doc__, "gpu_settings", run=True, output=".jsonl")
    parser.add_argument("--parts", nargs="+", default=["tok", "full", "infer"], choices=["tok", "full", "infer"])
    parser.add_argument(
        "--settings",
        nargs="+",
        type=setting_name,
        default=list(SETTINGS),
        help=f"Settings to run, in order: {', '.join(SETTINGS)}, or bt<tokens>-lr<lr>[-ep<epochs>] (no compile).",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[harness.SEED], help="Seeds each setting runs with.")
    args = parser.parse_args()
    data = load_data(textcls.DataConfig(data=args.data, seed=harness.SEED), splits=("train", "dev"))
    train, dev, names = data.splits["train"], data.splits["dev"], data.label_names
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    # the first line says where the rows after it come from
    emit(args.output, what="session", device=device, **harness.header("gpu_settings", args))

    if "tok" in args.parts:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
        timing = harness.time_steps(
            lambda texts: encode_ids(tokenizer, texts, 128, cache=False), [train.texts, train.texts], 1, size=len
        )
        emit(
            args.output,
            what="tokenise-engine",
            device=device,
            texts=len(train),
            first_texts_per_s=round(len(train) / timing.warmup_seconds),
            texts_per_s=round(timing.per_second),
        )

    if "full" in args.parts:
        # "acc": the best epoch by accuracy
        base = TrainConfig(model=str(embedded_model_path()), seed=harness.SEED, metric="accuracy")
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
            timing = harness.time_steps(
                run.predict_proba, [texts[:2000], texts], 1, size=len, synchronize=harness.device_synchronize()
            )
            labels[precision] = run.predict_proba(dev.texts).argmax(axis=1)
            emit(
                args.output,
                what="infer",
                device=device,
                precision=precision,
                texts=len(texts),
                texts_per_s=round(timing.per_second),
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
