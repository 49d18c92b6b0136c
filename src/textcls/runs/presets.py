"""`textcls train --preset accurate|fast`: a recipe of stages, each an ordinary run folder, and the final
one published as the run folder `OUT` itself.

- accurate: `pretrain` (masked-word pre-training on the training texts, time-bound), then `finetune` (the
  pretrained family from that encoder, with layer-wise learning-rate decay and a longer schedule).
- fast: one `finetune` stage sized to `--time-budget` (the whole command's wall clock): this machine's
  speed is measured first, and `plan_fast` picks max_length, rows and epochs that fit.

Layout of `OUT/`: the final stage's run files (textcls.json, model/, metrics.json, ...), and `stages/`
with one run folder per stage and `preset.json`, the plan with each stage's status and seconds. Running
the same command again skips finished stages and resumes an interrupted one.

Example:
    >>> result = train_preset("accurate", data="data/ag_news", out="runs/accurate")   # doctest: +SKIP
    >>> load("runs/accurate").predict(["Stocks fell sharply."])                        # doctest: +SKIP
    ['Business']
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textcls import runfolder
from textcls.config import DataConfig, PretrainConfig, TrainConfig, field_names, split_options
from textcls.data.loading import LoadedData, load_data
from textcls.errors import ConfigError, RunFolderError
from textcls.families import DEFAULT_FAMILY
from textcls.files import read_json_object, write_json, write_text_atomic
from textcls.models.pretrained import training_speed
from textcls.runs.api import TrainResult
from textcls.runs.api import train as train_run
from textcls.runs.card import write_model_card
from textcls.runs.pretraining import pretrain
from textcls.training.device import process_state, resolve_precision
from textcls.training.trainer import epoch_scores_reused

log = logging.getLogger(__name__)

PRETRAIN, TRAIN = "pretrain", "train"  # what a stage runs: `textcls pretrain` or `textcls train`


@dataclass(frozen=True)
class Stage:
    """One step of a preset: its name (its folder in `OUT/stages/`), what it runs, and the values it sets
    (`PretrainConfig` fields for a pretrain stage, `TrainConfig` fields for a train stage)."""

    name: str
    runs: str
    values: Mapping[str, Any] = field(default_factory=dict)


# The recipes, in one place. A user's own flags override a train stage's values.
ACCURATE = (
    # masked-word pre-training on the training texts, time-bound, with the masking that gained most in
    # docs/performance.md's pre-training benchmark (whole words, 30% of them); two epochs scored above one
    # on both seeds measured (docs/presets.md); the held-out texts are scored by masked-token accuracy
    # only (pseudo-perplexity, one pass per token, took 10 minutes here)
    Stage(
        "pretrain",
        PRETRAIN,
        {
            "epochs": 2.0,
            "time_budget": 45.0,
            "whole_word_masking": True,
            "mlm_probability": 0.3,
            "pseudo_perplexity_texts": 0,
        },
    ),
    Stage(
        "finetune",
        TRAIN,
        {
            "epochs": 4.0,
            "warmup_ratio": 0.1,
            "layer_lr_decay": 0.9,
            # every epoch is trained; the best epoch on dev is kept (averaging the last two scored below the last
            # epoch alone on both seeds measured, docs/presets.md)
            "early_stopping_patience": 0,
        },
    ),
)
FAST = (Stage("finetune", TRAIN, {}),)  # max_length, rows, epochs and time budget come from `plan_fast`
PRESETS: dict[str, tuple[Stage, ...]] = {"accurate": ACCURATE, "fast": FAST}

FAST_TIME_BUDGET = 10.0  # minutes for the whole `--preset fast` command when --time-budget is not given
FAST_LENGTHS = (64, 96, 128)  # the max_length values `plan_fast` chooses from
FAST_MAX_EPOCHS = 3
FAST_MARGIN = 0.95  # the share of the remaining budget a plan may fill (the stage stops at the budget besides)
FAST_OVERHEAD_SECONDS = 30.0  # loading the model, tokenising, saving, the report
FAST_MIN_ROWS = 200  # fewer training rows than this is not a model worth the wait
# Masked-word pre-training's texts a second against the speed check's classification training, same
# encoder and max_length (the vocabulary head at the masked positions): the accurate recipe's pretrain
# stage ran at 56.2 texts/s against a check of 98.0 samples/s on a 2-core Xeon, bf16 (docs/presets.md).
PRETRAIN_SPEED_SHARE = 0.57
# Settings of the fine-tuning that `textcls pretrain` shares (the same encoder, the same texts).
SHARED_WITH_PRETRAIN = ("model", "max_length", "precision", "seed", "trust_remote_code")


@dataclass(frozen=True)
class FastPlan:
    """What `plan_fast` chose: max_length, training rows and epochs, and the seconds it expects for
    training (`train_seconds`) and for everything (`estimated_seconds`)."""

    max_length: int
    rows: int
    epochs: int
    train_seconds: float
    estimated_seconds: float


def plan_fast(
    samples_per_second_by_length: Mapping[int, float],
    budget_seconds: float,
    pool_rows: int,
    dev_rows: int,
    *,
    predict_samples_per_second_by_length: Mapping[int, float] | None = None,
    epochs: int | None = None,
    rescored: bool = True,
    max_epochs: int = FAST_MAX_EPOCHS,
    margin: float = FAST_MARGIN,
    overhead_seconds: float = FAST_OVERHEAD_SECONDS,
    min_rows: int = FAST_MIN_ROWS,
) -> FastPlan:
    """The training that fits `budget_seconds` on a machine of the measured speeds (samples/s by max_length;
    prediction at 3x the training speed where not given): dev is scored after each epoch, and once more at the
    end when `rescored` (an fp32 run without averaging takes its best epoch's scores instead). Among the
    plans that fit `margin` of the budget it prefers, in order, more of the `pool_rows`, more epochs (up to
    `max_epochs`, or exactly `epochs`), a longer max_length. A `ConfigError` says how long a budget the
    smallest plan needs when none fits.

    Example:
        >>> plan_fast({64: 100.0, 128: 60.0}, 600, pool_rows=20_000, dev_rows=2_000)
        FastPlan(max_length=64, rows=20000, epochs=2, train_seconds=400.0, estimated_seconds=450.0)
    """
    predict = predict_samples_per_second_by_length or {}
    usable = budget_seconds * margin - overhead_seconds
    fewest = min(min_rows, pool_rows)
    plans, smallest = [], math.inf
    for length, speed in samples_per_second_by_length.items():
        scoring = dev_rows / predict.get(length, 3 * speed)  # seconds to score dev once
        for count in [epochs] if epochs is not None else range(1, max_epochs + 1):
            eval_seconds = (count + rescored) * scoring
            smallest = min(smallest, (overhead_seconds + eval_seconds + fewest * count / speed) / margin)
            rows = min(pool_rows, math.floor(max(0.0, usable - eval_seconds) * speed / count))
            if rows >= fewest and rows >= 1:
                train_seconds = rows * count / speed
                plans.append(
                    FastPlan(
                        length,
                        rows,
                        count,
                        round(train_seconds, 1),
                        round(overhead_seconds + eval_seconds + train_seconds, 1),
                    )
                )
    if not plans:
        raise ConfigError(
            f"time_budget: expected at least {math.ceil(smallest / 60 * 10) / 10:g} minutes for --preset fast on this "
            f"machine (training {fewest} rows and scoring {dev_rows} dev rows at the speeds measured: "
            f"{_speeds(samples_per_second_by_length)}), found {budget_seconds / 60:.3g}; pass a longer --time-budget, "
            "or fewer dev rows (--max-eval-samples)"
        )
    return max(plans, key=lambda plan: (plan.rows, plan.epochs, plan.max_length))


def _speeds(by_length: Mapping[int, float]) -> str:
    return ", ".join(f"{speed:.1f}/s at {length} tokens" for length, speed in sorted(by_length.items()))


def train_preset(
    preset: str,
    data: str | None = None,
    out: str | Path = "runs/latest",
    *,
    overwrite: bool = False,
    stage_options: Mapping[str, Mapping[str, Any]] | None = None,
    **options: Any,
) -> TrainResult:
    """Run preset `preset` into `out` and return the final stage's result, with `out` as its run folder.

    `options` are `DataConfig` and `TrainConfig` fields, as `train` takes them; they override the preset's
    values for the train stages (and `model`, `max_length`, `precision`, `seed` apply to pretraining too).
    Under `fast`, `time_budget` is the whole command's budget in minutes. `stage_options` set a stage's own
    values by stage name (between the preset's and `options`). Running it again into the same `out`
    skips the finished stages; other options or data into an existing `out` are refused unless `overwrite`.

    Example:
        >>> train_preset("fast", data="data/ag_news", out="runs/fast", time_budget=5)   # doctest: +SKIP
    """
    _check_preset(preset)
    given = {"data": data, **options} if data is not None else dict(options)
    given.pop("resume", None)  # a preset always goes on from where it stopped
    data_config, user_config = _check_request(preset, given, stage_options or {})
    processes = process_state().num_processes
    if processes > 1:
        raise ConfigError(
            f"preset: --preset runs its stages in one process, but {processes} were started (torchrun / accelerate "
            "launch); run it without a launcher, or run the stages yourself (textcls pretrain, then textcls train)"
        )
    out = Path(out)
    if out.resolve().parent == out.resolve() or out.name in ("", ".", ".."):
        raise RunFolderError(
            f"expected a folder to write the run in, found {str(out)!r}; name one, e.g. --out runs/mine"
        )
    started = time.monotonic()
    with runfolder.holding(out):
        dataset = load_data(data_config, splits=("train", "dev"))  # bad data fails before anything is written
        request = {
            "preset": preset,
            "options": json.loads(json.dumps(given, default=str)),
            "stage_options": json.loads(json.dumps(stage_options or {}, default=str)),
            "data_fingerprint": dataset.fingerprint,
        }
        manifest = _existing_manifest(out, request, overwrite)
        if manifest is None:
            manifest = {**request, **_plan(out, preset, given, user_config, dataset, stage_options or {}, started)}
            write_json(runfolder.preset_manifest_path(out), manifest)  # makes OUT/stages/ with it
        _announce(out, manifest)
        classifier = None
        for number, stage in enumerate(manifest["stages"], start=1):
            classifier = _run_stage(out, manifest, stage, number, data_config, dataset) or classifier
        final = runfolder.stages_dir(out) / manifest["stages"][-1]["name"]
        if not (runfolder.is_run(out) and manifest.get("published")):
            runfolder.publish_run(final, out)
            write_model_card(out, out.name)
            manifest["published"] = True
            write_json(runfolder.preset_manifest_path(out), manifest)
    total = sum(stage["seconds"] or 0 for stage in manifest["stages"])
    log.info("preset %s done: %s stages in %.0fs; run folder %s", preset, len(manifest["stages"]), total, out)
    metrics = runfolder.read_metrics(out) or {}
    return TrainResult(out, metrics, classifier)


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ConfigError(
            f"preset: expected one of {', '.join(PRESETS)}, found {preset!r}; pass --preset accurate or fast"
        )


def _check_request(
    preset: str, given: Mapping[str, Any], stage_options: Mapping[str, Mapping[str, Any]]
) -> tuple[DataConfig, TrainConfig]:
    """The data and train configs of the user's own options, checked; a `ConfigError` for what a preset
    cannot take."""
    data_config, user_config = split_options(dict(given))
    if user_config.family != DEFAULT_FAMILY:
        raise ConfigError(
            f"family: --preset {preset} trains the {DEFAULT_FAMILY} family, found --family {user_config.family}; "
            "drop --family or drop --preset"
        )
    if data_config.multi_label:
        raise ConfigError(
            f"multi_label: --preset {preset} trains single-label classifiers, found --multi-label; drop --preset "
            "and pass the options yourself"
        )
    names = {stage.name for stage in PRESETS[preset]}
    unknown = sorted(set(stage_options) - names)
    if unknown:
        raise ConfigError(
            f"stage_options: expected stage names of {preset} ({', '.join(sorted(names))}), found {unknown}"
        )
    return data_config, user_config


def _existing_manifest(out: Path, request: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The manifest to go on from when `out` holds this very request; None to start afresh (an empty or absent
    `out`, or `overwrite`, which clears it first); a `RunFolderError` for anything else in `out`."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    manifest = read_json_object(runfolder.preset_manifest_path(out))
    ours = manifest is not None or runfolder.is_run(out)
    if not ours:
        raise RunFolderError(
            f"{out} exists and is neither a textcls run folder nor a preset's (no {runfolder.RUN_FILE} or "
            f"{runfolder.STAGES_DIR}/{runfolder.PRESET_FILE} in it); choose another --out or remove it yourself"
        )
    if overwrite:
        log.info("--overwrite: removing %s to start the preset afresh", out)
        shutil.rmtree(out)
        return None
    if manifest is None:
        raise RunFolderError(f"run folder {out} already exists; pass --overwrite or choose another --out")
    changed = [
        name if name != "data_fingerprint" else "the rows (train/dev fingerprint)"
        for name in ("preset", "options", "stage_options", "data_fingerprint")
        if manifest.get(name) != request[name]
    ]
    if changed:
        raise RunFolderError(
            f"{out} holds a --preset {manifest.get('preset')} run of other {', '.join(changed)} (recorded in "
            f"{runfolder.preset_manifest_path(out)}: {json.dumps(manifest.get('options'))}); repeat that command "
            "to go on with it, pass --overwrite to start afresh, or choose another --out"
        )
    log.info("going on with the preset in %s: finished stages are kept", out)
    return manifest


def _plan(
    out: Path,
    preset: str,
    given: Mapping[str, Any],
    user_config: TrainConfig,
    dataset: LoadedData,
    stage_options: Mapping[str, Mapping[str, Any]],
    started: float,
) -> dict[str, Any]:
    """The manifest's plan: this machine's measured speed, each stage's settings (as JSON) and the estimate."""
    texts = dataset.splits["train"].texts
    # fast chooses among FAST_LENGTHS unless the user chose; accurate trains at the one max_length
    lengths = list(FAST_LENGTHS) if preset == "fast" and "max_length" not in given else [user_config.max_length]
    measured = training_speed(user_config.model, texts, lengths, user_config)
    speed = {str(k): {"train": round(t, 2), "predict": round(p, 2)} for k, (t, p) in measured.items()}
    train_given = {k: v for k, v in given.items() if k in field_names(TrainConfig)}
    rows = len(texts), len(dataset.splits["dev"])
    if preset == "fast":
        budget = 60.0 * float(given.get("time_budget") or FAST_TIME_BUDGET)
        # a run whose kept epoch's evaluation is its final dev scoring makes no extra pass (one process here)
        precision = resolve_precision(user_config.precision)
        rescored = not epoch_scores_reused(precision, user_config.average_last, processes=1)
        remaining = budget - (time.monotonic() - started)
        planned = _fast_stages(measured, remaining, rows, train_given, stage_options, rescored)
        return {"plan": {"speed": speed, "budget_seconds": budget, **planned["plan"]}, "stages": planned["stages"]}
    planned = _recipe_stages(out, PRESETS[preset], measured[lengths[0]], rows, train_given, stage_options)
    return {"plan": {"speed": speed, **planned["plan"]}, "stages": planned["stages"]}


def _fast_stages(
    measured: Mapping[int, tuple[float, float]],
    remaining: float,
    rows: tuple[int, int],
    train_given: Mapping[str, Any],
    stage_options: Mapping[str, Mapping[str, Any]],
    rescored: bool,
) -> dict[str, Any]:
    """`fast`'s one stage, sized by `plan_fast` to the `remaining` seconds (`rescored`: dev is predicted once
    more after training)."""
    (pool_rows, dev_rows), stage = rows, FAST[0]
    chosen = plan_fast(
        {length: speed for length, (speed, _) in measured.items()},
        remaining,
        pool_rows,
        dev_rows,
        predict_samples_per_second_by_length={length: speed for length, (_, speed) in measured.items()},
        epochs=math.ceil(train_given["epochs"]) if "epochs" in train_given else None,
        rescored=rescored,
    )
    # a safety net: the training time the budget leaves once the plan's start-up and dev scoring are taken out
    train_minutes = (remaining - chosen.estimated_seconds + chosen.train_seconds) / 60.0
    values = {
        **stage.values,
        "max_length": chosen.max_length,
        "epochs": chosen.epochs,
        "time_budget": round(max(0.01, train_minutes), 3),
        **dict(stage_options.get(stage.name, {})),
        **{k: v for k, v in train_given.items() if k != "time_budget"},  # the whole command's, not the stage's
    }
    data_values = {"max_train_samples": chosen.rows} if chosen.rows < pool_rows else {}
    return {
        "plan": {"fast": dataclasses.asdict(chosen), "estimated_seconds": chosen.estimated_seconds},
        "stages": [_stage_entry(stage, values, data_values)],
    }


def _recipe_stages(
    out: Path,
    recipe: Sequence[Stage],
    speeds: tuple[float, float],
    rows: tuple[int, int],
    train_given: Mapping[str, Any],
    stage_options: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The recipe's stages with the user's options over their values, and their estimated seconds: a train
    stage after a pretrain stage fine-tunes the encoder it wrote."""
    (train_speed, predict_speed), (pool_rows, dev_rows) = speeds, rows
    stages, estimate, encoder = [], 0.0, None
    for stage in recipe:
        values = {**stage.values, **dict(stage_options.get(stage.name, {}))}
        if stage.runs == PRETRAIN:
            values.update({k: v for k, v in train_given.items() if k in SHARED_WITH_PRETRAIN})
            seconds = values.get("epochs", 1.0) * pool_rows / (train_speed * PRETRAIN_SPEED_SHARE)
            if values.get("time_budget") is not None:
                seconds = min(seconds, 60.0 * values["time_budget"])
            encoder = str(runfolder.stages_dir(out) / stage.name)
        else:
            values.update(train_given)
            if encoder is not None:
                values["model"] = encoder
            config = TrainConfig(**values)
            scoring = (math.ceil(config.epochs) + 1) * dev_rows / predict_speed
            seconds = config.epochs * pool_rows / train_speed
            if config.time_budget is not None:
                seconds = min(seconds, 60.0 * config.time_budget)
            seconds += scoring
        stages.append(_stage_entry(stage, values, {}))
        estimate += seconds + FAST_OVERHEAD_SECONDS
    return {"plan": {"estimated_seconds": round(estimate, 1)}, "stages": stages}


def _stage_entry(stage: Stage, values: Mapping[str, Any], data_values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": stage.name,
        "runs": stage.runs,
        "values": json.loads(json.dumps(dict(values))),
        "data_values": dict(data_values),
        "status": "pending",
        "seconds": None,
    }


def _announce(out: Path, manifest: dict[str, Any]) -> None:
    plan = manifest["plan"]
    log.info(
        "preset %s into %s: %d stages, about %.1f minutes in all",
        manifest["preset"],
        out,
        len(manifest["stages"]),
        plan["estimated_seconds"] / 60,
    )
    if "fast" in plan:
        fast = plan["fast"]
        log.info(
            "fast plan for a budget of %.1f min: max_length %d, %d training rows, %d epochs (training about %.0fs)",
            plan["budget_seconds"] / 60,
            fast["max_length"],
            fast["rows"],
            fast["epochs"],
            fast["train_seconds"],
        )
    for number, stage in enumerate(manifest["stages"], start=1):
        settings = ", ".join(f"{k} {v}" for k, v in {**stage["values"], **stage["data_values"]}.items())
        log.info(
            "  stage %d %s (%s): %s [%s]", number, stage["name"], stage["runs"], settings or "defaults", stage["status"]
        )


def _run_stage(
    out: Path,
    manifest: dict[str, Any],
    stage: dict[str, Any],
    number: int,
    data_config: DataConfig,
    dataset: LoadedData,
) -> Any:
    """Run one stage into `OUT/stages/NAME` unless its run folder is finished; returns the classifier it
    trained (None for a pretrain stage or a skipped one)."""
    stage_dir = runfolder.stages_dir(out) / stage["name"]
    count = len(manifest["stages"])
    if runfolder.is_run(stage_dir) and stage["status"] == "done":
        log.info("stage %d/%d %s: finished earlier (%s), skipped", number, count, stage["name"], stage_dir)
        return None
    resume = runfolder.partial_dir(stage_dir).exists()
    if not runfolder.is_run(stage_dir):
        log.info("stage %d/%d %s: %s", number, count, stage["name"], "resuming" if resume else "starting")
    stage["status"] = "running"
    write_json(runfolder.preset_manifest_path(out), manifest)
    started = time.monotonic()
    classifier = None
    if runfolder.is_run(stage_dir):
        log.info("stage %d/%d %s: its run folder was finished before the command stopped", number, count, stage["name"])
    elif stage["runs"] == PRETRAIN:
        texts = _write_training_texts(out, dataset)
        config = PretrainConfig(data=str(texts), text_columns=("text",), resume=resume, **stage["values"])
        pretrain(config, stage_dir)
    else:
        stage_data = dataclasses.replace(data_config, **stage["data_values"])
        settings = TrainConfig(resume=resume, **stage["values"])
        result = train_run(data_config=stage_data, train_config=settings, out=stage_dir)
        classifier = result.classifier
    stage["status"], stage["seconds"] = "done", round(time.monotonic() - started, 1)
    manifest["published"] = False
    write_json(runfolder.preset_manifest_path(out), manifest)
    log.info("stage %d/%d %s: done in %.0fs", number, count, stage["name"], stage["seconds"])
    return classifier


def _write_training_texts(out: Path, dataset: LoadedData) -> Path:
    """The training split's texts (not dev's) as JSONL for `pretrain`, in `OUT/stages/`."""
    path = runfolder.stages_dir(out) / runfolder.PRETRAIN_TEXTS_FILE
    lines = "".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in dataset.splits["train"].texts)
    write_text_atomic(path, lines)
    return path
