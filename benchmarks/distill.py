"""Distillation: a student distilled from a teacher run against the teacher itself, same texts and machine.

First `textcls.runs.distill.distill(TEACHER, --student, ...)` trains the student on --rows rows of train.csv
(the teacher's probabilities computed once over them), unless --work already holds a student made with the
same options. Then both runs, loaded on the same backend (`textcls.load(RUN, backend)`), predict all of
dev.csv: each after a warm-up on its first 64 texts, --repeats passes in turns, each keeping its fastest
pass; dev accuracy comes from the same predictions. Figures go to stdout (a table) and to --output (JSON
under the result header: config, versions, machine).

    python benchmarks/distill.py --teacher runs/agnews --data ../shared/data/ag_news --student layers:2
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import numpy as np

import textcls
from benchmarks import harness
from textcls.config import PredictConfig
from textcls.files import read_json_object, write_json
from textcls.runs.distill import distill

log = logging.getLogger("benchmark")
WARMUP = 64  # texts each model predicts before it is timed
MAKING = "making.json"  # in --work: how long the student took to make


def student_run(args, work: Path) -> tuple[Path, dict]:
    """The student run in `work` (reused when made with the same options), and how its making went."""
    made_with = {
        "teacher": str(Path(args.teacher).resolve()),
        "student": args.student,
        "rows": args.rows,
        "epochs": args.epochs,
        "temperature": args.temperature,
        "alpha": args.alpha,
        "seed": args.seed,
    }
    run_dir = work / "student"
    if harness.reuse_generated(work, made_with) and (run_dir / "textcls.json").is_file():
        log.info("reusing the student in %s", run_dir)
        return run_dir, read_json_object(work / MAKING) or {}
    started = time.perf_counter()
    result = distill(
        args.teacher,
        args.student,
        data=args.data,
        out=run_dir,
        overwrite=True,
        temperature=args.temperature,
        alpha=args.alpha,
        max_train_samples=args.rows,
        epochs=args.epochs,
        seed=args.seed,
    )
    summary = result.metrics["train"]
    making = {
        "seconds_total": round(time.perf_counter() - started, 1),  # teacher's probabilities, training, dev scoring
        "train_seconds": summary["train_seconds"],
        "train_rows": textcls.load(run_dir, PredictConfig(backend="torch")).info["data"]["rows"]["train"],
        "epochs": args.epochs,
    }
    write_json(work / MAKING, making)
    harness.record_generated(work, made_with)
    return run_dir, making


def main() -> None:
    parser = harness.parser(
        __doc__,
        "distill",
        rows=None,
        seed=42,
        repeats=2,
        work=True,
        help={"repeats": "Timed passes over dev.csv per model, in turns; each keeps its fastest."},
    )
    parser.add_argument("--teacher", default=harness.RUN, help="The teacher run folder (read only).")
    parser.add_argument("--student", default="layers:2", help="The student (see textcls distill --student).")
    parser.add_argument("--rows", type=int, default=None, help="Rows of train.csv to distil on (default: all).")
    parser.add_argument("--epochs", type=float, default=1.0, help="The student's training epochs.")
    parser.add_argument("--temperature", type=float, default=2.0, help="Soft targets' temperature.")
    parser.add_argument("--alpha", type=float, default=0.5, help="Weight of the hard labels' cross-entropy.")
    parser.add_argument("--backend", default="torch", help="Backend both models predict on.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    data, work = Path(args.data), Path(args.work)
    dev_texts, dev_labels = harness.read_ag_news(data / "dev.csv")
    class_names = (data / "classes.txt").read_text(encoding="utf-8").splitlines()  # what dev's label indices name
    head = harness.header("distill", args)
    student_dir, making = student_run(args, work)

    runs = {
        "teacher": textcls.load(args.teacher, PredictConfig(backend=args.backend)),
        "student": textcls.load(student_dir, PredictConfig(backend=args.backend)),
    }
    passes: dict[str, list[float]] = {name: [] for name in runs}
    accuracy: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            run.predict_proba(dev_texts[:WARMUP])
            started = time.perf_counter()
            probs = run.predict_proba(dev_texts)
            passes[name].append(time.perf_counter() - started)
            # the run's columns follow its own label order
            predicted = [run.label_names[i] for i in probs.argmax(axis=1)]
            accuracy[name] = float(np.mean([p == class_names[g] for p, g in zip(predicted, dev_labels)]))

    rows = {
        name: {
            "layers": run.classifier.model.config.num_hidden_layers,  # type: ignore[attr-defined]
            "parameters": run.num_parameters(),
            "texts_per_second": round(len(dev_texts) / min(passes[name]), 1),
            "passes_seconds": [round(s, 3) for s in passes[name]],
            "dev_accuracy": round(accuracy[name], 4),
        }
        for name, run in runs.items()
    }
    speedup = rows["student"]["texts_per_second"] / rows["teacher"]["texts_per_second"]
    drop = 100 * (rows["teacher"]["dev_accuracy"] - rows["student"]["dev_accuracy"])
    body = {
        "student_making": making,
        "backend": runs["teacher"].predict_config.backend,
        "dev_texts": len(dev_texts),
        "rows": rows,
        "speedup": round(speedup, 2),
        "accuracy_drop_points": round(drop, 2),
    }
    harness.write_result(args.output, head, body)

    print(harness.describe(head))
    print(f"{'model':<8} {'layers':>6} {'parameters':>11} {'texts/s':>9} {'dev accuracy':>13}")
    for name, row in rows.items():
        print(
            f"{name:<8} {row['layers']!s:>6} {row['parameters']:>11,} {row['texts_per_second']:>9.1f} "
            f"{row['dev_accuracy']:>13.4f}"
        )
    print(f"student: {speedup:.2f}x the teacher's throughput, {drop:+.2f} points of dev accuracy lost")
    print(f"student trained on {args.rows or 'all'} rows, {args.epochs:g} epoch(s): {making}")


if __name__ == "__main__":
    main()
