"""Inference speed: the usual `transformers` pipeline against textcls's backends, same model, texts and machine.

Rows, each a full pass over the same texts after a warm-up (tokenisation included), all rows once per pass
and --repeats passes in turns, each row keeping its fastest (all passes are in the JSON):
    pipeline             pipeline("text-classification", model=RUN/model) called on the list: the default usage
    torch unsorted       the same model, eager, batches of 64 in input order (padding to each batch's longest)
    torch dyn-int8       torch.ao dynamic int8 quantisation of the Linear layers, sorted batches (a reference)
    textcls torch        textcls.load(RUN): sorted by length, batches of 64, fp32
    textcls torch bf16   the same in bf16 autocast (--precision bf16)
    textcls onnx         ONNX Runtime, fp32 graph, sorted batches of 8, one batch per core at a time
    textcls onnx-int8    ONNX Runtime, int8 weights, the same
    textcls auto         what `textcls predict` uses by default: textcls.load(RUN) with --backend auto,
                         after it has timed the candidates (its choice and the seconds it took are printed)

Then agreement on all of dev.csv: each textcls backend's labels against textcls torch fp32, and its
dev accuracy. Figures go to stdout (a table) and to --output (JSON under the result header: config,
versions, machine, and what torch's oneDNN picks on this CPU).

    python benchmarks/inference.py --run runs/agnews --data ../shared/data/ag_news
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import numpy as np
import torch

import textcls
from benchmarks import harness
from textcls.config import PredictConfig
from textcls.files import write_atomic
from textcls.runfolder import backend_cache_path

log = logging.getLogger("benchmark")


def read_texts(path: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = harness.read_ag_news(path)
    return texts, np.asarray(labels)


def timed(name: str, predict, texts: list[str], warmup: int = 64) -> dict:
    """One pass of `predict` over `texts`, after a warm-up on the first `warmup` of them."""
    timing = harness.time_steps(predict, [texts[:warmup], texts], 1, size=len)
    row = {
        "name": name,
        "texts": len(texts),
        "seconds": round(timing.seconds, 3),
        "texts_per_second": round(timing.per_second, 1),
    }
    log.info("%-20s %7.1f texts/s", name, row["texts_per_second"])
    return row


def pipeline_predict(model_dir: Path):
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
    return lambda texts: classify(texts)


def unsorted_predict(model, tokenizer, max_length: int, batch_size: int = 64):
    @torch.inference_mode()
    def predict(texts: list[str]) -> None:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            model(**batch)

    return predict


def main() -> None:
    parser = harness.parser(
        __doc__,
        "inference",
        run=True,
        rows=7600,
        seed=0,
        repeats=2,
        help={
            "rows": "Texts timed per row (sampled from train.csv).",
            "repeats": "Timed passes over all rows, in turns; each row keeps its fastest.",
        },
    )
    parser.add_argument("--skip-pipeline", action="store_true", help="Leave out the slow pipeline and unsorted rows.")
    parser.add_argument(
        "--texts-out",
        help="Also write the timed texts to this file, one per line (for timing "
        "`textcls predict RUN --input FILE` on the same texts), and exit.",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    run_dir, data = harness.require_run(args.run, args.data, onnx=True), Path(args.data)

    pool, _ = read_texts(data / "train.csv")
    rng = np.random.default_rng(args.seed)
    texts = [pool[i] for i in rng.choice(len(pool), size=min(args.rows, len(pool)), replace=False)]
    if args.texts_out:
        write_atomic(
            Path(args.texts_out),
            lambda temporary: temporary.write_text(
                "".join(" ".join(text.split()) + "\n" for text in texts), encoding="utf-8"
            ),
        )
        print(f"written: {args.texts_out} ({len(texts)} texts)")
        return
    dev_texts, dev_labels = read_texts(data / "dev.csv")
    head = harness.header("inference", args, packages=("onnxruntime",), onednn=True)

    # auto's choice is made (and cached in RUN/backends.json) before anything is timed; how long it took is reported
    backend_cache_path(run_dir).unlink(missing_ok=True)
    started = time.perf_counter()
    auto = textcls.load(run_dir)
    choice_seconds = time.perf_counter() - started
    chosen, backend_choice = auto.backend_choice["chosen"], auto.backend_choice["candidates"]
    log.info("auto chose %s in %.1f s", chosen, choice_seconds)

    reference = textcls.load(run_dir, PredictConfig(backend="torch")).classifier
    predictors = {}  # name -> predict(texts)
    if not args.skip_pipeline:
        predictors["pipeline"] = pipeline_predict(run_dir / "model")
        predictors["torch unsorted"] = unsorted_predict(reference.model, reference.tokenizer, reference.max_length)
    quantised = torch.ao.quantization.quantize_dynamic(reference.model, {torch.nn.Linear}, dtype=torch.qint8)
    dyn_int8 = textcls.load(run_dir, PredictConfig(backend="torch")).classifier
    dyn_int8.model = quantised
    predictors["torch dyn-int8"] = lambda t: dyn_int8.predict_proba(t, batch_size=64)

    backends = {
        "textcls torch": PredictConfig(backend="torch"),
        "textcls torch bf16": PredictConfig(backend="torch", precision="bf16"),
        "textcls onnx": PredictConfig(backend="onnx"),
        "textcls onnx-int8": PredictConfig(backend="onnx-int8"),
        "textcls auto": PredictConfig(),  # the default: the choice cached above
    }
    reference_labels = reference.predict_proba(dev_texts).argmax(axis=1)
    dyn_labels = dyn_int8.predict_proba(dev_texts).argmax(axis=1)
    agreement = {
        "torch dyn-int8": {
            "label_agreement": float((dyn_labels == reference_labels).mean()),
            "dev_accuracy": float((dyn_labels == dev_labels).mean()),
        }
    }
    del auto
    for name, config in backends.items():
        run = textcls.load(run_dir, config)
        classifier, batch_size = run.classifier, run.predict_config.batch_size
        predictors[name] = lambda t, c=classifier, b=batch_size: c.predict_proba(t, batch_size=b)
        labels = classifier.predict_proba(dev_texts, batch_size=batch_size).argmax(axis=1)
        agreement[name] = {
            "label_agreement": float((labels == reference_labels).mean()),
            "dev_accuracy": float((labels == dev_labels).mean()),
        }

    # every row once per pass, in turns, keeping each row's fastest pass: the machine's speed drifts from minute
    # to minute, and a row timed only at a slow moment would be compared with one timed at a fast one
    passes = {name: [] for name in predictors}
    for _ in range(args.repeats):
        for name, predict in predictors.items():
            passes[name].append(timed(name, predict, texts))
    rows = [
        {**max(timings, key=lambda r: r["texts_per_second"]), "passes": [r["texts_per_second"] for r in timings]}
        for timings in passes.values()
    ]

    baseline = next((r["texts_per_second"] for r in rows if r["name"] == "pipeline"), None)
    for row in rows:
        row["x_pipeline"] = round(row["texts_per_second"] / baseline, 2) if baseline else None
        row.update(agreement.get(row["name"], {}))

    print(f"\ninference on {len(texts)} AG News texts, best of {args.repeats} passes; {harness.describe(head)}")
    print(f"{'backend':<20} {'texts/s':>9} {'x pipeline':>11} {'agree (dev)':>12} {'dev acc':>8}")
    for row in rows:
        ratio = f"{row['x_pipeline']:.2f}" if row["x_pipeline"] else "-"
        agree = f"{row['label_agreement']:.2%}" if "label_agreement" in row else "-"
        accuracy = f"{row['dev_accuracy']:.4f}" if "dev_accuracy" in row else "-"
        print(f"{row['name']:<20} {row['texts_per_second']:>9.1f} {ratio:>11} {agree:>12} {accuracy:>8}")
    best = max(rows, key=lambda r: r["texts_per_second"])
    if baseline:
        times = best["texts_per_second"] / baseline
        print(f"best: {best['name']} at {best['texts_per_second']:.0f} texts/s = {times:.2f}x the pipeline")
    default = next(r for r in rows if r["name"] == "textcls auto")
    ratio = f" = {default['texts_per_second'] / baseline:.2f}x the pipeline" if baseline else ""
    print(
        f"default (auto): chose {chosen} in {choice_seconds:.1f} s (first load on this machine; the export was "
        f"made before), then {default['texts_per_second']:.0f} texts/s{ratio}"
    )

    harness.write_result(
        args.output,
        head,
        {
            "run": str(run_dir),
            "dev_rows": len(dev_texts),
            "rows": rows,
            "auto": {"chosen": chosen, "choice_seconds": round(choice_seconds, 1), "candidates": backend_choice},
        },
    )
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
