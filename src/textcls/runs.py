"""Run folders: `train` writes one, `load` and `evaluate` read one. A run folder describes itself.

Layout of `runs/NAME/`:
    textcls.json   family, configs, label names, data fingerprint, library versions
    model/         the weights (safetensors) and tokenizer
    metrics.json   per-epoch dev metrics and the final dev evaluation

Example:
    >>> result = train(data="../shared/data/ag_news", out="runs/quick", max_train_samples=500, epochs=1)  # doctest: +SKIP
    >>> clf = load("runs/quick")                                                                         # doctest: +SKIP
    >>> clf.predict(["Stocks fell sharply."])                                                            # doctest: +SKIP
    ['Business']
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textcls.config import DataConfig, PredictConfig, TrainConfig, from_dict, to_dict
from textcls.data import load_data
from textcls.errors import RunFolderError, TextclsError
from textcls.evaluation import classification_metrics
from textcls.files import write_json
from textcls.models.base import Classifier, family_class

log = logging.getLogger("textcls")

RUN_FILE = "textcls.json"
MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
FORMAT_VERSION = 1


@dataclass
class TrainResult:
    """What `train` produced. `classifier` is None on the non-main processes of a distributed run."""

    run_dir: Path
    metrics: dict[str, Any]
    classifier: Classifier | None


def library_versions() -> dict[str, str]:
    """Versions that decide whether a run folder can be reproduced."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("textcls", "torch", "transformers", "datasets", "accelerate", "scikit-learn", "tokenizers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions


def split_options(options: dict[str, Any]) -> tuple[DataConfig, TrainConfig]:
    """Route keyword options to `DataConfig` or `TrainConfig` by field name; unknown names are an error."""
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - data_fields - train_fields)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; expected fields of DataConfig or TrainConfig")
    # `seed` belongs to both: one seed drives the split, the sampling and the training.
    data_options = {k: v for k, v in options.items() if k in data_fields}
    train_options = {k: v for k, v in options.items() if k in train_fields}
    return DataConfig(**data_options), TrainConfig(**train_options)


def train(
    data: str | None = None,
    out: str | Path = "runs/latest",
    *,
    data_config: DataConfig | None = None,
    train_config: TrainConfig | None = None,
    overwrite: bool = False,
    **options: Any,
) -> TrainResult:
    """Fine-tune a classifier and write a run folder at `out`.

    Pass either ready configs or keyword options named like their fields
    (`train(data="data/ag_news", epochs=1, max_train_samples=1000)`).
    """
    from accelerate import PartialState

    if data_config is None or train_config is None:
        built_data, built_train = split_options({"data": data, **options} if data is not None else options)
        data_config = data_config or built_data
        train_config = train_config or built_train

    state = PartialState()  # joins the process group under torchrun / accelerate launch
    run_dir = Path(out)
    partial_dir = run_dir.with_name(f".{run_dir.name}.partial")
    if run_dir.exists() and not overwrite:
        raise TextclsError(f"run folder {run_dir} already exists; pass --overwrite or choose another --out")
    if state.is_main_process:
        log.info("data: %s", to_dict(data_config))
        log.info("training: %s", to_dict(train_config))
    # Bad data fails here, before anything is written.
    dataset = load_data(data_config, splits=("train", "dev"))
    train_split, dev_split = dataset.splits["train"], dataset.splits["dev"]
    if state.is_main_process:
        log.info("rows: train %d, dev %d; labels %s", len(train_split), len(dev_split), dataset.label_names)
        if partial_dir.exists() and not train_config.resume:
            log.info("removing the leftovers of an interrupted run in %s (pass --resume to continue it)", partial_dir)
            shutil.rmtree(partial_dir)
        partial_dir.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()

    family = family_class(train_config.family)
    classifier, summary = family.fit(
        train_split, dev_split, dataset.label_names, train_config, partial_dir / "checkpoints"
    )
    if not state.is_main_process:
        state.wait_for_everyone()
        return TrainResult(run_dir, {}, None)

    dev_probs = classifier.predict_proba(dev_split.texts, batch_size=train_config.eval_batch_size, progress=True)
    metrics = {"train": summary, "dev": classification_metrics(dev_split.labels, dev_probs, dataset.label_names)}

    classifier.save(partial_dir / MODEL_DIR)
    info = {
        "format_version": FORMAT_VERSION,
        "family": classifier.family,
        "label_names": dataset.label_names,
        "max_length": getattr(classifier, "max_length", train_config.max_length),
        "num_parameters": classifier.num_parameters(),
        "train_config": to_dict(train_config),
        "data_config": to_dict(data_config),
        "data": {
            "fingerprint": dataset.fingerprint,
            "sources": {name: split.source for name, split in dataset.splits.items()},
            "rows": {name: len(split) for name, split in dataset.splits.items()},
            "skipped_rows": dataset.skipped_rows,
        },
        "versions": library_versions(),
        "hardware": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "command": sys.argv,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(partial_dir / RUN_FILE, info)
    write_json(partial_dir / METRICS_FILE, metrics)
    _write_dev_report(partial_dir, Scored(
        classifier, "dev", dev_split.source, dataset.fingerprint, dev_split.texts, dev_split.labels, dev_probs
    ))
    shutil.rmtree(partial_dir / "checkpoints", ignore_errors=True)
    _move_into_place(partial_dir, run_dir)
    classifier.run_dir = run_dir
    state.wait_for_everyone()
    return TrainResult(run_dir, metrics, classifier)


def _write_dev_report(run_dir: Path, scored: Scored) -> None:
    """report.html in the run folder; a missing plotting extra costs the report, not the run."""
    try:
        from textcls.report import write_run_report

        write_run_report(run_dir, scored, run_dir / REPORT_FILE)
    except (ImportError, TextclsError) as error:
        log.warning("no %s written (%s); pip install 'textcls[plots]' for it", REPORT_FILE, error)


def _move_into_place(partial_dir: Path, run_dir: Path) -> None:
    """Rename the finished run over `run_dir`; an old run is removed only once the new one is complete."""
    old = run_dir.with_name(f".{run_dir.name}.old")
    if run_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(run_dir, old)
    os.replace(partial_dir, run_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """The parsed `textcls.json` of a run folder, with a clear error when it is not one."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        partial = Path(run_dir).with_name(f".{Path(run_dir).name}.partial")
        hint = f"; an interrupted run is in {partial}, continue it with --resume" if partial.exists() else ""
        raise RunFolderError(f"{run_dir} is not a textcls run folder: expected {RUN_FILE} in it{hint}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{path} is not valid JSON ({error}); the run folder is damaged, train again") from error
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise RunFolderError(
            f"{path} has format_version {info['format_version']}, this textcls reads up to {FORMAT_VERSION}; "
            "upgrade textcls"
        )
    return info


def load(run_dir: str | Path, predict_config: PredictConfig | None = None) -> Classifier:
    """Rebuild the classifier of a run folder on `predict_config.backend`; needs nothing but the folder.

    Example:
        >>> clf = load("runs/agnews")                                      # doctest: +SKIP
        >>> clf.predict(["Stocks fell."])                                  # doctest: +SKIP
        >>> fast = load("runs/agnews", PredictConfig(backend="onnx-int8"))  # after `textcls export --int8`
    """
    from textcls.runtime import load_for_backend

    info = read_run_info(run_dir)
    predict_config = predict_config or PredictConfig()
    classifier = load_for_backend(Path(run_dir), info, predict_config)
    classifier.run_dir = Path(run_dir)
    classifier.info = info
    classifier.predict_config = predict_config
    return classifier


@dataclass
class Scored:
    """A run's predictions on one split: gold labels and probabilities in the model's label order."""

    classifier: Classifier
    split: str
    source: str
    fingerprint: str
    texts: list[str]
    labels: list[int]
    probs: Any  # np.ndarray (rows, classes)


def score(
    run_dir: str | Path,
    data_config: DataConfig | None = None,
    split: str = "test",
    predict_config: PredictConfig | None = None,
) -> Scored:
    """Predict a split of `data_config` (default: the data the run was trained on) with a run folder.

    `split="test"` falls back to dev when the data has no test split.
    """
    classifier = load(run_dir, predict_config)
    if data_config is None:
        data_config = from_dict(DataConfig, classifier.info["data_config"])
    dataset = load_data(data_config, splits=("dev", "test"), require_train=False)
    chosen = split
    if chosen not in dataset.splits:
        if split == "test" and "dev" in dataset.splits:
            log.warning("the data has no test split; evaluating on dev instead")
            chosen = "dev"
        else:
            raise TextclsError(f"split {split!r} not found; the data has {sorted(dataset.splits)}")
    rows = dataset.splits[chosen]
    _check_labels(classifier.label_names, dataset.label_names)
    # Map the data's label indices onto the model's label order (same names, maybe another order).
    index = {name: i for i, name in enumerate(classifier.label_names)}
    gold = [index[dataset.label_names[label]] for label in rows.labels]
    probs = classifier.predict_proba(rows.texts, batch_size=classifier.predict_config.batch_size, progress=True)
    return Scored(classifier, chosen, rows.source, dataset.fingerprint, rows.texts, gold, probs)


def evaluate(
    run_dir: str | Path,
    data_config: DataConfig | None = None,
    split: str = "test",
    predict_config: PredictConfig | None = None,
) -> dict[str, Any]:
    """Score a run folder on a split (see `score`); writes `eval_<split>.json` and returns the metrics.

    A backend other than torch writes `eval_<split>.<backend>.json`, so its figures sit beside torch's.
    """
    scored = score(run_dir, data_config, split, predict_config)
    metrics = classification_metrics(scored.labels, scored.probs, scored.classifier.label_names)
    backend = scored.classifier.predict_config.backend
    metrics.update({"split": scored.split, "source": scored.source, "fingerprint": scored.fingerprint, "backend": backend})
    suffix = "" if backend == "torch" else f".{backend}"
    write_json(Path(run_dir) / f"eval_{scored.split}{suffix}.json", metrics)
    return metrics


def _check_labels(model_labels: list[str], data_labels: list[str]) -> None:
    unknown = [name for name in data_labels if name not in model_labels]
    if unknown:
        raise TextclsError(
            f"the data has labels {unknown} that the model never saw; expected a subset of {model_labels}; "
            "pass the classes file the model was trained with (--label-names-file)"
        )
