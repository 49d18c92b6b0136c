"""How much does `textcls tune` gain over a family's default settings on a small training set?

1. Train the family once with its defaults on --rows rows of train.csv (seeded sample); dev accuracy on
   dev.csv.
2. `textcls tune` the same family on the same rows for --trials trials (TPE, median pruning), bounded by
   --minutes; the best trial's dev accuracy, how many trials completed and were pruned, and the time.
3. Print both and write JSON (under the result header: config, versions, machine) to --output.

    python benchmarks/tune.py --data ../shared/data/ag_news --family lstm --rows 3000 --trials 20

The search continues in --work/search when run again with the same options (its study is kept there);
delete --work to start over.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import textcls
from benchmarks import harness
from textcls.cluster.tune import tune
from textcls.runfolder import is_run, read_metrics

log = logging.getLogger("benchmark")


def main() -> None:
    parser = harness.parser(__doc__, "tune", rows=3000, seed=harness.SEED, work=True)
    parser.add_argument("--family", default="lstm", help="The family searched (one that trains by epochs).")
    parser.add_argument("--trials", type=int, default=20, help="Trials of the search.")
    parser.add_argument("--minutes", type=float, default=30.0, help="Start no new trial after this many minutes.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data, work = Path(args.data), Path(args.work)
    shared = {"max_train_samples": args.rows, "seed": args.seed, "family": args.family}

    baseline_dir = work / "defaults"
    started = time.perf_counter()
    if not is_run(baseline_dir):
        textcls.train(data=str(data), out=baseline_dir, overwrite=True, **shared)
    baseline_seconds = time.perf_counter() - started
    baseline = read_metrics(baseline_dir) or {}

    started = time.perf_counter()
    result = tune(str(data), work / "search", trials=args.trials, time_budget=args.minutes, **shared)
    search_seconds = time.perf_counter() - started
    states = [row["state"] for row in result.trials]

    rows = {
        "defaults": {
            "dev_accuracy": baseline["dev"]["accuracy"],
            "train_seconds": baseline["train"]["train_seconds"],
            "seconds": round(baseline_seconds, 1),
        },
        "tuned": {
            "dev_accuracy": result.best_value,
            "best_params": result.best_params,
            "trials": len(states),
            "complete": states.count("COMPLETE"),
            "pruned": states.count("PRUNED"),
            "seconds": round(search_seconds, 1),
        },
    }
    print(f"{args.family} on {args.rows} train rows, dev accuracy on {data / 'dev.csv'}")
    print(f"{'':10} {'dev accuracy':>12} {'trials':>7} {'pruned':>7} {'seconds':>8}")
    print(f"{'defaults':10} {rows['defaults']['dev_accuracy']:>12.4f} {1:>7} {0:>7} {baseline_seconds:>8.0f}")
    tuned = rows["tuned"]
    print(
        f"{'tuned':10} {tuned['dev_accuracy'] or 0:>12.4f} {tuned['trials']:>7} {tuned['pruned']:>7} "
        f"{search_seconds:>8.0f}"
    )
    print(f"best settings: {result.best_params}")
    harness.write_result(args.output, harness.header("tune", args, packages=("optuna",)), rows)


if __name__ == "__main__":
    main()
