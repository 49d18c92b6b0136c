"""Training, loading and scoring runs: `train` writes a run folder, `load` reads one into a `Run`.

The folder's layout and files belong to `textcls.runfolder`; this module decides what goes in them.

Example:
    >>> result = train(data="data/ag_news", out="runs/quick", max_train_samples=500, epochs=1)  # doctest: +SKIP
    >>> run = load("runs/quick")                                                               # doctest: +SKIP
    >>> run.predict(["Stocks fell sharply."]), run.metrics["dev"]["accuracy"]                  # doctest: +SKIP
    (['Business'], 0.86)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from textcls import machine, runfolder
from textcls.config import (
    AUTO_BACKEND,
    BACKEND_BATCH_SIZE,
    DataConfig,
    PredictConfig,
    TrainConfig,
    from_dict,
    split_options,
    to_dict,
)
from textcls.data import imbalance, multilabel
from textcls.data.loading import KnownData, LabelRows, LoadedData, load_data, row_labels
from textcls.data.texts import check_texts
from textcls.errors import ConfigError, RunFolderError, StorageError, TextclsError
from textcls.families import FEW_LABELS_FAMILY, FEW_LABELS_ROWS
from textcls.files import make_folder, storage_error, write_json
from textcls.inference.backends import check_classifier_run, load_predictor
from textcls.models.base import EXPLAIN, Classifier, Predictor, check_processes, check_training_options, family_class
from textcls.reporting.explanations import Explanation
from textcls.reporting.metrics import classification_metrics, multilabel_metrics
from textcls.runs.card import write_model_card
from textcls.training import tracking

log = logging.getLogger(__name__)
DATA_SOURCES = ("data", "train_file", "dev_file", "test_file")  # the DataConfig fields that name where rows come from
SAMPLING = ("max_train_samples", "max_eval_samples")  # the DataConfig fields that cut a run's own data down


@dataclass
class TrainResult:
    """What `train` produced. `classifier` is None on the non-main processes of a distributed run."""

    run_dir: Path
    metrics: dict[str, Any]
    classifier: Classifier | None


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
    from textcls.training.device import for_this_device, process_state

    if data_config is None or train_config is None:
        built_data, built_train = split_options({"data": data, **options} if data is not None else options)
        data_config = data_config or built_data
        train_config = train_config or built_train

    state = process_state()  # joins the process group under torchrun / accelerate launch
    family = family_class(train_config.family)
    check_processes(family, state.num_processes)
    # the defaults that depend on the device (batching, lr, workers, compile) are fixed here, so that
    # textcls.json records the values the run trained with, not "the default"
    train_config = for_this_device(train_config)
    run_dir = Path(out)
    runfolder.check_out(run_dir, overwrite)
    if state.is_main_process:
        tracking.check_services(train_config.report_to)  # an unreachable tracking server fails before training
        log.info("data: %s", to_dict(data_config))
        log.info("training: %s", to_dict(train_config))
    # Bad data fails here, before anything is written.
    dataset = load_data(data_config, splits=("train", "dev"))
    train_config = _check_training_choices(family, train_config, dataset)
    family.check_sources(train_config)  # a model out of reach fails here, leaving no folder behind
    with runfolder.writing(run_dir, overwrite, lock=state.is_main_process) as partial_dir:
        return _train(state, family, dataset, data_config, train_config, run_dir, partial_dir)


def _train(
    state: Any,
    family: type[Classifier],
    dataset: LoadedData,
    data_config: DataConfig,
    train_config: TrainConfig,
    run_dir: Path,
    partial_dir: Path,
    job: TrainingJob | None = None,
) -> TrainResult:
    """`train` once `run_dir` is claimed: fit in `partial_dir`, score dev, move into place.

    A `job` (`textcls distill`) adds to the resume identity, and once the partial folder is ready makes the
    rows to train on (and what textcls.json adds) from it."""
    train_split, dev_split = dataset.splits["train"], dataset.splits["dev"]
    identity = {
        "family": train_config.family,
        "data_fingerprint": dataset.fingerprint,
        "label_names": dataset.label_names,
        # where the run reports to does not change its checkpoints: a resumed run may report elsewhere
        "train_config": {k: v for k, v in to_dict(train_config).items() if k != "report_to"},
        **(job.identity if job is not None else {}),
    }
    if train_config.resume and partial_dir.exists():
        # before anything is removed: a checkpoint of other rows or settings is refused, not resumed or deleted
        problem = runfolder.resume_problem(partial_dir, identity)
        if problem is not None:
            raise TextclsError(
                f"cannot resume {partial_dir}: its checkpoints were trained with other data or settings: {problem}; "
                "repeat the interrupted command's options with --resume, or drop --resume to start over"
            )
    if state.is_main_process:
        log.info("rows: train %d, dev %d; labels %s", len(train_split), len(dev_split), dataset.label_names)
        if partial_dir.exists() and not train_config.resume:
            log.info("removing the leftovers of an interrupted run in %s (pass --resume to continue it)", partial_dir)
            shutil.rmtree(partial_dir)
        make_folder(partial_dir)
        with _storage_errors(partial_dir):
            runfolder.write_resume_identity(partial_dir, identity)
    state.wait_for_everyone()
    extra_info: dict[str, Any] = {}
    if job is not None:
        with _storage_errors(partial_dir):
            dataset, extra_info = job.prepare(partial_dir)

    report_to = train_config.report_to if state.is_main_process else ()
    with tracking.tracking(report_to, partial_dir, run_dir.name) as tracker:
        tracker.log_params(tracking.config_params(data=to_dict(data_config), train=to_dict(train_config)))
        fitted = _fit_and_score(state, family, dataset, data_config, train_config, run_dir, partial_dir, extra_info)
        if fitted is None:  # a non-main process of a distributed run
            state.wait_for_everyone()
            return TrainResult(run_dir, {}, None)
        classifier, metrics = fitted
        tracker.log_outcome(metrics, int(metrics["train"].get("global_step") or 0), partial_dir)
        if "mlflow" in report_to:
            _log_model_to_mlflow(partial_dir)
    runfolder.move_into_place(partial_dir, run_dir)
    state.wait_for_everyone()
    return TrainResult(run_dir, metrics, classifier)


@dataclass(frozen=True)
class TrainingJob:
    """What a job built on `train`'s run-folder flow adds: `identity`, recorded for resume beside the data and
    settings; `prepare(partial_dir)`, run once the partial folder is ready (a resumed one keeps its files),
    returns the data to train on and the entries textcls.json adds."""

    identity: dict[str, Any]
    prepare: Callable[[Path], tuple[LoadedData, dict[str, Any]]]


def _log_model_to_mlflow(partial_dir: Path) -> None:
    """Log the finished run as an MLflow pyfunc model in the open MLflow run; a failure is a warning, never a
    lost run (the run folder, and `textcls export --format mlflow` later, still have everything)."""
    from textcls.runs.export import log_mlflow_model

    try:
        log_mlflow_model(partial_dir, name="model")
    except Exception as error:
        log.warning("could not log the model to MLflow (%s: %s); the run is kept", type(error).__name__, error)


def _fit_and_score(
    state: Any,
    family: type[Classifier],
    dataset: LoadedData,
    data_config: DataConfig,
    train_config: TrainConfig,
    run_dir: Path,
    partial_dir: Path,
    extra_info: dict[str, Any] | None = None,
) -> tuple[Classifier, dict[str, Any]] | None:
    """Fit in `partial_dir`, score dev and write the run's files there (textcls.json with `extra_info`);
    None on a non-main process."""
    train_split, dev_split = dataset.splits["train"], dataset.splits["dev"]
    with _storage_errors(partial_dir):
        classifier, summary = family.fit(
            train_split, dev_split, dataset.label_names, train_config, runfolder.checkpoint_dir(partial_dir)
        )
    if not state.is_main_process:
        return None

    dev_probs = classifier.fit_dev_probabilities
    if dev_probs is None or len(dev_probs) != len(dev_split.texts):
        dev_probs = classifier.predict_proba(dev_split.texts, batch_size=train_config.eval_batch_size, progress=True)
    else:
        log.info("dev scored by the final model's epoch-end evaluation")
    dev_gold = gold_labels(dev_split.labels, len(dataset.label_names), dataset.multi_label)
    thresholds = _tuned_thresholds(dev_gold, dev_probs, dataset.label_names) if dataset.multi_label else None
    metrics = {"train": summary, "dev": split_metrics(dev_gold, dev_probs, dataset.label_names, thresholds)}

    with _storage_errors(partial_dir):
        classifier.save(runfolder.model_dir(partial_dir))
        info = {**_run_info(classifier, dataset, data_config, train_config, thresholds), **(extra_info or {})}
        runfolder.write_run(partial_dir, info, metrics)
    # named after its final folder: the report shows the run's name, not the partial folder's
    run = Run(
        run_dir,
        runfolder.read_info(partial_dir),
        metrics,
        PredictConfig(backend="torch"),
        classifier,
        thresholds=thresholds,
    )
    scored = Scored(run, "dev", dev_split.source, dataset.fingerprint, dev_split.texts, dev_gold, dev_probs)
    _write_dev_report(scored, runfolder.report_path(partial_dir))
    write_model_card(partial_dir, run_dir.name)
    return classifier, metrics


def gold_labels(labels: Sequence[Any], num_labels: int, multi_label: bool) -> Any:
    """Gold labels as metrics take them: class indices, or a (rows, labels) 0/1 matrix for multi-label."""
    return multilabel.multi_hot(labels, num_labels) if multi_label else list(labels)


def split_metrics(
    gold: Any, probs: np.ndarray, label_names: Sequence[str], thresholds: np.ndarray | None
) -> dict[str, Any]:
    """The full evaluation of one split: multi-label (decided at `thresholds`) when they are given."""
    if thresholds is None:
        return classification_metrics(gold, probs, label_names)
    return multilabel_metrics(gold, probs, label_names, thresholds)


def _tuned_thresholds(gold: np.ndarray, probs: np.ndarray, label_names: Sequence[str]) -> np.ndarray:
    """Per-label thresholds tuned on dev, logged beside the micro-F1 they reach and the one at 0.5."""
    thresholds = multilabel.tune_thresholds(gold, probs)
    at_half = multilabel_metrics(gold, probs, label_names, np.full(len(label_names), 0.5))["micro_f1"]
    tuned = multilabel_metrics(gold, probs, label_names, thresholds)["micro_f1"]
    log.info(
        "thresholds tuned per label on dev: %s; dev micro-F1 %.4f (at 0.5 for every label: %.4f); --threshold "
        "overrides them at predict time",
        ", ".join(f"{n} {t:.2f}" for n, t in zip(label_names, thresholds)),
        tuned,
        at_half,
    )
    return thresholds


def _check_training_choices(family: type[Classifier], config: TrainConfig, dataset: LoadedData) -> TrainConfig:
    """Refuse options the family lacks and bad class weights before anything is written; choose the
    metric for the best epoch (recorded in textcls.json); warn about dev classes too small to score."""
    check_training_options(family, config, dataset.multi_label)
    train_labels, label_names = dataset.splits["train"].labels, dataset.label_names
    imbalance.class_weights(config.class_weights, train_labels, label_names)  # a bad name or file fails here
    small = imbalance.small_classes(dataset.splits["dev"].labels, label_names)
    if small:
        log.warning(
            "dev has fewer than %d rows of %s: their recall and F1 move by %s points a row; add dev rows",
            imbalance.MIN_DEV_ROWS_PER_CLASS,
            ", ".join(f"{name} ({rows})" for name, rows in small.items()),
            "5 or more",
        )
    _suggest_few_labels_family(config, train_labels, label_names)
    return imbalance.with_metric(config, train_labels, label_names)


def _suggest_few_labels_family(config: TrainConfig, labels: LabelRows, label_names: Sequence[str]) -> None:
    """Warn when a class has few labelled train rows and the family is not the one made for few labels."""
    few = imbalance.small_classes(labels, label_names, minimum=FEW_LABELS_ROWS)
    if few and config.family != FEW_LABELS_FAMILY:
        log.warning(
            "train has fewer than %d labelled rows of %s: the %s family learns from few labels (often much "
            "better than fine-tuning a classifier); pass --family %s",
            FEW_LABELS_ROWS,
            ", ".join(f"{name} ({rows})" for name, rows in few.items()),
            FEW_LABELS_FAMILY,
            FEW_LABELS_FAMILY,
        )


@contextlib.contextmanager
def _storage_errors(work_dir: Path) -> Iterator[None]:
    """Turn a failed write (disk full, read-only) during training into a `StorageError` that says how
    to go on; the last complete checkpoint stays in the partial folder for --resume."""
    try:
        yield
    except Exception as error:
        failure = storage_error(error, work_dir)
        if failure is None:
            raise
        raise StorageError(
            failure.errno,
            f"{failure}; then run the same command with --resume to continue from the last complete checkpoint",
        ) from error


def _absolute_paths(config: DataConfig) -> DataConfig:
    """`config` with every local path made absolute, so the run's data is found from any folder."""
    paths: dict[str, Any] = {}  # field name -> value, for dataclasses.replace
    for name in (*DATA_SOURCES, "label_names_file"):
        value = getattr(config, name)
        if value is not None and Path(value).expanduser().exists():
            paths[name] = str(Path(value).expanduser().resolve())
    return dataclasses.replace(config, **paths)


def _run_info(
    classifier: Classifier,
    dataset: LoadedData,
    data_config: DataConfig,
    train_config: TrainConfig,
    thresholds: np.ndarray | None = None,
) -> dict[str, Any]:
    """What `textcls.json` says about a finished run: enough to load, reproduce and audit it.

    `data_config` holds absolute paths (what `evaluate` reads); `data_config_as_given` the command's own.
    A multi-label run also keeps the per-label thresholds tuned on dev.
    """
    multi = (
        {}
        if thresholds is None
        else {
            "multi_label": True,
            "thresholds": multilabel.thresholds_record(thresholds, dataset.label_names),
        }
    )
    return {
        "family": classifier.family,
        "label_names": dataset.label_names,
        **multi,
        "max_length": classifier.max_length,
        "num_parameters": classifier.num_parameters(),
        "train_config": to_dict(train_config),
        # the encoder's origin when it is a `textcls pretrain` run (its weights were checked on load)
        "encoder_from": _encoder_origin(train_config.model),
        "data_config": to_dict(_absolute_paths(data_config)),
        "data_config_as_given": to_dict(data_config),
        "data": {
            "fingerprint": dataset.fingerprint,
            "sources": {name: split.source for name, split in dataset.splits.items()},
            "rows": {name: len(split) for name, split in dataset.splits.items()},
            "skipped_rows": dataset.skipped_rows,
            # how integer labels indexed label_names (0, 1, or null: by name); evaluate reads new data alike
            "label_base": dataset.label_base,
            # the columns each text was joined from (named or found); evaluate and predict read new data alike
            "text_columns": list(dataset.text_columns) if dataset.text_columns else None,
        },
        "versions": machine.library_versions(),
        "hardware": machine.hardware(),
        "command": sys.argv,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _encoder_origin(model: str | None) -> str | None:
    """The `textcls pretrain` run the encoder came from, as an absolute path, or None."""
    run_dir = runfolder.pretraining_run(model) if model is not None else None
    return str(run_dir.resolve()) if run_dir is not None else None


def _write_dev_report(scored: Scored, path: Path) -> None:
    """The dev report in the run folder; a missing plotting extra or a failure while drawing costs the
    report, never the trained run."""
    from textcls.reporting import plots

    if not plots.available():
        log.warning("no %s written (matplotlib is missing); %s for it", path.name, plots.EXTRA_HINT)
        return
    try:
        write_report(scored, path)
    except Exception as error:  # the run is saved and scored: a report that fails to draw must not lose it
        log.warning("no %s written: %s: %s; the run is complete without it", path.name, type(error).__name__, error)


@dataclass(frozen=True)
class Run:
    """A loaded run folder: where it is, what it says about itself, and its model on a backend.

    It predicts and explains like its classifier, so `textcls.load(path).predict(texts)` works.
    """

    run_dir: Path
    info: dict[str, Any]
    metrics: dict[str, Any] | None
    predict_config: PredictConfig  # resolved: never backend auto
    classifier: Predictor
    backend_choice: dict[str, Any] | None = None  # what `--backend auto` measured or found cached
    # multi-label runs: the score from which each label is predicted (saved in the run, or `--threshold`)
    thresholds: np.ndarray | None = None

    @property
    def label_names(self) -> list[str]:
        return self.classifier.label_names

    @property
    def family(self) -> str:
        return self.classifier.family

    @property
    def capabilities(self) -> frozenset[str]:
        return self.classifier.capabilities

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None

    @property
    def _batch_size(self) -> int:
        """Texts per model call by default: the resolved backend's (a backend other than auto always has one)."""
        return self.predict_config.batch_size or BACKEND_BATCH_SIZE[self.predict_config.backend]

    @property
    def record(self) -> runfolder.RunRecord:
        return runfolder.RunRecord(self.run_dir, self.info, self.metrics)

    def predict_proba(self, texts: Iterable[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Class probabilities (rows, classes) in input order; `batch_size` defaults to the backend's."""
        texts = check_texts(texts)
        return self.classifier.predict_proba(texts, batch_size=batch_size or self._batch_size, progress=progress)

    def predict(self, texts: Iterable[str], batch_size: int | None = None) -> list[str] | list[list[str]]:
        """Most probable label name per text; multi-label: the names of every label that reaches its threshold."""
        texts = check_texts(texts)
        if self.thresholds is None:
            return self.classifier.predict(texts, batch_size=batch_size or self._batch_size)
        decisions = multilabel.decide(self.predict_proba(texts, batch_size), self.thresholds)
        return multilabel.label_sets(decisions, self.label_names)

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        """The classifier's explanation of `text` (see `Predictor.explain`)."""
        return self.classifier.explain(text, layer=layer, head=head)

    def num_parameters(self) -> int:
        return self.classifier.num_parameters()


def load(run_dir: str | Path, predict_config: PredictConfig | None = None) -> Run:
    """Load a run folder with its model on `predict_config.backend`; needs nothing but the folder.

    The default backend, auto, is the fastest this machine runs that agrees with torch fp32: timed
    once (a few seconds) and remembered in `RUN/backends.json` (see `textcls.inference.auto`).

    Example:
        >>> run = load("runs/agnews")                                      # doctest: +SKIP
        >>> run.predict(["Stocks fell."]), run.predict_config.backend       # doctest: +SKIP
        (['Business'], 'onnx-int8')
        >>> exact = load("runs/agnews", PredictConfig(backend="torch"))     # force one
    """
    record = runfolder.read_record(run_dir)
    predict_config = predict_config or PredictConfig()
    thresholds = _run_thresholds(record, predict_config)
    if predict_config.backend == AUTO_BACKEND:
        from textcls.inference.auto import choose

        check_classifier_run(record.run_dir, record.info)
        choice = choose(record.run_dir, record.info, predict_config)
        return Run(
            record.run_dir, record.info, record.metrics, choice.config, choice.predictor, choice.describe(), thresholds
        )
    classifier = load_predictor(record.run_dir, record.info, predict_config)
    return Run(record.run_dir, record.info, record.metrics, predict_config, classifier, thresholds=thresholds)


def _run_thresholds(record: runfolder.RunRecord, config: PredictConfig) -> np.ndarray | None:
    """A multi-label run's thresholds (saved, overridden by `config.threshold`); None for a single-label run,
    which refuses `--threshold`."""
    if not record.info.get("multi_label"):
        if config.threshold is not None:
            raise ConfigError(
                f"threshold: expected a multi-label run for --threshold, found {record.run_dir}, trained single-label "
                "(it predicts the most probable label); drop --threshold"
            )
        return None
    return multilabel.run_thresholds(record.info.get("thresholds"), config.threshold, record.info["label_names"])


@dataclass
class Scored:
    """A run's predictions on one split: gold labels and probabilities in the model's label order."""

    run: Run
    split: str
    source: str
    fingerprint: str
    texts: list[str]
    labels: Any  # list[int], or for a multi-label run np.ndarray (rows, labels) 0/1
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
    run = load(run_dir, predict_config)
    if data_config is None:
        if "data_config" not in run.info:
            raise RunFolderError(
                f"{run.run_dir / runfolder.RUN_FILE} does not record its data; pass --data (or --test FILE)"
            )
        data_config = from_dict(DataConfig, run.info["data_config"])
    if not _same_sources({name: getattr(data_config, name) for name in DATA_SOURCES}, run.info.get("data_config")):
        # new data: one file is the split to score. The run's own one file stays what training made of it,
        # train with dev carved off: scored whole, its dev would be mostly training rows
        data_config = _one_file_is_the_split(data_config, split)
    known = KnownData(run.label_names, run.info.get("data", {}).get("label_base"), run_text_columns(run.info))
    dataset = load_data(data_config, splits=("dev", "test"), require_train=False, known=known)
    chosen = split
    if chosen not in dataset.splits:
        if split == "test" and "dev" in dataset.splits:
            log.warning("the data has no test split; evaluating on dev instead")
            chosen = "dev"
        else:
            raise TextclsError(f"split {split!r} not found; the data has {sorted(dataset.splits)}")
    rows = dataset.splits[chosen]
    _check_labels(run.label_names, dataset.label_names)
    if dataset.multi_label != run.multi_label:
        trained = "multi-label" if run.multi_label else "single-label"
        raise TextclsError(
            f"{run.run_dir} was trained {trained}, found data read {'with' if dataset.multi_label else 'without'} "
            f"--multi-label; {'pass' if run.multi_label else 'drop'} --multi-label"
        )
    # Map the data's label indices onto the model's label order (same names, maybe another order).
    index = {name: i for i, name in enumerate(run.label_names)}
    mapped = [tuple(index[dataset.label_names[label]] for label in row_labels(row)) for row in rows.labels]
    gold = gold_labels(mapped, len(run.label_names), True) if run.multi_label else [labels[0] for labels in mapped]
    probs = run.predict_proba(rows.texts, progress=True)
    return Scored(run, chosen, rows.source, dataset.fingerprint, rows.texts, gold, probs)


def run_text_columns(info: dict[str, Any]) -> tuple[str, ...] | None:
    """The columns a run's texts were joined from: as recorded with its data, else as its data config names them."""
    columns = info.get("data", {}).get("text_columns") or (info.get("data_config") or {}).get("text_columns")
    return tuple(columns) if columns else None


def _same_sources(sources: dict[str, Any], trained_with: dict[str, Any] | None) -> bool:
    """Whether `sources` (DATA_SOURCES -> value) name the rows the run was trained on (its recorded
    `data_config`, where local paths are absolute)."""
    if not trained_with:
        return False

    def where(value: Any) -> Any:
        local = Path(value).expanduser() if isinstance(value, str) else None
        return str(local.resolve()) if local is not None and local.exists() else value

    return all(where(sources.get(name)) == where(trained_with.get(name)) for name in DATA_SOURCES)


def _one_file_is_the_split(data_config: DataConfig, split: str) -> DataConfig:
    """`--data FILE` names the file to score: as training data it would be train, with dev carved from it.

    Example:
        >>> scored = _one_file_is_the_split(DataConfig(data=__file__), "test")   # any existing file
        >>> scored.data, scored.test_file == __file__
        (None, True)
    """
    if data_config.data is None or not Path(data_config.data).expanduser().is_file():
        return data_config
    path = Path(data_config.data).expanduser()
    classes = path.parent / "classes.txt"
    names_file = data_config.label_names_file or (str(classes) if classes.is_file() else None)
    split_file: dict[str, Any] = {f"{'dev' if split == 'dev' else 'test'}_file": str(path)}
    return dataclasses.replace(data_config, data=None, label_names_file=names_file, **split_file)


def evaluate(
    run_dir: str | Path,
    data_config: DataConfig | None = None,
    split: str = "test",
    predict_config: PredictConfig | None = None,
) -> dict[str, Any]:
    """Score a run folder on a split (see `score`); writes `eval_<split>.json` (a warning where the run
    folder cannot be written) and returns the metrics.

    A backend forced by name other than torch writes `eval_<split>.<backend>.json`, so its figures sit
    beside the default's; the metrics say which backend ran (under auto, the one it chose).
    """
    asked = (predict_config or PredictConfig()).backend
    scored = score(run_dir, data_config, split, predict_config)
    metrics = split_metrics(scored.labels, scored.probs, scored.run.label_names, scored.run.thresholds)
    config = scored.run.predict_config
    backend = config.backend
    metrics.update(
        {
            "split": scored.split,
            "source": scored.source,
            "fingerprint": scored.fingerprint,
            "backend": backend,
            "precision": (config.precision or "fp32") if backend == "torch" else None,
        }
    )
    record = runfolder.eval_path(run_dir, scored.split, asked)
    try:
        write_json(record, metrics)
    except StorageError as error:
        # the copy beside the run is a record; the metrics are returned (printed, --output) all the same,
        # so a read-only run folder can still be scored
        log.warning("%s; the metrics are not recorded in %s", error, record)
    return metrics


def write_report(scored: Scored, path: str | Path) -> Path:
    """The HTML report of `scored`, mistakes highlighted by the model's own weights where it can explain.

    Example:
        >>> write_report(score("runs/agnews", split="dev"), "runs/agnews/report_dev.html")   # doctest: +SKIP
    """
    from textcls.reporting.html import build_report
    from textcls.reporting.html import write_report as write_page

    run = scored.run

    def words(text: str) -> list[tuple[str, float]]:
        explanation = run.explain(text)
        return [] if explanation.features else explanation.words()  # tfidf's n-grams are not the text's words

    highlight = words if EXPLAIN in run.capabilities else None
    page = build_report(
        run.record, scored.texts, scored.labels, scored.probs, run.label_names, scored.split, highlight, run.thresholds
    )
    return write_page(Path(path), page)


def data_config_for_run(run_dir: str | Path, options: dict[str, Any]) -> DataConfig | None:
    """The data options given to evaluate/report, or None for the data the run was trained with.

    Reading options left unset (columns, classes file) default to those the run was trained with.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        return None
    trained_with = runfolder.read_info(run_dir).get("data_config", {})
    # Flags without a source (say --max-eval-samples alone) apply to the run's own data; new data is read
    # as the run's was (columns, classes file), but whole: the run's row limits were for its own files.
    # (The run's own one file named again is still read as training read it, dev carved: see `score`.)
    own_source = not any(given.get(name) is not None for name in DATA_SOURCES)
    dropped = () if own_source else (*DATA_SOURCES, *SAMPLING)
    kept = {k: v for k, v in trained_with.items() if k not in dropped}
    data_config, _ = split_options({**kept, **given})
    return data_config


def _check_labels(model_labels: list[str], data_labels: list[str]) -> None:
    unknown = [name for name in data_labels if name not in model_labels]
    if unknown:
        raise TextclsError(
            f"the data has labels {unknown} that the model never saw; expected a subset of {model_labels}; "
            "pass the classes file the model was trained with (--label-names-file)"
        )
