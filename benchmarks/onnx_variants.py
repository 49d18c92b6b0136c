"""What else ONNX Runtime offers on this CPU, against the graphs textcls ships.

For a fine-tuned pretrained-family run this builds, beside `RUN/onnx/` in a scratch folder:
    fp32                  the graph `textcls export` writes (shipped as backend `onnx`)
    int8 dynamic          the graph `textcls export --int8` writes (shipped as `onnx-int8`)
    int8 dynamic, layer 0 FFN output fp32
                          the same with the first layer's FFN output projection left in fp32 (a
                          mixed-precision variant)
    fp32 fused            the fp32 graph through ONNX Runtime's transformer optimizer (Attention,
                          SkipLayerNormalization, BiasGelu, EmbedLayerNormalization fused ops)
    int8 dynamic fused    dynamic int8 of the fused graph (QAttention)
    int8 static QDQ       static int8 (u8 activations, s8 per-channel weights) calibrated (MinMax) on
    int8 static QOperator 128 dev texts, as QDQ pairs and as QLinearMatMul operators
and times each over the same texts (sampled from train.csv, tokenised once beforehand, sorted by
length, batches of 8) in the layout textcls uses (one ONNX Runtime thread in each of 2 Python
workers sharing the session, ORT's SkipLayerNorm fusion off), one fresh session at a time, best of
--repeats passes. Then the shipped int8 graph in other layouts: with the SkipLayerNorm fusion, and
one batch at a time on 2 intra-op threads with and without spinning. Agreement (labels against the
fp32 graph) and accuracy on all dev texts.

    python benchmarks/onnx_variants.py --run runs/agnews --data ../shared/data/ag_news
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import numpy as np

from benchmarks import harness
from textcls.inference.onnx import DISABLED_FUSIONS, ONNX_DIR, ONNX_FILES, quantise_int8
from textcls.runfolder import model_dir

log = logging.getLogger("benchmark")


def batches(tokenizer, texts: list[str], inputs: list[str], batch_size: int = 8) -> tuple[list[np.ndarray], list[dict]]:
    """Length-sorted, per-batch padded feeds (row indices, feed) for `texts`."""
    encoded = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    order = np.argsort([len(ids) for ids in encoded], kind="stable")
    rows, feeds = [], []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in chosen)
        ids = np.zeros((len(chosen), width), np.int64)
        for j, i in enumerate(chosen):
            ids[j, : len(encoded[i])] = encoded[i]
        feed = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "token_type_ids": np.zeros_like(ids)}
        rows.append(chosen)
        feeds.append({k: v for k, v in feed.items() if k in inputs})
    return rows, feeds


def session(path: Path, threads: int, spin: bool, disabled: list[str] = DISABLED_FUSIONS):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
    )


def run_all(sess, feeds: list[dict], workers: int) -> list[np.ndarray]:
    if workers == 1:
        return [sess.run(["logits"], feed)[0] for feed in feeds]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda feed: sess.run(["logits"], feed)[0], feeds))


def _first_ffn_output(path: Path) -> list[str]:
    """The first encoder layer's FFN output MatMul, as the TorchScript exporter names it in BERT-like
    models and DistilBERT."""
    import onnx

    pattern = re.compile(r"layer\.0/(output/dense|ffn/lin2)/MatMul$")
    return [
        node.name
        for node in onnx.load(str(path), load_external_data=False).graph.node
        if node.op_type == "MatMul" and pattern.search(node.name)
    ]


def build_variants(run_dir: Path, scratch: Path, tokenizer, calibration: list[str]) -> dict[str, Path]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig

    shipped = run_dir / ONNX_DIR
    config = AutoConfig.from_pretrained(model_dir(run_dir))
    variants = {"fp32": shipped / ONNX_FILES["onnx"], "int8 dynamic": scratch / "int8.onnx"}
    quantise_int8(variants["fp32"], variants["int8 dynamic"])  # what `textcls export --int8` writes
    first_ffn = _first_ffn_output(variants["fp32"])
    variants["int8 dynamic, layer 0 FFN output fp32"] = scratch / "int8_first_ffn_fp32.onnx"
    quantize_dynamic(
        variants["fp32"],
        variants["int8 dynamic, layer 0 FFN output fp32"],
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        nodes_to_exclude=first_ffn,
    )
    fused = scratch / "fused.onnx"
    optimize_model(
        str(variants["fp32"]), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    ).save_model_to_file(str(fused))
    variants["fp32 fused"] = fused
    fused_int8 = scratch / "fused.int8.onnx"
    quantize_dynamic(
        fused,
        fused_int8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        extra_options={"DefaultTensorType": 1},
    )
    variants["int8 dynamic fused"] = fused_int8
    prepared = scratch / "prepared.onnx"
    with contextlib.chdir(scratch):  # the pre-processor leaves temporary files in the working folder
        quant_pre_process(str(variants["fp32"]), str(prepared), skip_symbolic_shape=True)
    inputs = [node.name for node in session(prepared, 1, False).get_inputs()]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(batches(tokenizer, calibration, inputs)[1])

        def get_next(self):
            return next(self.feeds, None)

    for name, form in (("int8 static QDQ", QuantFormat.QDQ), ("int8 static QOperator", QuantFormat.QOperator)):
        path = scratch / (name.replace(" ", "_") + ".onnx")
        with contextlib.chdir(scratch):
            quantize_static(
                str(prepared),
                str(path),
                Reader(),
                quant_format=form,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"DefaultTensorType": 1},
            )
        variants[name] = path
    return variants


def main() -> None:
    parser = harness.parser(
        __doc__,
        "onnx_variants",
        run=True,
        rows=2000,
        seed=0,
        repeats=3,
        help={
            "rows": "Texts timed per variant (sampled from train.csv).",
            "repeats": "Timed passes of each variant; the fastest is kept.",
        },
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("root").setLevel(logging.ERROR)  # ONNX Runtime's quantiser advice

    from transformers import AutoTokenizer

    run_dir, data = harness.require_run(args.run, args.data, onnx=True), Path(args.data)
    tokenizer = AutoTokenizer.from_pretrained(model_dir(run_dir))
    pool, _ = harness.read_ag_news(data / "train.csv")
    rng = np.random.default_rng(args.seed)
    texts = [pool[i] for i in rng.choice(len(pool), size=min(args.rows, len(pool)), replace=False)]
    dev_texts, dev_labels = harness.read_ag_news(data / "dev.csv")
    dev_labels = np.asarray(dev_labels)
    head = harness.header("onnx_variants", args, packages=("onnxruntime",), onednn=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="onnx-variants-") as scratch:
        variants = build_variants(run_dir, Path(scratch), tokenizer, dev_texts[:128])
        layouts = [(name, path, 1, False, 2, DISABLED_FUSIONS) for name, path in variants.items()]
        shipped = variants["int8 dynamic"]
        layouts += [
            ("int8 dynamic, ORT's SkipLayerNorm fusion on", shipped, 1, False, 2, []),
            ("int8 dynamic, 2 threads on each batch, spinning", shipped, 2, True, 1, DISABLED_FUSIONS),
            ("int8 dynamic, 2 threads on each batch, no spinning", shipped, 2, False, 1, DISABLED_FUSIONS),
        ]
        reference = None
        for name, path, threads, spin, workers, disabled in layouts:
            sess = session(path, threads, spin, disabled)
            inputs = [node.name for node in sess.get_inputs()]
            _, feeds = batches(tokenizer, texts, inputs)

            def run_feeds(part: list[dict], sess=sess, workers=workers) -> None:
                run_all(sess, part, workers)

            # each pass after a warm-up on the first 8 batches
            best = min(harness.time_steps(run_feeds, [feeds[:8], feeds], 1).seconds for _ in range(args.repeats))
            dev_rows, dev_feeds = batches(tokenizer, dev_texts, inputs)
            labels = np.zeros(len(dev_texts), dtype=np.int64)
            for chosen, logits in zip(dev_rows, run_all(sess, dev_feeds, 1)):
                labels[chosen] = logits.argmax(axis=1)
            reference = labels if reference is None else reference
            row = {
                "variant": name,
                "threads": threads,
                "spin": spin,
                "workers": workers,
                "bytes": path.stat().st_size,
                "texts_per_second": round(len(texts) / best, 1),
                "label_agreement": float((labels == reference).mean()),
                "dev_accuracy": float((labels == dev_labels).mean()),
            }
            log.info(
                "%-50s %7.1f texts/s  agree %.4f  dev %.4f",
                name,
                row["texts_per_second"],
                row["label_agreement"],
                row["dev_accuracy"],
            )
            rows.append(row)
            sess = None  # closes its threads before the next variant starts

    shipped_speed = next(r["texts_per_second"] for r in rows if r["variant"] == "int8 dynamic")
    print(
        f"\nONNX Runtime variants, {len(texts)} AG News texts (tokenised beforehand), sorted batches of 8, "
        f"best of {args.repeats}; {harness.describe(head)}"
    )
    print(f"{'variant':<50} {'texts/s':>8} {'x shipped int8':>15} {'agree (dev)':>12} {'dev acc':>8}")
    for row in rows:
        print(
            f"{row['variant']:<50} {row['texts_per_second']:>8.1f} {row['texts_per_second'] / shipped_speed:>15.2f} "
            f"{row['label_agreement']:>12.2%} {row['dev_accuracy']:>8.4f}"
        )
    harness.write_result(args.output, head, {"rows": rows})
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
