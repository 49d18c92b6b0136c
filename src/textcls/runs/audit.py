"""Find likely label errors in training data: out-of-sample class probabilities by k-fold cross-validation,
then confident learning (cleanlab) picks and ranks the rows whose given label the probabilities doubt.

Every row is scored by a model that never saw it: by default a logistic regression on frozen sentence
embeddings (averaged with the TF-IDF family's probabilities), or any family trained per fold (`family`).
The ranked issues go to `issues.csv`, `issues.jsonl` and `audit.html`, the summary to `audit.json`; with
`fix`, a copy of the data with the suggested labels (the input is never written).

Example:
    >>> result = audit("data/ag_news/train.csv", out="audit")            # doctest: +SKIP
    >>> result.summary["issues"], result.issues[0]["suggested"]           # doctest: +SKIP
    (412, 'Business')
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textcls import runfolder
from textcls.config import AUDIT_METHODS, AuditConfig, DataConfig, TrainConfig, field_names, from_dict, split_options
from textcls.data.loading import LoadedData, Split, load_data, relabelled_text
from textcls.errors import ConfigError, DataError, TextclsError
from textcls.families import FAST_FAMILY
from textcls.files import make_folder, replace_folder, work_folder, write_atomic, write_json, write_text_atomic
from textcls.models.base import check_training_options, family_class
from textcls.runs.api import data_config_for_run

log = logging.getLogger(__name__)

LABELS_EXTRA = 'pip install "textcls[labels]"'
ISSUES_CSV, ISSUES_JSONL, PAGE_FILE, SUMMARY_FILE = "issues.csv", "issues.jsonl", "audit.html", "audit.json"
ISSUE_FIELDS = (
    "rank",
    "row",
    "given",
    "suggested",
    "label_quality",
    "given_probability",
    "suggested_probability",
    "text",
)


@dataclass
class AuditResult:
    """What `audit` found and wrote: the summary (audit.json), the ranked issues, the out-of-sample
    probabilities (rows, classes) in the data's row order, and the files written."""

    out: Path
    summary: dict[str, Any]
    issues: list[dict[str, Any]]
    probs: np.ndarray
    label_names: list[str]
    files: list[Path]
    fixed: Path | None = None


def audit(
    target: str | Path | None = None,
    out: str | Path = "audit",
    *,
    fix: bool = False,
    fix_out: str | Path | None = None,
    data_config: DataConfig | None = None,
    audit_config: AuditConfig | None = None,
    train_config: TrainConfig | None = None,
    progress: bool = True,
    **options: Any,
) -> AuditResult:
    """Audit the labels of `target`: a data folder or file (as `train --data` takes it) or a run folder (the
    rows the run was trained on). `options` are fields of `AuditConfig`, `DataConfig` and, for a `family`
    trained per fold, `TrainConfig`.

    Example:
        >>> result = audit("runs/agnews", out="audit", fix=True)      # doctest: +SKIP
        >>> result.fixed                                              # doctest: +SKIP
        PosixPath('audit/ag_news.fixed')
    """
    started = time.perf_counter()
    audit_config, data_options, train_options = _split_audit_options(options, audit_config)
    _cleanlab()  # a missing extra fails before any work
    data_config, run_dir = _audited_data(target, data_config, data_options)
    # a run's own training rows are those left after its dev carve and row limit: read both splits as it did
    dataset = load_data(data_config, splits=("train", "dev") if run_dir is not None else ("train",))
    rows = dataset.splits["train"]
    _check_rows(rows, dataset, audit_config.folds)
    out = Path(out)
    fix_plan = _fix_plan(data_config, rows, out, fix_out) if fix else None
    train_config = train_config or _train_config(audit_config, train_options)

    probs = out_of_sample_probabilities(rows, dataset.label_names, audit_config, train_config, progress)
    issues, summary = find_issues(rows, dataset.label_names, probs, audit_config)
    summary.update(
        source=rows.source,
        run_dir=str(run_dir) if run_dir is not None else None,
        config=dataclasses.asdict(audit_config),
        seconds=round(time.perf_counter() - started, 1),
    )
    files = _write_outputs(out, summary, issues, dataset.label_names, audit_config.shown)
    fixed = _write_fixed(fix_plan, rows, dataset, issues, data_config.label_column) if fix_plan else None
    if fixed is not None:
        summary["fixed"] = str(fixed)
        write_json(out / SUMMARY_FILE, summary)
    return AuditResult(out, summary, issues, probs, dataset.label_names, files, fixed)


# ---------------------------------------------------------------- inputs


def _split_audit_options(
    options: dict[str, Any], audit_config: AuditConfig | None
) -> tuple[AuditConfig, dict[str, Any], dict[str, Any]]:
    """AuditConfig's options (the config itself when given), DataConfig's and TrainConfig's, by field name;
    `seed` drives all three."""
    audit_names, data_names = field_names(AuditConfig), field_names(DataConfig)
    train_names = field_names(TrainConfig) - {"family"}  # --family is the audit's: which family trains per fold
    unknown = sorted(set(options) - audit_names - data_names - train_names)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown}: expected fields of AuditConfig, DataConfig or TrainConfig; fix the spelling"
        )
    if audit_config is None:
        audit_config = AuditConfig(**{k: v for k, v in options.items() if k in audit_names})
    data_options = {k: v for k, v in options.items() if k in data_names}
    train_options = {k: v for k, v in options.items() if k in train_names}
    return audit_config, data_options, train_options


def _train_config(config: AuditConfig, options: dict[str, Any]) -> TrainConfig:
    """Training options for the family trained per fold (or the embeddings' encoder, `model`)."""
    _, train_config = split_options({**options, "family": config.family or FAST_FAMILY})
    return train_config


def _audited_data(
    target: str | Path | None, data_config: DataConfig | None, options: dict[str, Any]
) -> tuple[DataConfig, Path | None]:
    """The data to audit and, for a run folder, the run: its recorded data config, with the options given
    (columns, classes file, a row limit) applied as `evaluate` applies them."""
    if data_config is not None:
        return data_config, None
    if target is not None and runfolder.is_run(Path(target)):
        run_dir = Path(target)
        given = data_config_for_run(run_dir, options)
        if given is not None:
            return given, run_dir
        recorded = runfolder.read_info(run_dir).get("data_config")
        if not recorded:
            raise TextclsError(
                f"{run_dir / runfolder.RUN_FILE} does not record its data; audit the data itself: "
                "textcls audit DATA_FOLDER_OR_FILE"
            )
        return from_dict(DataConfig, recorded), run_dir
    if target is None and not any(options.get(name) for name in ("data", "train_file")):
        raise ConfigError("expected data to audit, found none; pass a data folder or file, a run folder or --train")
    data, _ = split_options({**options, **({"data": str(target)} if target is not None else {})})
    return data, None


def _check_rows(rows: Split, dataset: LoadedData, folds: int) -> None:
    """Refuse multi-label data and classes too small to appear in every fold, before any work."""
    if dataset.multi_label:
        raise ConfigError(
            f"{rows.source}: expected single-label data for textcls audit, found --multi-label; audit each label "
            "as its own single-label column, or drop --multi-label"
        )
    counts = Counter(int(label) for label in rows.labels)  # type: ignore[arg-type]  # single-label: ints
    small = {dataset.label_names[label]: count for label, count in sorted(counts.items()) if count < folds}
    if small:
        found = ", ".join(f"{name!r} has {count} row{'s' if count != 1 else ''}" for name, count in small.items())
        fewest = min(small.values())
        fix = f"pass --folds {fewest}" if fewest >= 2 else "add rows of that class or remove it"
        raise DataError(
            f"{rows.source}: expected at least {folds} rows of every class for {folds}-fold cross-validation, found "
            f"{found}; {fix}, or add rows"
        )
    if len(counts) < 2:
        raise DataError(f"{rows.source}: expected rows of at least 2 classes to audit, found {len(counts)}; add rows")


def _cleanlab() -> Any:
    try:
        import cleanlab.filter  # type: ignore[import-untyped]
        import cleanlab.rank  # type: ignore[import-untyped]
    except ImportError as error:
        raise TextclsError(
            f"textcls audit needs cleanlab, which is not installed ({error}); run `{LABELS_EXTRA}`"
        ) from error
    return cleanlab


# ---------------------------------------------------------------- probabilities


def out_of_sample_probabilities(
    rows: Split,
    label_names: list[str],
    config: AuditConfig,
    train_config: TrainConfig,
    progress: bool = False,
) -> np.ndarray:
    """Class probabilities (rows, classes) for every row from a model trained on the other folds.

    Example:
        >>> probs = out_of_sample_probabilities(rows, names, AuditConfig(), TrainConfig())   # doctest: +SKIP
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(rows.labels)
    splitter = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    folds = list(splitter.split(np.zeros((len(labels), 1)), labels))
    if config.family is not None:
        return _family_probabilities(config.family, rows, label_names, folds, train_config)
    probs = _embedding_probabilities(rows, label_names, folds, config, train_config, progress)
    if config.method == AUDIT_METHODS[1]:
        fast = dataclasses.replace(train_config, family=FAST_FAMILY)
        probs = (probs + _family_probabilities(FAST_FAMILY, rows, label_names, folds, fast)) / 2
    return probs


def _embedding_probabilities(
    rows: Split,
    label_names: list[str],
    folds: list[tuple[np.ndarray, np.ndarray]],
    config: AuditConfig,
    train_config: TrainConfig,
    progress: bool,
) -> np.ndarray:
    """A logistic regression per fold on frozen embeddings, computed once for every row."""
    from sklearn.linear_model import LogisticRegression

    from textcls.models.pretrained import sentence_embeddings

    max_length = train_config.max_length or 128

    def embed() -> np.ndarray:
        log.info("embedding %d texts with %s", len(rows), train_config.model or "the embedded all-MiniLM-L6-v2")
        return sentence_embeddings(rows.texts, train_config.model, max_length, progress=progress)

    if config.embedding_cache is None:
        embeddings = embed()
    else:
        embeddings = _cached(
            Path(config.embedding_cache), embedding_key(rows.texts, train_config.model, max_length), embed
        )
    labels = np.asarray(rows.labels)
    probs = np.zeros((len(rows), len(label_names)))
    for number, (kept, held) in enumerate(folds, 1):
        model = LogisticRegression(C=config.logistic_c, max_iter=2000, random_state=config.seed)
        model.fit(embeddings[kept], labels[kept])
        probs[np.ix_(held, model.classes_)] = model.predict_proba(embeddings[held])
        log.info("fold %d/%d: logistic regression on embeddings fitted", number, len(folds))
    return probs


def embedding_key(texts: list[str], model: str | None, max_length: int) -> str:
    """The cache file name of the embeddings of `texts` by encoder `model` (None: the embedded one)."""
    from textcls.models.encoders import resolve_model

    digest = hashlib.sha256(json.dumps([str(Path(resolve_model(model)).resolve()), max_length]).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return f"embeddings-{digest.hexdigest()[:32]}.npy"


def _cached(folder: Path, name: str, compute: Any) -> np.ndarray:
    path = folder / name
    if path.is_file():
        log.info("embeddings read from %s", path)
        return np.load(path)
    values = compute()
    make_folder(folder)

    def save(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.save(handle, values)

    write_atomic(path, save)
    return values


def _family_probabilities(
    name: str,
    rows: Split,
    label_names: list[str],
    folds: list[tuple[np.ndarray, np.ndarray]],
    train_config: TrainConfig,
) -> np.ndarray:
    """Family `name` trained per fold through its own `fit` (the held-out fold is its dev split)."""
    from textcls.training.device import for_this_device

    family = family_class(name)
    config = for_this_device(dataclasses.replace(train_config, family=name))
    check_training_options(family, config)
    probs = np.zeros((len(rows), len(label_names)))
    for number, (kept, held) in enumerate(folds, 1):
        train, dev = _subset(rows, kept, "train"), _subset(rows, held, "dev")
        with tempfile.TemporaryDirectory(prefix="textcls-audit-") as checkpoints:
            classifier, _ = family.fit(train, dev, label_names, config, Path(checkpoints))
        probs[held] = classifier.predict_proba(dev.texts, batch_size=config.eval_batch_size)
        log.info("fold %d/%d: %s trained on %d rows", number, len(folds), name, len(train))
    return probs


def _subset(rows: Split, indices: np.ndarray, name: str) -> Split:
    return Split(name, [rows.texts[i] for i in indices], [rows.labels[i] for i in indices], rows.source)


# ---------------------------------------------------------------- issues


def find_issues(
    rows: Split, label_names: list[str], probs: np.ndarray, config: AuditConfig
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The likely label errors, most likely first, and the summary (rows, issues, per class).

    cleanlab sees only the classes the rows carry (a class of the label list without rows has no column).
    """
    cleanlab = _cleanlab()
    labels = np.asarray(rows.labels)
    present = np.unique(labels)  # label indices the rows carry, sorted
    compact = np.searchsorted(present, labels)
    kept = probs[:, present]
    kept = kept / np.clip(kept.sum(axis=1, keepdims=True), 1e-12, None)
    ranked = cleanlab.filter.find_label_issues(
        compact, kept, filter_by=config.filter_by, return_indices_ranked_by=config.ranked_by, n_jobs=1
    )
    if config.max_given_probability is not None:  # the stricter list: only rows whose given label is unlikely
        ranked = [index for index in ranked if probs[index, labels[index]] < config.max_given_probability]
    quality = cleanlab.rank.get_label_quality_scores(compact, kept, method=config.ranked_by)
    numbers = rows.numbers or tuple(range(1, len(rows) + 1))
    issues = []
    for rank, index in enumerate(ranked, 1):
        others = kept[index].copy()
        others[compact[index]] = -1.0  # the suggestion is the most probable class other than the given one
        suggested = int(present[int(np.argmax(others))])
        given = int(labels[index])
        issues.append(
            {
                "rank": rank,
                "row": int(numbers[index]),
                "index": int(index),
                "given": label_names[given],
                "suggested": label_names[suggested],
                "label_quality": round(float(quality[index]), 6),
                "given_probability": round(float(probs[index, given]), 6),
                "suggested_probability": round(float(probs[index, suggested]), 6),
                "text": rows.texts[index],
            }
        )
    return issues, _summary(labels, probs, issues, label_names, config)


def _summary(
    labels: np.ndarray, probs: np.ndarray, issues: list[dict[str, Any]], label_names: list[str], config: AuditConfig
) -> dict[str, Any]:
    counts = Counter(labels.tolist())
    given = Counter(issue["given"] for issue in issues)
    suggested = Counter(issue["suggested"] for issue in issues)
    method = f"{config.family} per fold" if config.family is not None else config.method
    return {
        "rows": int(len(labels)),
        "issues": len(issues),
        "issue_share": round(len(issues) / max(len(labels), 1), 6),
        "folds": config.folds,
        "method": method,
        "out_of_sample_accuracy": round(float((probs.argmax(axis=1) == labels).mean()), 6),
        "per_class": [
            {
                "label": name,
                "rows": counts.get(index, 0),
                "issues": given.get(name, 0),
                "suggested": suggested.get(name, 0),
            }
            for index, name in enumerate(label_names)
        ],
    }


# ---------------------------------------------------------------- outputs


def _write_outputs(
    out: Path, summary: dict[str, Any], issues: list[dict[str, Any]], label_names: list[str], shown: int
) -> list[Path]:
    """issues.csv, issues.jsonl, audit.html and audit.json in `out`, each written atomically."""
    from textcls.reporting.html import build_audit_page, write_report

    make_folder(out)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=ISSUE_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(issues)
    files = [
        write_text_atomic(out / ISSUES_CSV, table.getvalue()),
        write_text_atomic(
            out / ISSUES_JSONL,
            "".join(json.dumps({k: issue[k] for k in ISSUE_FIELDS}, ensure_ascii=False) + "\n" for issue in issues),
        ),
        write_report(out / PAGE_FILE, build_audit_page(summary, issues[:shown], label_names)),
    ]
    summary["files"] = [str(path) for path in [*files, out / SUMMARY_FILE]]
    files.append(write_json(out / SUMMARY_FILE, summary))
    return files


@dataclass(frozen=True)
class _FixPlan:
    source: Path  # the data file whose labels are corrected
    destination: Path  # the corrected copy: a file, or a folder when `folder` is set
    folder: Path | None  # the input data folder copied whole (its other files unchanged)


def _fix_plan(data_config: DataConfig, rows: Split, out: Path, fix_out: str | Path | None) -> _FixPlan:
    """Where the corrected copy goes; refused before any work when it would replace an input."""
    source = Path(rows.source)
    if not source.is_file():
        raise DataError(
            f"--fix writes a corrected copy of a local data file, found {rows.source!r}; save the data as CSV or "
            "JSON Lines and audit that, or drop --fix"
        )
    folder = Path(data_config.data) if data_config.data and Path(data_config.data).is_dir() else None
    default = out / (f"{folder.resolve().name}.fixed" if folder else f"{source.stem}.fixed{source.suffix}")
    destination = Path(fix_out) if fix_out is not None else default
    if folder is None and destination.suffix.lower() != source.suffix.lower():
        raise ConfigError(
            f"--fix-out {destination}: expected a {source.suffix} file like the input {source}, found "
            f"{destination.suffix or 'no suffix'!r}; pass --fix-out NAME{source.suffix}"
        )
    for path in (source, folder):
        if path is not None and _overlaps(destination, path):
            raise ConfigError(
                f"--fix-out {destination} is the input data {path} (or inside it); writing it would replace the "
                "input: pass another --fix-out"
            )
    if folder is not None and destination.exists():
        mine = {item.name for item in folder.iterdir()}
        if not destination.is_dir() or any(item.name not in mine for item in destination.iterdir()):
            raise ConfigError(
                f"--fix-out {destination} exists and is not an earlier corrected copy of {folder}; replacing it "
                "would lose its files: pass a new --fix-out"
            )
    relabelled_text(source, data_config.label_column, {})  # an unsupported format fails here, before the audit
    return _FixPlan(source, destination, folder)


def _overlaps(destination: Path, source: Path) -> bool:
    """Whether writing `destination` would write `source` or into it (links and spellings seen through)."""
    written, read = destination.expanduser().resolve(), source.expanduser().resolve()
    if written.exists() and read.exists() and written.samefile(read):
        return True
    return written == read or (read.is_dir() and written.is_relative_to(read))


def _write_fixed(
    plan: _FixPlan, rows: Split, dataset: LoadedData, issues: list[dict[str, Any]], label_column: str
) -> Path:
    """The corrected copy: the data file with each issue's row given its suggested label, written as the
    file writes labels (a number counting from its base, or the name)."""
    index = {name: i for i, name in enumerate(dataset.label_names)}

    def cell(name: str) -> str | int:
        return name if dataset.label_base is None else index[name] + dataset.label_base

    text = relabelled_text(plan.source, label_column, {issue["row"]: cell(issue["suggested"]) for issue in issues})
    if plan.folder is None:
        make_folder(plan.destination.parent)
        write_text_atomic(plan.destination, text)
    else:
        make_folder(plan.destination.parent)
        with work_folder(plan.destination.parent, plan.destination.name) as work_dir:
            for item in plan.folder.iterdir():
                if item.is_file() and item.resolve() != plan.source.resolve():
                    shutil.copy2(item, work_dir / item.name)
            (work_dir / plan.source.name).write_text(text, encoding="utf-8")
            replace_folder(work_dir, plan.destination)
    log.info("%d labels corrected in %s", len(issues), plan.destination)
    return plan.destination
