"""Knowledge distillation: a trained run (the teacher) teaches a smaller student, which is an ordinary run.

The teacher's probabilities over every training text (and any unlabelled ones) are computed once through
its normal inference path and kept in the partial folder, so a resumed distillation does not recompute
them. Several teachers of one label set (an ensemble) teach through the mean of their probabilities, each
teacher's kept in its own file, so a resumed distillation computes only those not yet done. The student
trains through its family's own training (the pretrained family's `Trainer`, or the one hand-written loop)
on `training.objectives`' distillation loss: the KL divergence of the temperature-scaled softmaxes (times
T^2), plus alpha times the cross-entropy of the rows with a gold label.

Example:
    >>> result = distill("runs/agnews", "layers:2", data="data/ag_news", out="runs/agnews-2l")  # doctest: +SKIP
    >>> load("runs/agnews-2l").info["distillation"]["teacher_layers"]                           # doctest: +SKIP
    [2, 5]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textcls import runfolder
from textcls.config import (
    DataConfig,
    DistillConfig,
    PredictConfig,
    TrainConfig,
    field_names,
    split_options,
    to_dict,
)
from textcls.data.loading import LoadedData, SoftTargets, Split, load_data
from textcls.data.unlabeled import read_unlabeled_texts
from textcls.errors import ConfigError, TextclsError
from textcls.families import FAMILIES
from textcls.files import read_json_object, write_atomic, write_json
from textcls.models.base import DISTILL, families_that, family_class
from textcls.models.pretrained import PretrainedClassifier, cut_encoder, encoder_layers
from textcls.runs.api import TrainingJob, TrainResult, _check_training_choices, _train, load

log = logging.getLogger(__name__)

TEACHER_LOGITS = "teacher_logits.npy"  # in the partial folder's checkpoints: dropped with them when the run is done
STUDENT_INIT = "student-init"  # the `layers:N` student's starting weights, beside the teacher's logits
SMALLEST_PROBABILITY = 1e-30  # a teacher probability that underflowed to 0 is read as this (log: -69)


@dataclass(frozen=True)
class Student:
    """What `--student` names: the family to train, its `model` folder (None: the family's own start), and for
    `layers:N` the number of teacher layers it keeps."""

    family: str
    model: str | None = None
    layers: int | None = None


def distill(
    teacher: str | Path | list[str | Path] | tuple[str | Path, ...] | None = None,
    student: str | None = None,
    data: str | None = None,
    out: str | Path = "runs/distilled",
    *,
    distill_config: DistillConfig | None = None,
    data_config: DataConfig | None = None,
    train_config: TrainConfig | None = None,
    overwrite: bool = False,
    **options: Any,
) -> TrainResult:
    """Distil the run `teacher` (or a list of runs of one label set: their mean probabilities teach) into a
    `student` (layers:N, a model folder or a family name) trained on `data`; writes a run folder at `out` whose
    textcls.json records the teachers and the settings.

    Options are named like the fields of `DistillConfig`, `DataConfig` and `TrainConfig`.

    Example:
        >>> distill("runs/agnews", "layers:2", data="data/ag_news", out="runs/agnews-2l",
        ...         unlabeled="news.txt", temperature=2.0, epochs=1)                        # doctest: +SKIP
        >>> distill(["runs/seed1", "runs/seed2"], "layers:2", data="data/ag_news",
        ...         out="runs/ensemble-2l")                                                  # doctest: +SKIP
    """
    if distill_config is None:
        own = {name: options.pop(name) for name in field_names(DistillConfig) if name in options}
        teachers = tuple(str(run) for run in teacher) if isinstance(teacher, (list, tuple)) else str(teacher or "")
        distill_config = DistillConfig(teacher=teachers, student=student or "", **own)
    if data_config is None or train_config is None:
        built_data, built_train = split_options({"data": data, **options} if data is not None else options)
        data_config = data_config or built_data
        train_config = train_config or built_train
    return _distill(distill_config, data_config, train_config, Path(out), overwrite)


def _distill(
    config: DistillConfig, data_config: DataConfig, train_config: TrainConfig, run_dir: Path, overwrite: bool
) -> TrainResult:
    """Check everything, claim `run_dir`, then train the student through `runs.api`'s run-folder flow."""
    from textcls.training.device import for_this_device, process_state

    teachers = read_teachers(config.teachers)
    teacher = teachers[0]
    if teacher.info.get("multi_label"):
        raise ConfigError(
            f"teacher: expected a single-label run, found {teacher.run_dir}, trained multi-label; distil a "
            "single-label run (soft targets are the softmax over its classes)"
        )
    student = read_student(config, teacher.info)
    train_config = dataclasses.replace(train_config, family=student.family, model=student.model)
    state = process_state()
    if state.num_processes > 1:
        raise ConfigError(
            f"expected one process for textcls distill, found {state.num_processes}; run it without torchrun"
        )
    family = family_class(train_config.family)
    train_config = for_this_device(train_config)
    runfolder.check_out(run_dir, overwrite)
    dataset = load_data(data_config, splits=("train", "dev"))
    check_teacher_labels(teacher.info["label_names"], dataset.label_names, teacher.run_dir)
    if dataset.multi_label:
        raise ConfigError("data: expected single-label data to distil on, found --multi-label; drop --multi-label")
    unlabeled = read_unlabeled_texts(config.unlabeled) if config.unlabeled else []
    with runfolder.writing(run_dir, overwrite) as partial_dir:
        init_dir = runfolder.checkpoint_dir(partial_dir) / STUDENT_INIT
        if student.layers is not None:
            train_config = dataclasses.replace(train_config, model=str(init_dir))
        train_config = _check_training_choices(family, train_config, dataset)
        if student.layers is None:
            family.check_sources(train_config)
        settings = {
            "teacher": str(teacher.run_dir.resolve()),
            "teachers": [str(run.run_dir.resolve()) for run in teachers],
            "teacher_label_names": teacher.info["label_names"],
            **{k: v for k, v in to_dict(config).items() if k != "teacher"},
            "unlabeled_rows": len(unlabeled),
        }

        def prepare(work_dir: Path) -> tuple[LoadedData, dict[str, Any]]:
            chosen = None
            if student.layers is not None:
                model_dir = runfolder.model_dir(teacher.run_dir)
                chosen = cut_encoder(model_dir, student.layers, init_dir, dataset.label_names)
            teacher_dirs = [run.run_dir for run in teachers]
            distilled = with_soft_targets(dataset, unlabeled, config, teacher_dirs, work_dir)
            return distilled, {"distillation": {**settings, "teacher_layers": chosen}}

        job = TrainingJob(identity={"distillation": settings}, prepare=prepare)
        return _train(state, family, dataset, data_config, train_config, run_dir, partial_dir, job)


def read_student(config: DistillConfig, teacher_info: dict[str, Any]) -> Student:
    """`--student` as a `Student`: `layers:N` (checked against the teacher), a model folder, or a family that
    can distil; anything else is a `ConfigError` naming the three forms."""
    spec = config.student
    layers = config.student_layers
    if layers is not None:
        if teacher_info.get("family") != PretrainedClassifier.family:
            raise ConfigError(
                f"student: expected a {PretrainedClassifier.family}-family teacher for {spec}, found a "
                f"{teacher_info.get('family')!r} run in {config.teachers[0]}; pass a family name or a model folder"
            )
        total = encoder_layers(runfolder.model_dir(Path(config.teachers[0])))
        if total is None or layers > total:
            raise ConfigError(
                f"student: expected layers:N with N <= {total} (the teacher's encoder layers), found {spec!r}; "
                f"pass --student layers:{total or 1} or fewer"
            )
        return Student(PretrainedClassifier.family, None, layers)
    if Path(spec).expanduser().is_dir():
        return Student(PretrainedClassifier.family, str(Path(spec).expanduser().resolve()))
    if spec in FAMILIES:
        able = families_that(DISTILL)
        if spec not in able:
            raise ConfigError(
                f"student: expected a family that trains on soft targets ({', '.join(able)}), found {spec!r}; "
                "pick one of those"
            )
        return Student(spec)
    raise ConfigError(
        f"student: expected layers:N, a model folder or a family name ({', '.join(families_that(DISTILL))}), "
        f"found {spec!r} (no such folder); pass e.g. --student layers:2"
    )


def check_teacher_labels(teacher_labels: list[str], data_labels: list[str], teacher_dir: Path) -> None:
    """The teacher must know exactly the data's labels (in any order): its soft targets are over its classes."""
    if sorted(teacher_labels) != sorted(data_labels):
        raise TextclsError(
            f"the teacher {teacher_dir} was trained on labels {teacher_labels}, found data with labels "
            f"{data_labels}; distil on data with the teacher's labels (--label-names-file), or pick another teacher"
        )


def read_teachers(run_dirs: tuple[str, ...]) -> list[runfolder.RunRecord]:
    """The teachers' records, each a different run of the first one's label set (same names in the same order)
    and kind (single- or multi-label); a mismatch is a `TextclsError` naming the two runs and the difference."""
    teachers = [runfolder.read_record(run_dir) for run_dir in run_dirs]
    first, seen = teachers[0], set()
    for teacher in teachers:
        resolved = teacher.run_dir.resolve()
        if resolved in seen:
            raise ConfigError(
                f"teacher: expected different runs, found {teacher.run_dir} twice; name each teacher once"
            )
        seen.add(resolved)
        difference = teacher_difference(first.info, teacher.info)
        if difference is not None:
            raise TextclsError(
                f"the teachers {first.run_dir} and {teacher.run_dir} differ: {difference}; expected runs of one "
                "label set and kind (e.g. one recipe with different seeds); distil them apart, or pick other teachers"
            )
    return teachers


def teacher_difference(first: dict[str, Any], other: dict[str, Any]) -> str | None:
    """How two teachers' textcls.json differ in what their probabilities mean, or None when they agree."""
    first_labels, other_labels = first.get("label_names"), other.get("label_names")
    if first_labels != other_labels:
        same_names = sorted(first_labels or []) == sorted(other_labels or [])
        what = "the same labels in another order" if same_names else "other labels"
        return f"{what}: {first_labels} against {other_labels}"
    kinds = ["multi-label" if info.get("multi_label") else "single-label" for info in (first, other)]
    if kinds[0] != kinds[1]:
        return f"the first is {kinds[0]}, the other {kinds[1]}"
    return None


def with_soft_targets(
    dataset: LoadedData, unlabeled: list[str], config: DistillConfig, teacher_dirs: list[Path], work_dir: Path
) -> LoadedData:
    """`dataset` whose train split holds its rows and then the unlabelled texts, with the log of the teachers'
    mean probabilities as logits; an unlabelled row's label is the teachers' guess, never trained on as gold."""
    train = dataset.splits["train"]
    texts = [*train.texts, *unlabeled]
    logits = ensemble_logits(texts, dataset.label_names, config, teacher_dirs, work_dir)
    labelled = np.zeros(len(texts), dtype=bool)
    labelled[: len(train)] = not config.ignore_labels
    guesses = logits[len(train) :].argmax(axis=1).tolist()
    soft = SoftTargets(logits, labelled, config.temperature, config.alpha)
    distilled = Split(train.name, texts, [*train.labels, *guesses], train.source, train.multi_label, soft_targets=soft)
    log.info(
        "distilling on %d texts (%d with gold labels used), temperature %g, alpha %g",
        len(texts),
        int(labelled.sum()),
        config.temperature,
        config.alpha,
    )
    return dataclasses.replace(dataset, splits={**dataset.splits, "train": distilled})


def ensemble_logits(
    texts: list[str], label_names: list[str], config: DistillConfig, teacher_dirs: list[Path], work_dir: Path
) -> np.ndarray:
    """(texts, classes) float32: the log of the teachers' mean probabilities over `label_names` (for one teacher,
    its own log-probabilities), each teacher's read from its cache in `work_dir` when that holds them."""
    if len(teacher_dirs) == 1:
        return teacher_logits(texts, label_names, config, teacher_dirs[0], work_dir)
    probabilities = np.zeros((len(texts), len(label_names)), dtype=np.float64)
    for number, teacher_dir in enumerate(teacher_dirs, start=1):
        log.info("teacher %d of %d: %s", number, len(teacher_dirs), teacher_dir)
        logits = teacher_logits(texts, label_names, config, teacher_dir, work_dir, cache_name(number))
        probabilities += np.exp(logits.astype(np.float64))
    probabilities /= len(teacher_dirs)
    return np.log(np.maximum(probabilities, SMALLEST_PROBABILITY)).astype(np.float32)


def cache_name(number: int) -> str:
    """The file in the partial folder's checkpoints that holds teacher `number`'s (from 1) log-probabilities."""
    return TEACHER_LOGITS if number == 1 else TEACHER_LOGITS.replace(".npy", f"-{number}.npy")


def teacher_logits(
    texts: list[str],
    label_names: list[str],
    config: DistillConfig,
    teacher_dir: Path,
    work_dir: Path,
    file_name: str = TEACHER_LOGITS,
) -> np.ndarray:
    """(texts, classes) float32: the teacher's log-probabilities over `label_names` (softmax is shift-invariant,
    so they stand for its logits at any temperature), from the cache `file_name` in `work_dir` when it holds
    these."""
    folder = runfolder.checkpoint_dir(work_dir)
    cache, key_file = folder / file_name, folder / f"{file_name}.json"
    key = {
        "teacher": str(teacher_dir.resolve()),
        "backend": config.teacher_backend,
        "label_names": label_names,
        "texts": hashlib.sha256(json.dumps(texts).encode("utf-8")).hexdigest(),
    }
    if read_json_object(key_file) == key and cache.is_file():
        log.info("teacher's probabilities read from %s", cache)
        return np.load(cache)
    run = load(teacher_dir, PredictConfig(backend=config.teacher_backend))
    log.info("teacher %s (%s backend) over %d texts", teacher_dir, run.predict_config.backend, len(texts))
    probs = run.predict_proba(texts, progress=True)
    order = [run.label_names.index(name) for name in label_names]
    logits = np.log(np.maximum(probs[:, order], SMALLEST_PROBABILITY)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)

    def write(path: Path) -> None:
        with path.open("wb") as handle:
            np.save(handle, logits)

    write_atomic(cache, write)
    write_json(key_file, key)
    return logits
