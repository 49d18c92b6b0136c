"""Hyper-parameter search (`textcls tune`): Optuna's TPE sampler proposes a family's training settings, each
trial is an ordinary training run, and a median pruner stops trials whose per-epoch dev score falls behind.

Each trial trains through `textcls.runs.api.train` into `OUT/trials/NNNN`; its per-epoch dev metrics reach
Optuna through a tracker observing the run (`training.tracking.observing`), so pruning works for every family
that trains by epochs (the one loop and Hugging Face Trainer alike). `--on ray` runs the same trials as Ray
Tune tasks, with Optuna's search (`ray.tune.search.optuna.OptunaSearch`) proposing them and Ray's median
stopping rule pruning them.

The output folder:

- `study.db`: the Optuna study (SQLite). Running the command again with the same folder continues it: the
  trials it holds count towards `--trials` and are not run again; a study of other data, another family or
  other fixed options is refused (`--overwrite` starts over).
- `best/`: the run folder of the best trial; `best_config.json`: its settings as a `textcls train --config`
  file; `trials.csv` and `trials.json`: every trial; `history.png` and `importance.png`: the figures.

Example:
    >>> result = tune(data="data/ag_news", out="runs/search", family="lstm", trials=20)   # doctest: +SKIP
    >>> result.best_params, result.best_value                                             # doctest: +SKIP
    ({'lr': 0.0061, 'epochs': 3, 'batch_size': 32, ...}, 0.874)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textcls import runfolder
from textcls.config import DataConfig, TrainConfig, TuneConfig, field_names, flag_name, split_options, to_dict
from textcls.errors import ConfigError, TextclsError
from textcls.families import FAMILIES
from textcls.files import make_folder, replace_folder, write_json, write_text_atomic
from textcls.training import tracking

log = logging.getLogger(__name__)

EXTRA_HINT = 'pip install "textcls[cluster]"'
STUDY_FILE = "study.db"
STUDY_NAME = "textcls-tune"
BEST_CONFIG_FILE = "best_config.json"
TRIALS_CSV = "trials.csv"
TRIALS_JSON = "trials.json"
HISTORY_PNG = "history.png"
IMPORTANCE_PNG = "importance.png"
TRIALS_DIR = "trials"
BEST_DIR = "best"
DEFAULT_METRIC = "accuracy"  # what a search maximises unless --metric names another
_IDENTITY = "textcls_identity"  # the study's user attribute: what it searches, checked when it is continued
_SCORE, _EPOCH_SCORE = "score", "epoch_score"  # the names of Ray Tune results
_DATA_PATHS = ("data", "train_file", "dev_file", "test_file", "label_names_file")


@dataclass(frozen=True)
class Range:
    """One searched setting: a number in [low, high] (log-uniform when `log`), or one of `choices`.

    Example:
        >>> Range("lr", 1e-4, 1e-2, log=True).to_json()
        {'low': 0.0001, 'high': 0.01, 'log': True}
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    integer: bool = False

    def suggest(self, trial: Any) -> Any:
        """This setting's value for an Optuna trial."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None  # a range has both ends (`read_space` checks)
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def to_json(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}

    def ends(self) -> list[Any]:
        """The values a trial may take at the edges of this range (every choice)."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


@dataclass(frozen=True)
class Search:
    """Everything a trial needs, on this machine or on a Ray worker: the data, the fixed training options (the
    family among them), the ranges searched, the metric maximised and the output folder."""

    data_config: DataConfig
    fixed: dict[str, Any]
    space: dict[str, Range]
    metric: str
    out: Path

    def train_config(self, params: Mapping[str, Any]) -> TrainConfig:
        return TrainConfig(**{**self.fixed, **params})


@dataclass
class TuneResult:
    """What `tune` produced: the best trial's settings, score and run folder, and a row per trial."""

    out: Path
    best_params: dict[str, Any]
    best_value: float | None
    best_run: Path | None
    trials: list[dict[str, Any]]
    metric: str
    files: list[Path]


def tune(
    data: str | None = None,
    out: str | Path = "runs/tune",
    *,
    tune_config: TuneConfig | None = None,
    **options: Any,
) -> TuneResult:
    """Search a family's training settings and write the study, the best run and its config under `out`.

    `options` are TuneConfig fields (when `tune_config` is None) and the data and training options every trial
    shares, named like their fields; a training option given here is fixed, not searched.
    """
    tune_names = field_names(TuneConfig)
    if tune_config is None:
        tune_config = TuneConfig(**{k: v for k, v in options.items() if k in tune_names})
    given = {k: v for k, v in options.items() if k not in tune_names and v is not None}
    if data is not None:
        given["data"] = data
    search = _prepare(given, tune_config, Path(out))
    optuna = _import("optuna")
    study = _open_study(optuna, search, tune_config)
    remaining = tune_config.trials - _finished(study)
    if remaining <= 0:
        log.info("the study already holds %d finished trials (--trials %d)", _finished(study), tune_config.trials)
    elif tune_config.on == "ray":
        _search_on_ray(search, tune_config, remaining)
    else:
        _search_here(optuna, study, search, tune_config, remaining)
    return _write_outcome(_load_study(optuna, search), search)


def _prepare(given: dict[str, Any], tune_config: TuneConfig, out: Path) -> Search:
    """The search's settings, checked before anything is written: the data and fixed options, the ranges."""
    from textcls.models.base import family_class

    for name in ("resume", "time_budget"):
        if name in given:
            raise ConfigError(
                f"{name}: a search sets it itself, found it among the training options; drop it (the search's "
                f"own {flag_name(name)} is a TuneConfig field)"
            )
    data_config, train_config = split_options(given)
    data_config = _absolute_paths(data_config)
    fixed = {k: v for k, v in given.items() if k in field_names(TrainConfig)}
    fixed["family"] = train_config.family
    family = family_class(train_config.family)
    if not family.hyperparameters:
        able = [name for name in FAMILIES if family_class(name).hyperparameters]
        raise ConfigError(
            f"family: the {train_config.family} family has no training settings to search; pass --family with "
            f"one of {', '.join(able)}"
        )
    space = default_space(train_config.family, family.hyperparameters)
    if tune_config.space is not None:
        replaced = read_space(Path(tune_config.space), fixed)
        space = {name: r for name, r in {**space, **replaced}.items() if r is not None}
    searched = {name: r for name, r in space.items() if name not in fixed}
    if not searched:
        raise ConfigError(
            f"space: every searched setting ({', '.join(space) or 'none'}) is fixed by an option; drop an option "
            "or add a field to --space"
        )
    log.info("searching %s; fixed: %s", ", ".join(searched), fixed)
    metric = train_config.metric or DEFAULT_METRIC
    return Search(data_config, fixed, searched, metric, out)


def default_space(family: str, hyperparameters: tuple[str, ...]) -> dict[str, Range]:
    """The ranges searched for a family: around its default budget (lr a decade either side, log-uniform; up to
    one epoch more; half to twice its batch size and max length), weight decay and warm-up over common values.

    Example:
        >>> default_space("lstm", ("lr", "epochs"))["epochs"]
        Range(name='epochs', low=1, high=4, log=False, choices=None, integer=True)
    """
    defaults = FAMILIES[family].defaults
    lr, epochs = defaults["lr"], defaults["epochs"]
    batch_size, max_length = int(defaults["batch_size"]), int(defaults["max_length"])
    ranges = {
        "lr": Range("lr", lr / 10, min(lr * 10, 0.5), log=True),
        "epochs": Range("epochs", 1, max(2, round(epochs) + 1), integer=True),
        "batch_size": Range("batch_size", choices=(batch_size // 2, batch_size, batch_size * 2)),
        "max_length": Range("max_length", choices=(max_length // 2, max_length, max_length * 2)),
        "weight_decay": Range("weight_decay", 0.0, 0.1),
        "warmup_ratio": Range("warmup_ratio", 0.0, 0.2),
    }
    return {name: ranges[name] for name in hyperparameters if name in ranges}


# TrainConfig fields a search never varies: where the model comes from, how the run is kept, what is measured
NOT_SEARCHED = (
    "family",
    "model",
    "resume",
    "report_to",
    "time_budget",
    "trust_remote_code",
    "num_workers",
    "compile",
    "logging_steps",
    "eval_batch_size",
    "precision",
    "metric",
)


def read_space(path: Path, fixed: Mapping[str, Any]) -> dict[str, Range | None]:
    """The ranges of a `--space` JSON file: per TrainConfig field `{"low", "high", "log"}` or `{"choices"}`,
    or null to leave the field out of the search. Every end of every range must be a value `train` takes.

    Example:
        >>> read_space(Path("space.json"), {"family": "lstm"})   # doctest: +SKIP
        {'lr': Range(name='lr', low=0.001, high=0.1, log=True, choices=None, integer=False)}
    """
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"--space {path}: could not read it ({error}); expected a JSON object of ranges") from error
    if not isinstance(values, dict):
        raise ConfigError(f"--space {path}: expected a JSON object of field -> range, found {type(values).__name__}")
    types = {spec.name: str(spec.type) for spec in dataclasses.fields(TrainConfig)}
    searchable = sorted(name for name in types if name not in NOT_SEARCHED)
    space: dict[str, Range | None] = {}
    for key, spec in values.items():
        name = key.replace("-", "_")
        where = f"--space {path}, field {key!r}"
        if name not in searchable:
            raise ConfigError(
                f"{where}: expected a TrainConfig field a search can vary ({', '.join(searchable)}), found an "
                "unknown one; fix the name or remove it"
            )
        if spec is None:
            space[name] = None
            continue
        search_range = _range(name, spec, types[name], where)
        _check_ends(search_range, fixed, where)
        space[name] = search_range
    return space


def _range(name: str, spec: Any, declared: str, where: str) -> Range:
    integer = declared.removesuffix(" | None") == "int"
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: expected 'choices' to be a non-empty list, found {choices!r}")
        return Range(name, choices=tuple(choices))
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) or set(spec) - {"low", "high", "log"}:
        raise ConfigError(
            f'{where}: expected {{"low": L, "high": H}} (with "log": true for a log-uniform range), '
            f'{{"choices": [...]}} or null, found {spec!r}'
        )
    low, high, log_scale = spec["low"], spec["high"], spec.get("log", False)
    kind = (int,) if integer else (int, float)
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in (low, high)) or not isinstance(log_scale, bool):
        expected = "integers" if integer else "numbers"
        raise ConfigError(f"{where}: expected low and high to be {expected} and log true or false, found {spec!r}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"{where}: expected low < high, found low {low} and high {high}; swap or widen them")
    if log_scale and low <= 0:
        raise ConfigError(f"{where}: expected low > 0 for a log-uniform range, found low {low}; raise it")
    return Range(name, low, high, log=log_scale, integer=integer)


def _check_ends(search_range: Range, fixed: Mapping[str, Any], where: str) -> None:
    """Each end of `search_range` (each choice) with the fixed options must make a TrainConfig."""
    for value in search_range.ends():
        try:
            TrainConfig(**{**fixed, search_range.name: value})
        except ConfigError as error:
            raise ConfigError(f"{where}: the range reaches a value training refuses: {error}") from error


def _absolute_paths(config: DataConfig) -> DataConfig:
    """`config` with its local paths absolute: trials on Ray workers and the best config read them anywhere."""
    paths: dict[str, Any] = {}
    for name in _DATA_PATHS:
        value = getattr(config, name)
        if value is not None and Path(value).expanduser().exists():
            paths[name] = str(Path(value).expanduser().resolve())
    return dataclasses.replace(config, **paths)


def _import(name: str) -> Any:
    """optuna or ray, with an error naming the extra when it is missing."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise TextclsError(f"textcls tune needs {name}, found it missing ({error}); run `{EXTRA_HINT}`") from error


def _storage_url(out: Path) -> str:
    return f"sqlite:///{(out / STUDY_FILE).resolve()}"


def _identity(search: Search) -> dict[str, Any]:
    """What a study searches: continuing it with anything else would mix incomparable trials."""
    from textcls.data.loading import load_data

    fingerprint = load_data(search.data_config, splits=("train", "dev")).fingerprint  # bad data fails here
    return {
        "family": search.fixed["family"],
        "data_fingerprint": fingerprint,
        "fixed": {k: list(v) if isinstance(v, tuple) else v for k, v in search.fixed.items() if k != "report_to"},
        "space": {name: r.to_json() for name, r in search.space.items()},
        "metric": search.metric,
    }


def _open_study(optuna: Any, search: Search, tune_config: TuneConfig) -> Any:
    """The output folder's study: new, or continued when it searches the same data, family and ranges."""
    out = search.out
    if tune_config.overwrite and out.exists():
        for name in (STUDY_FILE, TRIALS_DIR, BEST_DIR):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    elif out.exists() and not (out / STUDY_FILE).exists() and any(out.iterdir()):
        raise ConfigError(
            f"out: expected an empty folder or one a search wrote ({STUDY_FILE} in it), found {out} holding other "
            "files; pass another --out"
        )
    make_folder(out)
    identity = _identity(search)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=_storage_url(out), direction="maximize", load_if_exists=True
    )
    recorded = study.user_attrs.get(_IDENTITY)
    if recorded is None:
        study.set_user_attr(_IDENTITY, identity)
    elif recorded != identity:
        changed = [key for key in identity if recorded.get(key) != identity[key]]
        raise ConfigError(
            f"out: {out / STUDY_FILE} holds a study of other settings ({', '.join(changed)} differ: recorded "
            f"{ {key: recorded.get(key) for key in changed} }, found { {key: identity[key] for key in changed} }); "
            "repeat its options to continue it, pass another --out, or --overwrite to start a new study there"
        )
    _retry_interrupted(optuna, study)
    log.info("study %s: %d finished trials", out / STUDY_FILE, _finished(study))
    return study


def _load_study(optuna: Any, search: Search) -> Any:
    return optuna.load_study(study_name=STUDY_NAME, storage=_storage_url(search.out))


def _retry_interrupted(optuna: Any, study: Any) -> None:
    """Trials a stopped search left running are marked failed, and their settings queued to run first."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        log.warning("trial %d was cut short by a stopped search; running its settings again", trial.number)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=True)


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


class EpochReporter:
    """A tracker that observes a trial's run: each per-epoch `dev/METRIC` goes to `report(value, epoch)`, which
    may raise to prune the trial (epochs count from 1)."""

    def __init__(self, metric: str, report: Callable[[float, int], None]):
        self.key = f"dev/{metric}"
        self.report = report
        self.epoch = 0

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters go to the study as the trial's settings, not here."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if self.key in metrics:
            self.epoch += 1
            self.report(float(metrics[self.key]), self.epoch)

    def log_artifacts(self, paths: Any) -> None:
        """The run folder keeps its files."""

    def finish(self, failed: bool = False) -> None:
        """Nothing to close."""


def run_trial(search: Search, params: Mapping[str, Any], trial_dir: Path, reporter: EpochReporter) -> float:
    """Train one trial's run folder at `trial_dir` with `reporter` observing it; its dev score. A trial stopped
    early (pruned, failed) leaves no partial folder behind."""
    from textcls.runs.api import train

    train_config = search.train_config(params)
    try:
        with tracking.observing(reporter):
            result = train(data_config=search.data_config, train_config=train_config, out=trial_dir, overwrite=True)
    except BaseException:
        shutil.rmtree(runfolder.partial_dir(trial_dir), ignore_errors=True)
        raise
    dev = result.metrics["dev"]
    if search.metric not in dev:
        raise ConfigError(
            f"metric: expected the dev metric {search.metric!r}, found "
            f"{sorted(k for k, v in dev.items() if isinstance(v, float))}; pass --metric with one of them"
        )
    return float(dev[search.metric])


def _search_here(optuna: Any, study: Any, search: Search, tune_config: TuneConfig, remaining: int) -> None:
    """Run `remaining` trials in this process: TPE proposes, the median pruner stops trials behind."""
    seed = search.train_config({}).seed
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune_config.startup_trials)
    study.pruner = optuna.pruners.MedianPruner(
        n_startup_trials=tune_config.startup_trials, n_warmup_steps=tune_config.warmup_epochs
    )

    def objective(trial: Any) -> float:
        params = {name: search_range.suggest(trial) for name, search_range in search.space.items()}

        def report(value: float, epoch: int) -> None:
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"dev {search.metric} {value:.4f} after epoch {epoch}")

        log.info("trial %d: %s", trial.number, params)
        trial_dir = search.out / TRIALS_DIR / f"{trial.number:04d}"
        value = run_trial(search, params, trial_dir, EpochReporter(search.metric, report))
        log.info("trial %d: dev %s %.4f", trial.number, search.metric, value)
        return value

    timeout = tune_config.time_budget * 60 if tune_config.time_budget is not None else None
    study.optimize(objective, n_trials=remaining, timeout=timeout, gc_after_trial=True)


def _ray_trial(params: dict[str, Any], search: Search) -> None:
    """One trial as a Ray Tune function: per-epoch scores are reported to Ray (whose stopping rule prunes), the
    final one with the run folder."""
    from ray import tune as ray_tune

    trial_dir = search.out / TRIALS_DIR / ray_tune.get_context().get_trial_id()

    def report(value: float, epoch: int) -> None:
        # no final score yet: a trial stopped after this result is recorded as pruned
        ray_tune.report({_SCORE: None, _EPOCH_SCORE: value, "epoch": epoch})

    reporter = EpochReporter(search.metric, report)
    value = run_trial(search, params, trial_dir, reporter)
    ray_tune.report({_SCORE: value, _EPOCH_SCORE: value, "epoch": reporter.epoch + 1})


@dataclass(frozen=True)
class _DefineByRun:
    """Optuna's define-by-run space for Ray's searcher (a module-level value: Ray pickles the searcher's state)."""

    ranges: tuple[Range, ...]

    def __call__(self, trial: Any) -> None:
        for search_range in self.ranges:
            search_range.suggest(trial)


def _search_on_ray(search: Search, tune_config: TuneConfig, remaining: int) -> None:
    """Run `remaining` trials as Ray Tune tasks, Optuna's TPE proposing them into the same study; trials stopped
    by the median stopping rule are recorded as pruned. Joins `--address` (or RAY_ADDRESS), else starts a local
    Ray and shuts it down after."""
    ray = _import("ray")
    optuna = _import("optuna")
    from ray import tune as ray_tune
    from ray.tune.schedulers import MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    class EpochScoreSearch(OptunaSearch):
        """Optuna's search, told each epoch's score; a trial whose last result has no final score was pruned."""

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            if _EPOCH_SCORE in result and trial_id in self._ot_trials:
                self._ot_trials[trial_id].report(result[_EPOCH_SCORE], int(result["epoch"]))

    seed = search.train_config({}).seed
    started = False
    address = tune_config.address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=tune_config.cpus, include_dashboard=False, log_to_driver=False)
            started = True
    try:
        searcher = EpochScoreSearch(
            space=_DefineByRun(tuple(search.space.values())),
            metric=_SCORE,
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune_config.startup_trials),
            study_name=STUDY_NAME,
            storage=optuna.storages.RDBStorage(_storage_url(search.out)),
        )
        scheduler = MedianStoppingRule(
            time_attr="epoch",
            metric=_EPOCH_SCORE,
            mode="max",
            grace_period=tune_config.warmup_epochs,
            min_samples_required=max(tune_config.startup_trials, 1),
        )
        trainable = ray_tune.with_resources(
            ray_tune.with_parameters(_ray_trial, search=search), {"cpu": tune_config.cpus_per_trial}
        )
        tuner = ray_tune.Tuner(
            trainable,
            tune_config=ray_tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=remaining,
                time_budget_s=tune_config.time_budget * 60 if tune_config.time_budget is not None else None,
            ),
            run_config=ray_tune.RunConfig(
                name="ray", storage_path=str(search.out.resolve()), verbose=0, log_to_file=True
            ),
        )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()


def _write_outcome(study: Any, search: Search) -> TuneResult:
    """Keep the best trial's run as `best/`, drop the other trial folders, and write the table, the best config
    and the figures."""
    best_run = _keep_best_run(search)
    rows = trial_rows(study)
    out = search.out
    files = [_write_table(out / TRIALS_CSV, rows), write_json(out / TRIALS_JSON, rows)]
    best_params: dict[str, Any] = {}
    best_value = None
    complete = [row for row in rows if row["state"] == "COMPLETE"]
    if complete:
        best = study.best_trial
        best_params, best_value = dict(best.params), float(best.value)
        files.append(write_json(out / BEST_CONFIG_FILE, best_config(search, best_params)))
    files += _draw(study, rows, out)
    return TuneResult(out, best_params, best_value, best_run, rows, search.metric, files)


def _keep_best_run(search: Search) -> Path | None:
    """`best/` becomes the complete trial run with the highest dev score (it stays when none beats it); the
    trial folders, finished or left half-done by a stop, are removed."""
    trials_dir, best_dir = search.out / TRIALS_DIR, search.out / BEST_DIR

    def score(run_dir: Path) -> float | None:
        metrics = runfolder.read_metrics(run_dir) if runfolder.is_run(run_dir) else None
        value = (metrics or {}).get("dev", {}).get(search.metric)
        return float(value) if isinstance(value, (int, float)) else None

    candidates = (
        [path for path in sorted(trials_dir.iterdir()) if score(path) is not None] if trials_dir.exists() else []
    )
    best = max(candidates, key=lambda path: score(path) or 0.0, default=None)
    kept = score(best_dir) if best_dir.exists() else None
    if best is not None and (kept is None or (score(best) or 0.0) > kept):
        replace_folder(best, best_dir)
    if trials_dir.exists():
        shutil.rmtree(trials_dir)
    return best_dir if best_dir.exists() else None


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, score (a pruned trial's at its last epoch), epochs reported, seconds,
    and its settings."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        reported = trial.intermediate_values
        value = trial.value if trial.value is not None else (reported[max(reported)] if reported else None)
        seconds = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else None
        )
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": value,
                "epochs_reported": len(reported),
                "seconds": round(seconds, 1) if seconds is not None else None,
                **{f"params_{name}": v for name, v in trial.params.items()},
            }
        )
    return rows


def _write_table(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def best_config(search: Search, params: Mapping[str, Any]) -> dict[str, Any]:
    """The best trial as a `textcls train --config` file: the data options, the fixed ones and its settings.

    Example:
        >>> best_config(Search(DataConfig(data="d"), {"family": "lstm"}, {}, "accuracy", Path("o")), {"lr": 0.01})
        {'data': 'd', 'family': 'lstm', 'lr': 0.01}
    """
    defaults = to_dict(DataConfig())
    data = {k: v for k, v in to_dict(search.data_config).items() if v != defaults[k]}
    fixed = {k: list(v) if isinstance(v, tuple) else v for k, v in search.fixed.items()}
    return {**data, **fixed, **dict(params)}


def _draw(study: Any, rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """The optimisation history and, once two trials are complete, the settings' importance."""
    from textcls.reporting import plots

    if not plots.available() or not rows:
        return []
    drawn = [
        plots.search_history(
            [row["number"] for row in rows],
            [row["value"] for row in rows],
            [row["state"] for row in rows],
            out / HISTORY_PNG,
        )
    ]
    if sum(row["state"] == "COMPLETE" for row in rows) >= 2:
        import optuna

        try:
            importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError) as error:  # e.g. every complete trial has the same settings
            log.warning("no importance figure: %s", error)
        else:
            if importances:
                drawn.append(
                    plots.parameter_importance(list(importances), list(importances.values()), out / IMPORTANCE_PNG)
                )
    return drawn
