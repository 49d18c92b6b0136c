"""Train several model families on the same data and put them side by side.

The lesson's argument as one command: TF-IDF, an LSTM, an LSTM with additive attention, a small
transformer trained from scratch and a pre-trained encoder, each with its own default budget,
all scored on the same dev split. Finished families are reused, so an interrupted compare
continues where it stopped.

Example:
    >>> rows = compare(DataConfig(data="../shared/data/ag_news"), ["tfidf", "lstm"], "runs/compare")  # doctest: +SKIP
    >>> [(r["family"], round(r["dev_accuracy"], 3)) for r in rows["families"]]                          # doctest: +SKIP
    [('tfidf', 0.91), ('lstm', 0.89)]
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textcls import machine, runfolder
from textcls.config import DataConfig, PredictConfig, TrainConfig, field_names, split_options, to_dict
from textcls.errors import TextclsError
from textcls.families import COMPARED_FAMILIES, FAMILIES
from textcls.files import make_folder, write_json, write_text_atomic
from textcls.models.base import Predictor, family_class, training_option_problem
from textcls.reporting import plots
from textcls.runs.api import load, train
from textcls.training.device import for_this_device

log = logging.getLogger(__name__)

COMPARE_FILE = "compare.json"


def parse_families(value: str | Sequence[str] | None) -> list[str]:
    """'tfidf,lstm' or a list -> validated family names, in the order given, without repeats; None: the families
    compared by default (`COMPARED_FAMILIES`)."""
    if value is None:
        return list(COMPARED_FAMILIES)
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown or not names:
        raise TextclsError(f"--families: expected names from {list(FAMILIES)}, found {names or value!r}")
    return list(dict.fromkeys(names))


def _inference_rate(classifier: Predictor, texts: list[str], batch_size: int) -> float:
    """Texts per second of `predict_proba` on `texts`, after a short warm-up."""
    classifier.predict_proba(texts[: min(len(texts), batch_size)], batch_size=batch_size)
    started = time.perf_counter()
    classifier.predict_proba(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started)


def split_compare_options(options: dict[str, Any]) -> tuple[DataConfig, dict[str, Any]]:
    """The data config and the training options that were given; each family fills the rest from its
    own defaults. Every name and value is checked; a `family` (say from a config file shared with
    `train`) is set by --families instead, so it is dropped with a note."""
    given = {k: v for k, v in options.items() if v is not None}
    data_config, _ = split_options(given)  # validates every name and value
    if "family" in given:
        log.info("compare trains the families of --families; ignoring family=%r", given["family"])
    train_options = {k: v for k, v in given.items() if k in field_names(TrainConfig) and k != "family"}
    return data_config, train_options


def compare(
    data_config: DataConfig,
    families: Sequence[str] | None,
    out: str | Path,
    train_options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train each family into `out/FAMILY`, evaluate on the same dev split, write compare.json/.md/.png.

    A family that cannot train with these options (`--long-text chunk` for tfidf, say) is skipped with the
    reason logged and listed under "skipped"; none left is an error."""
    from textcls.data.loading import load_data

    out = Path(out)
    options = {k: v for k, v in (train_options or {}).items() if k != "family"}
    names = parse_families(families)
    for family in names:  # a family's run cut short while being replaced is put back before it is looked for
        runfolder.settle(out / family)
    # train too where a finished run may be reused: the fingerprint over train and dev says whether it can be
    reusable = not overwrite and any(runfolder.is_run(out / family) for family in names)
    data = load_data(data_config, splits=("train", "dev") if reusable else ("dev",), require_train=reusable)
    dev = data.splits["dev"]
    rows, skipped = [], []
    for family in names:
        run_dir = out / family
        config = TrainConfig(family=family, **options)
        problem = training_option_problem(family_class(family), config, data_config.multi_label)
        if problem is not None:
            log.warning("skipping %s: %s", family, problem)
            skipped.append({"family": family, "reason": problem})
            continue
        if overwrite or not runfolder.is_run(run_dir):
            log.info("training %s into %s", family, run_dir)
            started = time.perf_counter()
            train(data_config=data_config, train_config=config, out=run_dir, overwrite=overwrite)
            log.info("%s trained in %.0fs", family, time.perf_counter() - started)
        else:
            problem = _reuse_problem(run_dir, data.fingerprint, for_this_device(config))
            if problem is not None:
                raise TextclsError(
                    f"{run_dir} holds a {family} run trained on {problem}; pass --overwrite to retrain it, or "
                    "choose another --out"
                )
            log.info(
                "%s: reusing the finished run in %s (same rows and settings; --overwrite retrains)", family, run_dir
            )
        run = load(run_dir, PredictConfig(backend="torch"))  # the family's own model, as every row is timed
        metrics = run.metrics
        if metrics is None or "train" not in metrics or "dev" not in metrics:
            raise TextclsError(f"{run_dir} has no readable metrics; retrain it with --overwrite")
        rows.append(
            {
                "family": family,
                "dev_accuracy": metrics["dev"]["accuracy"],
                "dev_macro_f1": metrics["dev"]["macro_f1"],
                "train_seconds": metrics["train"]["train_seconds"],
                "inference_samples_per_second": round(
                    _inference_rate(run.classifier, dev.texts, config.eval_batch_size), 1
                ),
                "parameters": run.num_parameters(),
                "epochs_run": len(metrics["train"]["epochs"]),
                "run_dir": str(run_dir),
            }
        )
    if not rows:
        raise TextclsError(f"no family can train with these options: {'; '.join(row['reason'] for row in skipped)}")
    result = {
        "families": rows,
        "skipped": skipped,
        "dev_source": dev.source,
        "dev_rows": len(dev),
        "data_config": dataclasses.asdict(data_config),
        "train_options": options,
        "versions": machine.library_versions(),
    }
    make_folder(out)
    write_json(out / COMPARE_FILE, result)
    write_text_atomic(out / "compare.md", markdown_table(rows))
    if plots.available():
        try:
            plots.accuracy_vs_time(rows, out / "compare.png")
        except Exception as error:  # the runs and compare.json are written: a figure is never worth them
            log.warning("%s was not drawn: %s: %s", out / "compare.png", type(error).__name__, error)
    else:
        log.warning("the plots extra is not installed, so %s was not drawn; %s", out / "compare.png", plots.EXTRA_HINT)
    return result


def _reuse_problem(run_dir: Path, fingerprint: str, config: TrainConfig) -> str | None:
    """Why the finished run in `run_dir` is not what this compare would train, or None when it is: the same
    rows (the data fingerprint over train and dev) and every setting given or resolved for this device."""
    info = runfolder.read_info(run_dir)
    if info.get("data", {}).get("fingerprint") != fingerprint:
        return "other rows (its train/dev fingerprint differs from this data's)"
    # a setting left unset (None) is one the run resolved itself (say the metric, from the labels)
    wanted = {name: value for name, value in to_dict(config).items() if value is not None}
    # where a run reported to is not what it learnt
    changed = runfolder.settings_changed(info.get("train_config", {}), wanted, ignored=("resume", "report_to"))
    return f"other settings: {', '.join(changed)}" if changed else None


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table, one row per family."""
    lines = [
        "| family | dev accuracy | dev macro-F1 | train time (s) | inference (texts/s) | parameters | run folder |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['family']} | {row['dev_accuracy']:.4f} | {row['dev_macro_f1']:.4f} | {row['train_seconds']:.0f} "
            f"| {row['inference_samples_per_second']:.0f} | {row['parameters']:,} | `{row['run_dir']}` |"
        )
    return "\n".join(lines) + "\n"
