"""Batch inference on Ray against plain `textcls predict`: same run, texts, backend and machine.

Rows, each one whole job from the input CSV to predictions on disk (model loads included):
    plain N threads      what `textcls predict RUN --input CSV --output OUT.jsonl --threads N` does, in
                         this process: read, load the run, score, write JSONL
    ray N x 1 CPU        `textcls predict RUN --input CSV --output DIR --on ray --workers N
                         --cpus-per-worker 1`: N actors of one thread each, on a local Ray started once
                         beforehand (its start-up time is reported apart), Parquet shards

Every row uses the same --backend (torch runs fp32; onnx and onnx-int8 need `textcls export RUN --format onnx
[--int8]` first) and checks its labels against the first row's. Each row runs --repeats times in turns and
keeps its fastest; all passes are in the JSON.

    python benchmarks/ray_predict.py --run ../ray-bench-run --rows 20000 --backend onnx-int8
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import pyarrow.parquet as pq
import ray

from benchmarks import harness
from textcls.cluster.batch import predict_on_ray
from textcls.config import PredictConfig, RayPredictConfig
from textcls.data.loading import read_texts
from textcls.files import write_text_atomic
from textcls.inference.predictions import prediction_records
from textcls.runs.api import load, run_text_columns

log = logging.getLogger("benchmark")


def write_input(source: Path, rows: int, path: Path) -> Path:
    """The first `rows` rows of an AG News CSV, as (title, description)."""
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        picked = [(row["title"], row["description"]) for _, row in zip(range(rows), reader)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "description"])
        writer.writerows(picked)
    return path


def predict_config(backend: str, threads: int | None = None) -> PredictConfig:
    return PredictConfig(backend=backend, precision="fp32" if backend == "torch" else None, threads=threads)


def plain(run_dir: Path, input_csv: Path, output: Path, threads: int, backend: str) -> list[str]:
    """`textcls predict --input --output` in this process; the labels in input order."""
    run = load(run_dir, predict_config(backend, threads))
    texts = read_texts(input_csv, None, run_text_columns(run.info))
    records = prediction_records(run.predict_proba(texts), run.label_names, run.thresholds)
    write_text_atomic(output, "".join(json.dumps(record) + "\n" for record in records))
    return [record["label"] for record in records]


def on_ray(run_dir: Path, input_csv: Path, output: Path, workers: int, backend: str) -> list[str]:
    """`textcls predict --on ray`; the labels in input order."""
    config = RayPredictConfig(workers=str(workers), cpus_per_worker=1, overwrite=True)
    result = predict_on_ray(run_dir, input_csv, output, config, predict_config(backend))
    rows = [row for shard in result.shards for row in pq.read_table(shard, columns=["row", "label"]).to_pylist()]
    return [row["label"] for row in sorted(rows, key=lambda row: row["row"])]


def main() -> None:
    parser = harness.parser(__doc__, "ray_predict", data=("train.csv",), rows=20000, seed=0, repeats=1, run=True)
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx", "onnx-int8"), help="Every row's.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    run_dir = harness.require_run(args.run, args.data)
    work = Path("runs/ray_predict")
    input_csv = write_input(Path(args.data) / "train.csv", args.rows, work / "input.csv")
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    ray_start = time.perf_counter() - started
    jobs = {
        "plain 1 thread": lambda: plain(run_dir, input_csv, work / "plain.jsonl", 1, args.backend),
        "ray 1 x 1 CPU": lambda: on_ray(run_dir, input_csv, work / "ray", 1, args.backend),
        "plain 2 threads": lambda: plain(run_dir, input_csv, work / "plain.jsonl", 2, args.backend),
        "ray 2 x 1 CPU": lambda: on_ray(run_dir, input_csv, work / "ray", 2, args.backend),
    }
    passes: dict[str, list[float]] = {name: [] for name in jobs}
    labels: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            began = time.perf_counter()
            labels[name] = job()
            passes[name].append(time.perf_counter() - began)
            log.info("%-16s %7.1f texts/s", name, args.rows / passes[name][-1])
    ray.shutdown()
    shutil.rmtree(work / "ray", ignore_errors=True)
    reference = labels["plain 1 thread"]
    rows = [
        {
            "name": name,
            "texts": args.rows,
            "seconds": round(min(seconds), 2),
            "texts_per_second": round(args.rows / min(seconds), 1),
            "passes_seconds": [round(s, 2) for s in seconds],
            "labels_agree": sum(a == b for a, b in zip(labels[name], reference)) / len(reference),
        }
        for name, seconds in passes.items()
    ]
    speed = {row["name"]: row["texts_per_second"] for row in rows}
    summary = {
        "ray_start_seconds": round(ray_start, 2),
        "overhead_1_core": round(1 - speed["ray 1 x 1 CPU"] / speed["plain 1 thread"], 3),
        "overhead_2_cores": round(1 - speed["ray 2 x 1 CPU"] / speed["plain 2 threads"], 3),
        "texts_per_second_added_by_2nd_actor": round(speed["ray 2 x 1 CPU"] - speed["ray 1 x 1 CPU"], 1),
    }
    head = harness.header("ray_predict", args, packages=("ray",))
    path = harness.write_result(args.output, head, {"rows": rows, "summary": summary})
    print(harness.describe(head))
    print(f"{'job':<18}{'texts/s':>10}{'seconds':>10}{'labels = plain 1':>18}")
    for row in rows:
        print(f"{row['name']:<18}{row['texts_per_second']:>10.1f}{row['seconds']:>10.1f}{row['labels_agree']:>18.4f}")
    print(json.dumps(summary))
    print(f"result: {path}")


if __name__ == "__main__":
    main()
