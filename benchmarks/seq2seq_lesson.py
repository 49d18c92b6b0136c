"""The seq2seq lesson, end to end, through the public API (`textcls.seq2seq`):

1. generate `dates` and `reorder` data (30,000 training pairs each, seed 0);
2. train the additive-attention model on dates; score its test split; plot its alignment for
   "Saturday 14 August 1982" (docs/seq2seq/alignment_dates.png);
3. train the additive and the no-attention (RNNenc) model on reorder with the same sizes and the
   same time budget, one after the other; score both by source length; draw BLEU and exact match
   against length (docs/seq2seq/length.png, compare.json) and one reorder alignment;
4. write benchmarks/results/seq2seq.json (the result header: config, versions, machine; then the
   numbers and each run's config) and print a table.

Each training run is capped by minutes of training (`--dates-budget`, default 8; `--reorder-budget`,
default 9) and uses `--threads` CPU threads (default one: on 2 cores, two threads trained slower and
less steadily).

    python benchmarks/seq2seq_lesson.py                # everything (about 25 minutes on 2 CPU cores)
    python benchmarks/seq2seq_lesson.py --reuse        # keep runs already in --runs, redo the scores and figures

The CLI equivalent of each step is in the README's section "Attention where it was born: `textcls seq2seq`".
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

from benchmarks import harness
from benchmarks.harness import ROOT
from textcls import runfolder, seq2seq

DATES_EXAMPLE = "Saturday 14 August 1982"


def _train(data: Path, out: Path, reuse: bool, **options) -> dict:
    if reuse and runfolder.is_run(out):
        logging.info("reusing %s", out)
        return seq2seq.load(out).metrics
    started = time.perf_counter()
    result = seq2seq.train(data, out, overwrite=True, **options)
    logging.info("trained %s in %.0fs", out, time.perf_counter() - started)
    return result.metrics


def _bucket(report: dict, name: str) -> dict:
    return next(row for row in report["by_length"] if row["bucket"] == name)


def main() -> None:
    parser = harness.parser(
        __doc__, "seq2seq_lesson", data=(), rows=30000, output=None, help={"rows": "Training pairs per task."}
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "seq2seq", help="where data and run folders go")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "seq2seq", help="where the figures go")
    parser.add_argument(
        "--results", type=Path, default=ROOT / harness.RESULTS / "seq2seq.json", help="Where the result JSON goes."
    )
    parser.add_argument("--dates-budget", type=float, default=8.0, help="minutes of training for dates")
    parser.add_argument("--reorder-budget", type=float, default=9.0, help="minutes of training per reorder model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="keep data and runs that already exist")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    head = harness.header("seq2seq_lesson", args)

    data = {task: args.runs / "data" / task for task in ("dates", "reorder")}
    for task, folder in data.items():
        if not (args.reuse and (folder / "train.tsv").is_file()):
            seq2seq.write_data(task, args.rows, folder, seed=0, overwrite=True)

    # dates: the crossing alignment
    dates_run = args.runs / "dates-additive"
    dates_metrics = _train(
        data["dates"], dates_run, args.reuse, attention="additive", time_budget=args.dates_budget, threads=args.threads
    )
    dates_test = seq2seq.evaluate(dates_run, "test", by_length=False)
    run = seq2seq.load(dates_run)
    [example] = run.translate([DATES_EXAMPLE])
    run.plot(example, args.docs / "alignment_dates.png")
    year_attention = example.attention[:4, -5:-1].sum(axis=1)  # output year digits -> the source's last 4 characters

    # reorder: the same sizes and budget, with and without attention
    reorder_runs = {attention: args.runs / f"reorder-{attention}" for attention in ("additive", "none")}
    reorder_metrics = {
        attention: _train(
            data["reorder"],
            path,
            args.reuse,
            attention=attention,
            time_budget=args.reorder_budget,
            threads=args.threads,
        )
        for attention, path in reorder_runs.items()
    }
    by_length = {attention: seq2seq.evaluate(path, "test", by_length=True) for attention, path in reorder_runs.items()}
    compare = seq2seq.compare(list(reorder_runs.values()), args.docs)
    reorder_run = seq2seq.load(reorder_runs["additive"])
    sentence = next(
        s for s in seq2seq.read_data(data["reorder"], ("test",))["test"].sources if 14 <= len(s.split()) <= 18
    )
    [reordered] = reorder_run.translate([sentence])
    reorder_run.plot(reordered, args.docs / "alignment_reorder.png")

    ratios = {
        attention: _bucket(report, "41-60")["bleu"] / _bucket(report, "1-20")["bleu"]
        for attention, report in by_length.items()
    }
    results = {
        "trained_with": seq2seq.load(dates_run).info["versions"],  # with --reuse, possibly other versions
        "dates": {
            "run": str(dates_run),
            "config": run.info["config"],
            "training": {k: v for k, v in dates_metrics["training"].items() if k != "history"},
            "test": dates_test["overall"],
            "example": {
                "source": DATES_EXAMPLE,
                "output": example.text,
                "year_rows_attention_on_source_year": year_attention.round(4).tolist(),
            },
        },
        "reorder": {
            attention: {
                "run": str(reorder_runs[attention]),
                "config": seq2seq.load(reorder_runs[attention]).info["config"],
                "training": {k: v for k, v in reorder_metrics[attention]["training"].items() if k != "history"},
                "test": by_length[attention]["overall"],
                "by_length": by_length[attention]["by_length"],
                "long_over_short_bleu": ratios[attention],
            }
            for attention in reorder_runs
        },
        "figures": {
            "alignment_dates": str(args.docs / "alignment_dates.png"),
            "length": str(args.docs / "length.png"),
            "alignment_reorder": str(args.docs / "alignment_reorder.png"),
        },
        "compare_buckets": [
            {
                "run": row["run"],
                "by_length": [{k: b[k] for k in ("bucket", "pairs", "bleu", "exact_match")} for b in row["by_length"]],
            }
            for row in compare["runs"]
        ],
    }
    harness.write_result(args.results, head, results)
    print(
        f"dates (additive): test exact match {dates_test['overall']['exact_match']:.4f}, "
        f"'{DATES_EXAMPLE}' -> {example.text}, year rows' weight on the source year {year_attention.round(3).tolist()}"
    )
    print(
        "| reorder | test BLEU | BLEU 1-20 | BLEU 21-40 | BLEU 41-60 | 41-60 / 1-20 | exact match | train s | epochs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for attention, report in by_length.items():
        training = reorder_metrics[attention]["training"]
        print(
            f"| {attention} | {report['overall']['bleu']:.1f} | {_bucket(report, '1-20')['bleu']:.1f} | "
            f"{_bucket(report, '21-40')['bleu']:.1f} | {_bucket(report, '41-60')['bleu']:.1f} | "
            f"{ratios[attention]:.2f} | "
            f"{report['overall']['exact_match']:.3f} | {training['train_seconds']:.0f} | {training['epochs_run']} |"
        )
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
