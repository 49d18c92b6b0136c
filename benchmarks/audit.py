"""How well `textcls audit` finds planted label errors: the first --rows rows of the AG News training pool
with a share (--flip) of their labels changed at random (seeded) to another class, audited with the
default method; precision and recall of the flipped rows among those flagged, and the time taken. With
--clean, the untouched rows are audited too and their top-ranked issues listed (the pool's own doubtful
labels).

    python benchmarks/audit.py --rows 20000 --clean

--embedding-cache keeps the frozen embeddings: a second run on the same rows (or the untouched pool, whose
texts are the same) skips embedding them, and the result says whether they were read or computed.
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path
from typing import Any

import textcls
from benchmarks import harness

TOP_LISTED = 50
TOP_TEXT_CHARS = 80  # the listed rows are quoted this far: enough to judge, not a copy of the data


def write_pool(source: Path, target: Path, rows: int, flip: float, seed: int) -> set[int]:
    """The first `rows` rows of `source` (label, title, description) written to `target` with a
    `flip` share of labels changed to another class; returns the 1-based data rows flipped."""
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        kept = [row for _, row in zip(range(rows), reader)]
    classes = sorted({row[0] for row in kept})
    rng = random.Random(seed)
    flipped = set(rng.sample(range(1, len(kept) + 1), round(flip * len(kept)))) if flip else set()
    for number in sorted(flipped):
        row = kept[number - 1]
        row[0] = rng.choice([label for label in classes if label != row[0]])
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        writer.writerows(kept)
    (target.parent / "classes.txt").write_text((source.parent / "classes.txt").read_text(encoding="utf-8"))
    return flipped


def run_audit(data: Path, out: Path, cache: Path | None, options: dict[str, Any]) -> tuple[Any, float, bool]:
    cached = cache is not None and any(cache.glob("*.npy")) and "family" not in options
    started = time.perf_counter()
    result = textcls.audit(str(data), str(out), embedding_cache=str(cache) if cache else None, **options)
    return result, time.perf_counter() - started, cached


def _cut(issues: list[dict[str, Any]], flipped: set[int], cut: float) -> list[float]:
    kept = {issue["row"] for issue in issues if issue["given_probability"] < cut}
    found = len(kept & flipped)
    return [len(kept), round(found / max(len(kept), 1), 4), round(found / max(len(flipped), 1), 4)]


def main() -> None:
    parser = harness.parser(__doc__, "audit", data=("train.csv",), rows=20_000, seed=0, work=True)
    parser.add_argument("--flip", type=float, default=0.05, help="Share of labels changed to another class.")
    parser.add_argument("--clean", action="store_true", help="Also audit the untouched rows; list the top 50.")
    parser.add_argument("--embedding-cache", type=Path, default=None, help="Folder that keeps the embeddings.")
    parser.add_argument("--family", default=None, help="Train this family per fold (audit --family).")
    parser.add_argument("--epochs", type=float, default=None, help="With --family: epochs per fold.")
    parser.add_argument("--max-length", type=int, default=None, help="Tokens per text (audit --max-length).")
    parser.add_argument("--filter-by", default=None, help="cleanlab's rule (audit --filter-by).")
    parser.add_argument(
        "--max-given-probability", type=float, default=None, help="The stricter list (audit --max-given-probability)."
    )
    args = parser.parse_args()
    options = {
        name: getattr(args, name)
        for name in ("family", "epochs", "max_length", "filter_by", "max_given_probability")
        if getattr(args, name) is not None
    }
    work = Path(args.work)
    head = harness.header("audit", args, packages=("cleanlab", "scikit-learn"))

    flipped = write_pool(Path(args.data) / "train.csv", work / "flipped" / "train.csv", args.rows, args.flip, args.seed)
    result, seconds, cached = run_audit(
        work / "flipped" / "train.csv", work / "audit_flipped", args.embedding_cache, options
    )
    flagged = {issue["row"] for issue in result.issues}
    found = len(flagged & flipped)
    precision, recall = found / max(len(flagged), 1), found / max(len(flipped), 1)
    scores = {
        "rows": result.summary["rows"],
        "flipped": len(flipped),
        "flagged": len(flagged),
        "flipped_flagged": found,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "out_of_sample_accuracy": result.summary["out_of_sample_accuracy"],
        "method": result.summary["method"],
        "seconds": round(seconds, 1),
        "embeddings_read_from_cache": cached,
        "options": options,
        # the ranked list cut at k rows: (precision, recall) of the planted flips among the first k
        "precision_recall_at_top": {
            str(k): [
                round(len({issue["row"] for issue in result.issues[:k]} & flipped) / k, 4),
                round(len({issue["row"] for issue in result.issues[:k]} & flipped) / max(len(flipped), 1), 4),
            ]
            for k in (250, 500, 750, 1000, 1250)
            if k <= len(result.issues)
        },
        # the flagged rows cut at a given-label probability (audit --max-given-probability): rows, precision, recall
        "given_probability_cuts": {
            str(cut): _cut(result.issues, flipped, cut) for cut in (0.02, 0.03, 0.05, 0.08, 0.1)
        },
    }
    print(f"\nlabel audit of {args.rows} AG News rows, {args.flip:.0%} of labels flipped; {harness.describe(head)}")
    print(f"{'method':18s} {'rows':>6s} {'flipped':>8s} {'flagged':>8s} {'precision':>9s} {'recall':>7s} {'s':>7s}")
    print(
        f"{scores['method']:18s} {scores['rows']:6d} {scores['flipped']:8d} {scores['flagged']:8d} "
        f"{precision:9.3f} {recall:7.3f} {seconds:7.1f}{' (embeddings cached)' if cached else ''}"
    )
    body: dict[str, Any] = {"flipped_pool": scores}
    harness.write_result(args.output, head, body)  # kept should the untouched pool's audit not finish
    if args.clean:
        write_pool(Path(args.data) / "train.csv", work / "clean" / "train.csv", args.rows, 0.0, args.seed)
        clean, clean_seconds, clean_cached = run_audit(
            work / "clean" / "train.csv", work / "audit_clean", args.embedding_cache, options
        )
        top = [
            {
                **{k: issue[k] for k in ("rank", "row", "given", "suggested", "label_quality")},
                "text": issue["text"][:TOP_TEXT_CHARS],
            }
            for issue in clean.issues[:TOP_LISTED]
        ]
        body["untouched_pool"] = {
            "rows": clean.summary["rows"],
            "flagged": clean.summary["issues"],
            "out_of_sample_accuracy": clean.summary["out_of_sample_accuracy"],
            "seconds": round(clean_seconds, 1),
            "embeddings_read_from_cache": clean_cached,
            "top": top,
        }
        print(
            f"untouched pool: {clean.summary['issues']} of {clean.summary['rows']} rows flagged ({clean_seconds:.0f}s)"
        )
        for issue in top[:10]:
            labels = f"{issue['given']:>9s} -> {issue['suggested']:9s}"
            print(f"{issue['rank']:3d} row {issue['row']:6d} {labels} {issue['text'][:70]}")
    harness.write_result(args.output, head, body)
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
