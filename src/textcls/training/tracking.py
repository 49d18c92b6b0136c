"""Experiment tracking: what a training run sends to MLflow and TensorBoard (`--report-to`).

One small interface, `Tracker`, with one implementation per service and `Trackers` to fan out to
several. A command opens the trackers of its run with `tracking(...)`; training code below it logs
to `active()` (a tracker that drops everything when none is open), so the one loop
(`training.loop.run_loop`) logs per-step loss and per-epoch dev metrics for every family that trains
through it, and the Hugging Face `Trainer` families log through Trainer's own integration
(`hf_report_to`), into the same MLflow run and the same TensorBoard folder.

Where things go:

- MLflow: the tracking URI in `MLFLOW_TRACKING_URI`, else MLflow's default (`sqlite:///mlflow.db` in the
  working folder, artefacts under `./mlruns`); one MLflow run per textcls run, named after its folder.
- TensorBoard: event files in `RUN/tensorboard/`.

Example:
    >>> with tracking(("tensorboard",), Path("runs/quick.partial"), "quick") as tracker:   # doctest: +SKIP
    ...     tracker.log_params({"train.lr": 1e-3})
    ...     active().log_metrics({"train/loss": 0.7}, step=10)
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from textcls.config import REPORT_TO
from textcls.errors import ConfigError
from textcls.runfolder import RESUME_FILE

log = logging.getLogger(__name__)

EXTRA_HINT = "pip install 'textcls[track]'"
TENSORBOARD_DIR = "tensorboard"  # in the run folder
PROBE_TIMEOUT_SECONDS = 5  # how long the check before training waits for a tracking server
_MAX_PARAM_CHARS = 500  # longer values are cut (MLflow refuses very long ones)
_METRIC_NAME = re.compile(r"[^0-9A-Za-z_\-. :/]")  # what MLflow refuses in a metric name


class Tracker(Protocol):
    """Where a run's parameters, metrics and artefacts go."""

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_artifacts(self, paths: Sequence[Path]) -> None: ...

    def finish(self, failed: bool = False) -> None: ...


class Trackers:
    """Every tracker a run reports to (none: everything is dropped); what training code logs to.

    Example:
        >>> Trackers([]).hf_report_to()
        'none'
    """

    def __init__(self, trackers: Sequence[Any], names: Sequence[str] = (), observers: Sequence[Any] = ()):
        self.trackers = list(trackers)
        self.names = tuple(names)  # the `--report-to` services, in the order given
        self.observers = list(observers)  # a job above the run (a search) watching it: see `observing`

    def log_params(self, params: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        finite = {_METRIC_NAME.sub("_", name): float(v) for name, v in metrics.items() if _is_number(v)}
        if finite:
            for tracker in [*self.trackers, *self.observers]:
                tracker.log_metrics(finite, step)

    def log_evaluation(self, metrics: Mapping[str, float], step: int) -> None:
        """A Trainer evaluation (`dev/` metrics), for the observers alone: Trainer's own callbacks send it to
        the services."""
        finite = {_METRIC_NAME.sub("_", name): float(v) for name, v in metrics.items() if _is_number(v)}
        for observer in self.observers:
            observer.log_metrics(finite, step)

    def log_artifacts(self, paths: Sequence[Path]) -> None:
        present = [Path(path) for path in paths if Path(path).exists()]
        for tracker in self.trackers:
            tracker.log_artifacts(present)

    def finish(self, failed: bool = False) -> None:
        for tracker in [*self.trackers, *self.observers]:
            tracker.finish(failed)

    def log_outcome(self, metrics: Mapping[str, Any], step: int, run_dir: Path, extra: Sequence[Path] = ()) -> None:
        """A finished run: the numbers of its metrics.json (`final_metrics`) and its files (`run_artifacts`), with
        `extra` paths beside them (an exported model folder, say)."""
        self.log_metrics(final_metrics(metrics), step)
        self.log_artifacts([*run_artifacts(run_dir), *extra])

    def hf_report_to(self) -> list[str] | str:
        """`TrainingArguments.report_to` for these services: Trainer's own callbacks log its steps and evaluations."""
        return list(self.names) or "none"


_ACTIVE: contextvars.ContextVar[Trackers | None] = contextvars.ContextVar("textcls_trackers", default=None)
_OBSERVERS: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar("textcls_observers", default=())


@contextlib.contextmanager
def observing(*observers: Tracker) -> Iterator[None]:
    """Add `observers` to every run that `tracking` opens inside: they get its metrics (per-step loss, per-epoch
    `dev/` metrics, for Trainer families too) as its services do. A search watches its trials this way; an
    exception an observer raises (a pruned trial) stops the run.

    Example:
        >>> with observing(Trackers([])):
        ...     pass
    """
    token = _OBSERVERS.set((*_OBSERVERS.get(), *observers))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


def active() -> Trackers:
    """The trackers of the run being trained (none outside `tracking`)."""
    return _ACTIVE.get() or Trackers([])


class MlflowTracker:
    """One MLflow run, started through MLflow's fluent API so Trainer's `MLflowCallback` reuses it."""

    def __init__(self, run_name: str):
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri())
        self.run = mlflow.start_run(run_name=run_name)
        log.info("MLflow run %s (%s) at %s", run_name, self.run.info.run_id, mlflow.get_tracking_uri())

    def log_params(self, params: Mapping[str, Any]) -> None:
        values = {name: str(value)[:_MAX_PARAM_CHARS] for name, value in params.items()}
        names = list(values)
        for start in range(0, len(names), 100):  # MLflow takes at most 100 parameters a call
            self.mlflow.log_params({name: values[name] for name in names[start : start + 100]})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics(dict(metrics), step=step)

    def log_artifacts(self, paths: Sequence[Path]) -> None:
        for path in paths:
            if path.is_dir():
                self.mlflow.log_artifacts(str(path), artifact_path=path.name)
            else:
                self.mlflow.log_artifact(str(path))

    def finish(self, failed: bool = False) -> None:
        if self.mlflow.active_run() is not None:
            self.mlflow.end_run(status="FAILED" if failed else "FINISHED")


class TensorBoardTracker:
    """Event files in `log_dir`; parameters go in as one text summary (TensorBoard has no parameter table)."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_params(self, params: Mapping[str, Any]) -> None:
        table = "\n".join(f"| {name} | {value} |" for name, value in params.items())
        self.writer.add_text("params", "| parameter | value |\n|---|---|\n" + table)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def log_artifacts(self, paths: Sequence[Path]) -> None:
        """TensorBoard keeps no files: the run folder holds them beside the event files."""

    def finish(self, failed: bool = False) -> None:
        self.writer.close()


def tracking_uri() -> str:
    """The MLflow tracking URI runs go to: `MLFLOW_TRACKING_URI`, else MLflow's default (a SQLite file here)."""
    import mlflow

    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def check_services(report_to: Sequence[str]) -> None:
    """Fail before training when a service is missing or unreachable: its library is installed, and the MLflow
    tracking URI answers one cheap call within `PROBE_TIMEOUT_SECONDS`.

    Example:
        >>> check_services(())   # nothing to report to: nothing to check
    """
    for name in report_to:
        module = "mlflow" if name == "mlflow" else "tensorboard"
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"report_to: --report-to {name} needs {module}, found it missing; run `{EXTRA_HINT}`")
    if "mlflow" in report_to:
        _probe_mlflow(tracking_uri())


def _probe_mlflow(uri: str) -> None:
    import mlflow

    timeouts = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(PROBE_TIMEOUT_SECONDS), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    saved = {name: os.environ.get(name) for name in timeouts}
    os.environ.update(timeouts)
    try:
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:  # any failure of the store: the message says which
        reason = " ".join(str(error).split())[:200]
        raise ConfigError(
            f"report_to: expected a reachable MLflow tracking store for --report-to mlflow, found {uri!r} failing "
            f"({type(error).__name__}: {reason}); start the server, fix MLFLOW_TRACKING_URI, or unset it for a "
            "local store"
        ) from error
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def trackers_for(report_to: Sequence[str], run_dir: Path, run_name: str) -> Trackers:
    """The trackers of `report_to` (names of `config.REPORT_TO`) for a run folder being written at `run_dir`.

    Example:
        >>> trackers_for((), Path("runs/x"), "x").trackers
        []
    """
    unknown = [name for name in report_to if name not in REPORT_TO]
    if unknown:
        raise ConfigError(f"report_to: expected names from {REPORT_TO}, found {unknown}; pass --report-to mlflow")
    trackers: list[Any] = []
    for name in report_to:
        if name == "mlflow":
            trackers.append(MlflowTracker(run_name))
        elif name == "tensorboard":
            trackers.append(TensorBoardTracker(Path(run_dir) / TENSORBOARD_DIR))
    return Trackers(trackers, [name for name in report_to if name != "none"], _OBSERVERS.get())


@contextlib.contextmanager
def tracking(report_to: Sequence[str], run_dir: Path, run_name: str) -> Iterator[Trackers]:
    """Open the trackers of a run being written at `run_dir` and make them `active()`; finish them on the way out
    (a run that raised is marked failed). Trainer's TensorBoard callback writes into the same folder.

    Example:
        >>> with tracking((), Path("runs/x"), "x") as tracker:
        ...     tracker.log_metrics({"dev/accuracy": 0.9}, step=1)
    """
    trackers = trackers_for(report_to, run_dir, run_name)
    token = _ACTIVE.set(trackers)
    # Trainer's TensorBoard callback reads its folder from the environment when Trainer is made
    folder = str(Path(run_dir) / TENSORBOARD_DIR)
    environment = {"TENSORBOARD_LOGGING_DIR": folder} if "tensorboard" in report_to else {}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        yield trackers
    except BaseException:
        trackers.finish(failed=True)
        raise
    else:
        trackers.finish()
    finally:
        _ACTIVE.reset(token)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


ARTIFACT_SUFFIXES = (".html", ".json", ".png", ".svg", ".md")  # the run folder's reports, figures and records


def run_artifacts(run_dir: Path) -> list[Path]:
    """The files of a run folder a tracker keeps: reports, figures, metrics.json, textcls.json (not the model, the
    checkpoints or the resume record).

    Example:
        >>> run_artifacts(Path("no/such/run"))
        []
    """
    if not Path(run_dir).is_dir():
        return []
    return sorted(
        path
        for path in Path(run_dir).iterdir()
        if path.is_file() and path.suffix in ARTIFACT_SUFFIXES and path.name != RESUME_FILE
    )


def config_params(**configs: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a run: each config (a `config.to_dict`) flattened under its name.

    Example:
        >>> config_params(train={"lr": 0.1, "report_to": ["mlflow"]})
        {'train.lr': 0.1, 'train.report_to': ['mlflow']}
    """
    return flatten(configs)


def flatten(values: Mapping[str, Any], prefix: str = "", separator: str = ".") -> dict[str, Any]:
    """Nested mappings as one level of `prefix.key.subkey` names; lists stay values.

    Example:
        >>> flatten({"train": {"lr": 0.1, "model": None}, "seed": 3})
        {'train.lr': 0.1, 'train.model': None, 'seed': 3}
    """
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{separator}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name, separator))
        else:
            flat[name] = value
    return flat


def final_metrics(metrics: Mapping[str, Any], prefix: str = "final") -> dict[str, float]:
    """The numbers of a metrics.json (nested objects flattened with `/`; lists, such as the epoch history
    and the confusion matrix, left out), under `prefix/`.

    Example:
        >>> final_metrics({"dev": {"accuracy": 0.9, "confusion": [[1]]}, "train": {"seconds": 3}})
        {'final/dev/accuracy': 0.9, 'final/train/seconds': 3.0}
    """
    flat = flatten(metrics, prefix, "/")
    return {name: float(value) for name, value in flat.items() if _is_number(value)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
