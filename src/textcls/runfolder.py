"""The run-folder format: its file names, reading and writing them, and moving a finished run into place.

This is the only module that knows how a run folder is laid out; everyone else asks it.

Layout of `runs/NAME/`:
    textcls.json   what the run is: family, configs, label names, data fingerprint, library versions
    model/         the weights (safetensors) and tokenizer, written by the family's `save`
    metrics.json   per-epoch dev metrics and the final dev evaluation
    report.html    the dev report written by `train`
    README.md      the model card: Hugging Face metadata (labels, data, metrics) and how to use the run
    eval_<split>[.<backend>].json   what `evaluate` wrote
    backends.json  which backend `--backend auto` chose on each machine, and its timings

A run is written into `.NAME.partial/` beside it and renamed into place only when complete.

Example:
    >>> record = read_record("runs/agnews")     # doctest: +SKIP
    >>> record.info["family"], record.metrics["dev"]["accuracy"]   # doctest: +SKIP
    ('pretrained', 0.937)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from textcls.errors import RunFolderError, TextclsError
from textcls.files import make_folder, replace_folder, storage_error, write_json

RUN_FILE = "textcls.json"
MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
CARD_FILE = "README.md"
BACKEND_CACHE_FILE = "backends.json"
CHECKPOINT_DIR = "checkpoints"
FORMAT_VERSION = 1
PRETRAINING_FAMILY = "mlm"  # `textcls pretrain` runs: an encoder to fine-tune, not a classifier
SEQ2SEQ_FAMILY = "seq2seq"  # `textcls seq2seq` runs: an encoder-decoder
# Keys of textcls.json that loading a run cannot do without.
REQUIRED_INFO = ("family", "label_names", "max_length")


@dataclass(frozen=True)
class RunRecord:
    """What a run folder says about itself: its folder, `textcls.json` and `metrics.json` (None if absent)."""

    run_dir: Path
    info: dict[str, Any]
    metrics: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.run_dir.name or str(self.run_dir)

    @property
    def model_dir(self) -> Path:
        return self.run_dir / MODEL_DIR


def partial_dir(run_dir: Path) -> Path:
    """Where a run is written before it is complete: `.NAME.partial` beside `run_dir`."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.partial")


RESUME_FILE = "resume.json"  # in a partial folder: what its checkpoints were trained on, checked by --resume
# Settings a resumed run may change: how long it trains and how it reports, not what it learns from.
RESUMABLE_CHANGES = (
    "resume",
    "epochs",
    "time_budget",
    "early_stopping_patience",
    "num_workers",
    "logging_steps",
    "eval_batch_size",
)


def write_resume_identity(work_dir: Path, identity: dict[str, Any]) -> None:
    """Record in a partial folder what its checkpoints are trained on (family, rows, labels, settings)."""
    write_json(Path(work_dir) / RESUME_FILE, identity)


def resume_problem(work_dir: Path, identity: dict[str, Any]) -> str | None:
    """How `identity` differs from the one the partial folder's checkpoints were trained on, or None.

    A folder without the record is taken as it is."""
    path = Path(work_dir) / RESUME_FILE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"an unreadable {path} ({error})"
    if not isinstance(recorded, dict):
        return f"a damaged {path} (expected a JSON object)"
    changed = []
    for name, value in identity.items():
        if name == "train_config":
            before = recorded.get(name)
            before = before if isinstance(before, dict) else {}
            changed += settings_changed(before, value, ignored=RESUMABLE_CHANGES)
        elif recorded.get(name) != value:
            shown = (
                "the rows (train/dev fingerprint)"
                if name == "data_fingerprint"
                else f"{name} {recorded.get(name)!r} (now {value!r})"
            )
            changed.append(shown)
    return ", ".join(changed) or None


def settings_changed(recorded: dict[str, Any], wanted: dict[str, Any], ignored: Sequence[str] = ()) -> list[str]:
    """Each setting of `wanted` (a `to_dict` config) that `recorded` holds otherwise, as "name old (now new)".

    Example:
        >>> settings_changed({"lr": 0.001, "seed": 42}, {"lr": 0.005, "seed": 42})
        ['lr 0.001 (now 0.005)']
    """
    return [
        f"{name} {recorded.get(name)!r} (now {value!r})"
        for name, value in wanted.items()
        if name not in ignored and recorded.get(name) != value
    ]


def checkpoint_dir(work_dir: Path) -> Path:
    """Where training checkpoints go inside a partial run folder."""
    return Path(work_dir) / CHECKPOINT_DIR


def model_dir(run_dir: Path) -> Path:
    return Path(run_dir) / MODEL_DIR


def report_path(run_dir: Path, split: str | None = None) -> Path:
    """`report.html` (the one `train` writes), or `report_<split>.html` for `textcls report`."""
    return Path(run_dir) / (REPORT_FILE if split is None else f"report_{split}.html")


def backend_cache_path(run_dir: Path) -> Path:
    """Where `--backend auto` remembers its choice per machine."""
    return Path(run_dir) / BACKEND_CACHE_FILE


def eval_path(run_dir: str | Path, split: str, backend: str = "torch") -> Path:
    """`eval_<split>.json` for the backend asked for by default (auto) or torch; a backend forced by
    name gets `eval_<split>.<backend>.json` beside it."""
    suffix = "" if backend in ("torch", "auto") else f".{backend}"
    return Path(run_dir) / f"eval_{split}{suffix}.json"


def pretraining_run(path: str | Path) -> Path | None:
    """The run folder when `path` is a `textcls pretrain` run or its `model/`, else None (no digest check)."""
    path = Path(path).expanduser()
    for run_dir in (path, path.parent):
        if (
            path in (run_dir, model_dir(run_dir))
            and is_run(run_dir)
            and read_info(run_dir).get("family") == PRETRAINING_FAMILY
        ):
            return run_dir
    return None


def is_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a finished run (its `textcls.json`)."""
    return (Path(run_dir) / RUN_FILE).is_file()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What textcls.json's fields must be where present (a hand edit or damage would otherwise surface as a
# TypeError deep in a loader): name -> (what is expected, check).
INFO_FIELDS: dict[str, tuple[str, Any]] = {
    "format_version": ("an integer", _is_int),
    "family": ("a family name", lambda value: isinstance(value, str)),
    "label_names": (
        "a list of names",
        lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value),
    ),
    "max_length": ("a token count or null", lambda value: value is None or (_is_int(value) and value > 0)),
    "model_files": (
        "an object of file -> {bytes, sha256}",
        lambda value: (
            isinstance(value, dict)
            and all(
                isinstance(entry, dict) and _is_int(entry.get("bytes")) and isinstance(entry.get("sha256"), str)
                for entry in value.values()
            )
        ),
    ),
    "train_config": ("an object", lambda value: isinstance(value, dict)),
    "data_config": ("an object", lambda value: isinstance(value, dict)),
    "data": ("an object", lambda value: isinstance(value, dict)),
}


def read_info(run_dir: str | Path) -> dict[str, Any]:
    """The parsed `textcls.json` of a run folder, with a clear error when it is not one."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        partial, old = partial_dir(run_dir), _old_dir(run_dir)
        if old.is_dir():
            hint = (
                f"; it was being replaced when the command stopped: the previous run is in {old}, and the next "
                f"train of --out {run_dir} puts the new one (or the previous one) back in place"
            )
        elif partial.exists():
            hint = f"; an interrupted run is in {partial}, continue it with --resume"
        else:
            hint = ""
        raise RunFolderError(f"{run_dir} is not a textcls run folder: expected {RUN_FILE} in it{hint}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{path} is not valid JSON ({error}); the run folder is damaged, train again") from error
    if not isinstance(info, dict):
        raise RunFolderError(
            f"{path}: expected a JSON object, found {type(info).__name__}; the run folder is damaged, train again"
        )
    for key, (expected, valid) in INFO_FIELDS.items():
        if key in info and not valid(info[key]):
            raise RunFolderError(
                f"{path}: expected {key} to be {expected}, found {info[key]!r}; the run folder is damaged, train again"
            )
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise RunFolderError(
            f"{path} has format_version {info['format_version']}, this textcls reads up to {FORMAT_VERSION}; "
            "upgrade textcls"
        )
    for name in info.get("model_files") or {}:
        _check_inside(run_dir, path, name)
    return info


def _check_inside(run_dir: Path, info_path: Path, name: str) -> None:
    """Refuse a `model_files` entry that names a file outside the run's `model/` folder: an absolute path,
    a `..` step, or a link that leads out. Nothing outside the folder is ever read or even looked at."""
    relative = PurePosixPath(name.replace("\\", "/"))
    outside = relative.is_absolute() or ".." in relative.parts or PureWindowsPath(name).drive or not relative.parts
    if not outside:
        folder = model_dir(run_dir).resolve()
        outside = not (folder / relative).resolve().is_relative_to(folder)
    if outside:
        raise RunFolderError(
            f"{info_path}: expected model_files to name files inside {model_dir(run_dir)}, found {name!r}, which "
            "leads out of the run folder; the run folder is damaged or was altered, train again or restore it"
        )


def check_loadable(run_dir: Path, info: dict[str, Any]) -> None:
    """Raise unless `info` has what loading the run's model needs."""
    missing = [key for key in REQUIRED_INFO if key not in info]
    if missing:
        raise RunFolderError(f"{Path(run_dir) / RUN_FILE} lacks {missing}; the run folder is damaged, train again")


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The parsed `metrics.json`, or None when it is missing or unreadable (reports still render without it)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(metrics, dict) or any(
        not isinstance(metrics[part], dict) for part in ("train", "dev") if part in metrics
    ):
        return None  # damaged or hand-edited: treated as absent, as an unreadable file is
    return metrics


def read_record(run_dir: str | Path, strict: bool = True) -> RunRecord:
    """A run folder's `textcls.json` and `metrics.json` (None when absent) as one value.

    `strict=False` reads what is there: a missing or damaged `textcls.json` gives empty info
    (a report can still be drawn from predictions alone).
    """
    run_dir = Path(run_dir)
    try:
        info = read_info(run_dir)
    except RunFolderError:
        if strict:
            raise
        info = {}
    return RunRecord(run_dir, info, read_metrics(run_dir))


def write_run(work_dir: Path, info: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write `textcls.json` (with the format version and the size and sha256 of every file in
    `model/`, so damage is found before a parser meets it) and `metrics.json` into a partial run folder."""
    model_files = {
        str(path.relative_to(model_dir(work_dir))): {"bytes": path.stat().st_size, "sha256": file_digest(path)}
        for path in sorted(model_dir(work_dir).rglob("*"))
        if path.is_file()
    }
    write_json(Path(work_dir) / RUN_FILE, {"format_version": FORMAT_VERSION, **info, "model_files": model_files})
    write_json(Path(work_dir) / METRICS_FILE, metrics)


def file_digest(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def damaged(path: Path, cause: object, fix: str = "train again or restore the folder") -> RunFolderError:
    """The error for a weights file that exists but cannot be what was written."""
    return RunFolderError(f"the weights at {path} are damaged ({cause}); {fix}")


def verify_model_files(run_dir: Path, info: dict[str, Any]) -> None:
    """Raise `damaged` when a file of `model/` differs in size or sha256 from what training recorded.

    Runs written before the record existed are not checked here (their loaders still catch damage).
    """
    for name, expected in (info.get("model_files") or {}).items():
        path = model_dir(run_dir) / name
        if not path.is_file():
            raise RunFolderError(f"{path} is missing; the run folder is incomplete, train again or restore it")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise damaged(path, f"{size} bytes, training wrote {expected['bytes']}")
        if file_digest(path) != expected["sha256"]:
            raise damaged(path, "its sha256 differs from the one recorded when it was written")


def _old_dir(run_dir: Path) -> Path:
    """Where `move_into_place` (`files.replace_folder`) keeps the run it replaces until the new one is in place."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.old")


def _lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.lock")


def check_out(run_dir: str | Path, overwrite: bool) -> None:
    """Refuse `run_dir` as a run's destination before anything is read or written (`writing` checks again).

    A folder that is not a run (no `textcls.json`, not empty) is never replaced, `overwrite` or not:
    replacing it would delete it (a data folder, say). Without `overwrite` any existing folder is refused.
    """
    run_dir = Path(run_dir)
    if run_dir.resolve().parent == run_dir.resolve() or run_dir.name in ("", ".", ".."):
        raise RunFolderError(
            f"expected a folder to write the run in, found {str(run_dir)!r}; name one, e.g. --out runs/mine"
        )
    if run_dir.exists() and not overwrite:
        raise RunFolderError(f"run folder {run_dir} already exists; pass --overwrite or choose another --out")
    if run_dir.exists() and not is_run(run_dir) and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RunFolderError(
            f"{run_dir} exists and is not a textcls run folder (no {RUN_FILE} in it); --overwrite replaces only "
            "a run folder, and would delete this one: choose another --out or remove it yourself"
        )


@contextlib.contextmanager
def writing(run_dir: str | Path, overwrite: bool, lock: bool = True) -> Iterator[Path]:
    """Claim `run_dir` for a command that writes a run there; yields its partial folder.

    - `check_out`'s refusals, checked again under the claim.
    - A second command writing the same folder is refused while this one holds `.NAME.lock` beside it
      (an OS lock, released when the process ends however it ends; the empty file stays). Without it the
      second would delete the first's partial folder and the two would write one folder.
    - A replacement cut short between its two renames (`move_into_place`) is completed first.
    Under DDP only the main process writes: the others pass `lock=False`.
    """
    run_dir = Path(run_dir)
    check_out(run_dir, overwrite)
    held = _claim(run_dir) if lock else None
    try:
        if held is not None:
            _finish_interrupted_move(run_dir)
        check_out(run_dir, overwrite)
        yield partial_dir(run_dir)
    finally:
        if held is not None:
            held.release()


def settle(run_dir: str | Path) -> None:
    """Complete a replacement of `run_dir` cut short between its renames, unless a command is writing it
    now; `compare` calls this before it asks whether a family's run is there to reuse."""
    run_dir = Path(run_dir)
    if not _old_dir(run_dir).exists() or run_dir.exists():
        return
    try:
        held = _claim(run_dir)
    except TextclsError:
        return  # being written, or not writable: the writer (or the error it meets) decides
    try:
        _finish_interrupted_move(run_dir)
    finally:
        held.release()


def _claim(run_dir: Path) -> Any:
    """The OS lock on `.NAME.lock` beside `run_dir` (a `filelock.FileLock`, held), or a clear error."""
    from filelock import FileLock, Timeout

    make_folder(run_dir.parent)
    held = FileLock(_lock_path(run_dir), timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise RunFolderError(
            f"another textcls command is writing {run_dir} (it holds {_lock_path(run_dir)}); "
            "wait for it to finish or choose another --out"
        ) from None
    except OSError as error:  # a read-only folder, say
        raise (storage_error(error, _lock_path(run_dir)) or error) from error
    return held


def _finish_interrupted_move(run_dir: Path) -> None:
    """`move_into_place` stopped between its renames: the old run is in `.NAME.old`, `run_dir` is absent.
    A finished partial folder (a run, with no resume record left) goes into place; otherwise the old run
    comes back, if it is one (a link left by replacing a linked --out is only removed)."""
    old, work_dir = _old_dir(run_dir), partial_dir(run_dir)
    if run_dir.exists() or not (old.exists() or old.is_symlink()):
        return
    if old.is_symlink():
        old.unlink()
    elif is_run(work_dir) and not (work_dir / RESUME_FILE).exists():
        os.replace(work_dir, run_dir)
        shutil.rmtree(old, ignore_errors=True)
    elif is_run(old):
        os.replace(old, run_dir)


def move_into_place(work_dir: Path, run_dir: Path) -> None:
    """Rename the finished run over `run_dir`; an old run is removed only once the new one is complete.

    Checkpoints are dropped first: a finished run does not resume. A stop between the two renames is
    completed by the next `writing` of `run_dir`.
    """
    shutil.rmtree(checkpoint_dir(work_dir), ignore_errors=True)
    (Path(work_dir) / RESUME_FILE).unlink(missing_ok=True)
    replace_folder(work_dir, run_dir)


# `textcls train --preset`: the stages' run folders and their manifest inside the final run folder.
STAGES_DIR = "stages"
PRESET_FILE = "preset.json"
PRETRAIN_TEXTS_FILE = "pretrain-texts.jsonl"  # in `stages/`: the training texts a pretrain stage reads
RUN_ENTRIES = (RUN_FILE, METRICS_FILE, MODEL_DIR, REPORT_FILE, CARD_FILE)  # what `publish_run` copies


def stages_dir(run_dir: str | Path) -> Path:
    """Where a preset keeps its stages: `RUN/stages/`, each stage a run folder of its own."""
    return Path(run_dir) / STAGES_DIR


def preset_manifest_path(run_dir: str | Path) -> Path:
    """The preset's plan and each stage's status and seconds: `RUN/stages/preset.json`."""
    return stages_dir(run_dir) / PRESET_FILE


@contextlib.contextmanager
def holding(run_dir: str | Path) -> Iterator[None]:
    """Hold `.NAME.lock` beside `run_dir` (as `writing` does) for a command that writes into the folder
    piece by piece, so a second command on the same folder is refused instead of mixing its files in."""
    held = _claim(Path(run_dir))
    try:
        yield
    finally:
        held.release()


def publish_run(source: str | Path, run_dir: str | Path) -> None:
    """Copy the finished run in `source` into `run_dir` beside what else is there (a preset's `stages/`),
    replacing a run there: its `textcls.json` goes first and comes back last, so a stop midway leaves a folder
    that is not taken for a run (the next `publish_run` completes it); files of the replaced run's model
    (eval_*.json, backends.json) are removed."""
    from textcls.files import work_folder

    source, run_dir = Path(source), Path(run_dir)
    make_folder(run_dir)
    (run_dir / RUN_FILE).unlink(missing_ok=True)
    for stale in [BACKEND_CACHE_FILE, *(path.name for path in run_dir.glob("eval_*.json"))]:
        (run_dir / stale).unlink(missing_ok=True)
    with work_folder(run_dir, "publish") as work_dir:
        for name in RUN_ENTRIES:
            if (source / name).is_dir():
                shutil.copytree(source / name, work_dir / name)
                replace_folder(work_dir / name, run_dir / name)
            elif (source / name).is_file() and name != RUN_FILE:
                shutil.copy2(source / name, work_dir / name)
                os.replace(work_dir / name, run_dir / name)
        shutil.copy2(source / RUN_FILE, work_dir / RUN_FILE)
        os.replace(work_dir / RUN_FILE, run_dir / RUN_FILE)
