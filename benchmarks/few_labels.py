"""Few labels on AG News: the setfit family against plain fine-tuning (pretrained) on the same rows.

For each labelled-set size (--shots, rows per class, default 8 and 64) and seed (--seeds, default 0-4),
the same seeded sample of train.csv rows trains both families with their defaults from the embedded
all-MiniLM-L6-v2; the sampled rows are also what each family evaluates on while it trains (no other
labels are spent). With --setfit-unlabeled N, setfit's head also self-trains on N other texts of train.csv,
their labels unused (with --setfit-student-epochs, encoder and head then train on them end to end).
Accuracy is on every row of dev.csv, never trained on. Prints mean ± sd per cell and the time per run,
and writes JSON (config, versions, machine, every run) to --output after each run.

    python benchmarks/few_labels.py --data ../shared/data/ag_news
"""

from __future__ import annotations

import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/NAME.py` imports the package too

import numpy as np

from benchmarks import harness
from textcls.config import TrainConfig
from textcls.data.loading import Split
from textcls.models.base import family_class

LABEL_NAMES = ["World", "Sports", "Business", "Sci/Tech"]


def sample(labels: list[int], per_class: int, seed: int) -> list[int]:
    """`per_class` row indices of each class, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    array = np.asarray(labels)
    chosen = [rng.choice(np.flatnonzero(array == label), per_class, replace=False) for label in sorted(set(labels))]
    return sorted(int(row) for rows in chosen for row in rows)


def unlabeled_file(texts: list[str], labelled: list[int], count: int, seed: int, folder: Path) -> Path:
    """`count` texts of the pool drawn with `seed`, none of the `labelled` rows, one a line in a .txt file."""
    taken = set(labelled)
    order = [int(row) for row in np.random.default_rng(1000 + seed).permutation(len(texts)) if int(row) not in taken]
    path = folder / f"unlabeled-{seed}-{count}.txt"
    path.write_text("".join(" ".join(texts[row].split()) + "\n" for row in order[:count]), encoding="utf-8")
    return path


def one_run(family: str, train: Split, dev: Split, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """Train `family` with its defaults (and `options`) on `train`; its accuracy on `dev` and its timings."""
    config = TrainConfig(family=family, seed=seed, **options)
    checkpoints = Path(tempfile.mkdtemp(prefix="few-labels-"))
    try:
        started = time.perf_counter()
        classifier, _ = family_class(family).fit(train, train, LABEL_NAMES, config, checkpoints)
        train_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)
    started = time.perf_counter()
    predicted = classifier.predict_proba(dev.texts, batch_size=128).argmax(axis=1)
    return {
        "family": family,
        "rows": len(train),
        "seed": seed,
        "accuracy": float(np.mean(predicted == np.asarray(dev.labels))),
        "train_seconds": round(train_seconds, 1),
        "dev_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = harness.parser(__doc__, "few_labels")
    parser.add_argument("--shots", default="8,64", help="Labelled rows per class, comma-separated.")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="Sampling and training seeds, comma-separated.")
    parser.add_argument("--families", default="setfit,pretrained", help="Families to compare, comma-separated.")
    parser.add_argument("--setfit-iterations", type=int, default=None, help="setfit: pairs per row (default: its).")
    parser.add_argument("--setfit-head", default=None, help="setfit: logistic or differentiable (default: its).")
    parser.add_argument(
        "--setfit-unlabeled",
        type=int,
        default=None,
        help="setfit: self-train its head on this many unlabelled texts of train.csv (seeded, none of the labelled "
        "rows), passed as --setfit-unlabeled.",
    )
    parser.add_argument("--setfit-self-training-rounds", type=int, default=None, help="setfit: rounds (default: its).")
    parser.add_argument(
        "--setfit-student-epochs",
        type=float,
        default=None,
        help="setfit with --setfit-unlabeled: epochs of end-to-end training on the labels and the self-trained "
        "head's soft targets (default: none).",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    texts, labels = harness.read_ag_news(Path(args.data) / "train.csv")
    dev_texts, dev_labels = harness.read_ag_news(Path(args.data) / "dev.csv")
    dev = Split("dev", dev_texts, dev_labels, "dev.csv")
    head = harness.header("few_labels", args, packages=("scikit-learn",))
    runs: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="few-labels-texts-"))
    for shots in (int(value) for value in args.shots.split(",")):
        for seed in (int(value) for value in args.seeds.split(",")):
            rows = sample(labels, shots, seed)
            train = Split("train", [texts[i] for i in rows], [labels[i] for i in rows], "train.csv")
            for family in args.families.split(","):
                options = (
                    {
                        "setfit_iterations": args.setfit_iterations,
                        "setfit_head": args.setfit_head,
                        "setfit_self_training_rounds": args.setfit_self_training_rounds,
                        "setfit_student_epochs": args.setfit_student_epochs,
                    }
                    if family == "setfit"
                    else {}
                )
                options = {name: value for name, value in options.items() if value is not None}
                if family == "setfit" and args.setfit_unlabeled:
                    options["setfit_unlabeled"] = str(unlabeled_file(texts, rows, args.setfit_unlabeled, seed, work))
                run = {"per_class": shots, **one_run(family, train, dev, seed, options)}
                runs.append(run)
                print(run, file=sys.stderr, flush=True)
                harness.write_result(args.output, head, {"runs": runs})

    print(harness.describe(head))
    print(f"{'family':<12}{'per class':>10}{'seeds':>7}{'accuracy':>18}{'train s/run':>13}{'dev s/run':>11}")
    for shots in sorted({run["per_class"] for run in runs}):
        for family in args.families.split(","):
            cell = [run for run in runs if run["per_class"] == shots and run["family"] == family]
            if not cell:
                continue
            scores = [100 * run["accuracy"] for run in cell]
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            print(
                f"{family:<12}{shots:>10}{len(cell):>7}{statistics.mean(scores):>11.1f} ± {spread:<4.1f}"
                f"{statistics.mean(run['train_seconds'] for run in cell):>13.0f}"
                f"{statistics.mean(run['dev_seconds'] for run in cell):>11.0f}"
            )


if __name__ == "__main__":
    main()
