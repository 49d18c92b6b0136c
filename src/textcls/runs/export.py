"""Runs in the formats other tools load: the model card, a transformers folder, an MLflow model, the hub.

    hf       a folder `transformers.pipeline("text-classification", model=FOLDER)` loads: safetensors weights,
             tokenizer, config.json with the run's label names, and the card (families with "export-hf")
    mlflow   an MLflow pyfunc model holding the run folder; it predicts as `textcls predict` does
    push     the hf folder uploaded to a Hugging Face hub repository

`textcls export RUN --format onnx` stays with the ONNX backends (`textcls.inference.onnx`).

Example:
    >>> export_run("runs/agnews", "hf")                                  # doctest: +SKIP
    PosixPath('runs/agnews/hf')
    >>> from transformers import pipeline                                # doctest: +SKIP
    >>> pipeline("text-classification", model="runs/agnews/hf")(["Stocks fell."])   # doctest: +SKIP
    [{'label': 'Business', 'score': 0.93}]
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from textcls import runfolder
from textcls.errors import RunFolderError, StorageError, TextclsError
from textcls.files import read_json_object, replace_folder, storage_error, write_json, write_text_atomic
from textcls.models.base import EXPORT_HF, families_that, family_class
from textcls.runs.card import CARD_FILE, card_text

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx", "hf", "mlflow")
# The file that marks a folder as this kind of export: one that lacks it is never replaced.
EXPORT_MARKER = "textcls_export.json"
TRACK_EXTRA_HINT = "pip install 'textcls[track]'"
# Folders of a run that an MLflow model does not carry: other exports and hidden work folders.
NOT_CARRIED = ("hf", "mlflow")


# ---- export ---------------------------------------------------------------------------------------
def export_run(run_dir: str | Path, format: str, out: str | Path | None = None) -> Path:
    """Export a run as `format` ("hf" or "mlflow") into `out` (default `RUN/<format>`); returns the folder."""
    check_format(format, out)
    if format == EXPORT_FORMATS[0]:
        raise TextclsError("--format onnx: use textcls.inference.onnx.export_onnx, which writes RUN/onnx")
    run_dir = Path(run_dir)
    info = _exportable_run(run_dir)
    if format == "hf":
        check_hf_exportable(run_dir, info)
    else:
        _require_mlflow()
    target = Path(out) if out is not None else run_dir / format
    _check_target(target, format)
    write = _write_hf if format == "hf" else _write_mlflow
    _write_folder(target, format, run_dir, lambda folder: write(run_dir, info, folder))
    log.info("exported %s as %s to %s", run_dir, format, target)
    return target


def check_format(format: str, out: str | Path | None = None, int8: bool = False) -> None:
    """Refuse an unknown export format (naming those there are), `--out` with onnx (it writes RUN/onnx), and
    `--int8` with any other."""
    if format not in EXPORT_FORMATS:
        allowed = f"{', '.join(EXPORT_FORMATS[:-1])} or {EXPORT_FORMATS[-1]}"
        raise TextclsError(f"--format: expected {allowed}, found {format!r}")
    if format == EXPORT_FORMATS[0] and out is not None:
        raise TextclsError(
            "--out: expected it only with --format hf or mlflow, found it with onnx (written to RUN/onnx)"
        )
    if format != EXPORT_FORMATS[0] and int8:
        raise TextclsError(f"--int8: expected it only with --format onnx, found it with {format}; drop --int8")


def _exportable_run(run_dir: Path) -> dict[str, Any]:
    """The run's info once it is a classifier run whose model files are all there and intact."""
    from textcls.inference.backends import check_classifier_run

    info = runfolder.read_info(run_dir)
    check_classifier_run(run_dir, info)
    model_dir = runfolder.model_dir(run_dir)
    if not model_dir.is_dir() or not any(path.is_file() for path in model_dir.iterdir()):
        raise RunFolderError(
            f"{model_dir} holds no model files; expected the weights `train` wrote there; train again or restore it"
        )
    runfolder.verify_model_files(run_dir, info)
    return info


def check_hf_exportable(run_dir: Path, info: dict[str, Any]) -> None:
    """Raise unless the run's family holds a transformers model (it declares "export-hf")."""
    if EXPORT_HF not in family_class(info["family"]).capabilities:
        raise TextclsError(
            f"--format hf is for runs of the {' or '.join(families_that(EXPORT_HF))} family, found "
            f"{info['family']!r} in {run_dir}; export it with --format mlflow, or train with --family "
            f"{families_that(EXPORT_HF)[0]}"
        )


def _check_target(target: Path, format: str) -> None:
    """Refuse an `--out` that exists and is not an earlier export of this format (it would be deleted)."""
    if not target.exists():
        return
    marker = read_json_object(target / EXPORT_MARKER) if target.is_dir() else None
    if marker is None or marker.get("format") != format:
        raise TextclsError(
            f"--out {target} exists and is not an earlier {format} export (no {EXPORT_MARKER} of format {format!r} "
            "in it); exporting would replace it: choose another --out or remove it yourself"
        )


def _write_folder(target: Path, format: str, run_dir: Path, write: Callable[[Path], None]) -> None:
    """Fill a fresh folder beside `target` and swap it into place whole, so a failed export leaves the last one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        write(work)
        write_json(work / EXPORT_MARKER, {"format": format, "run_dir": str(run_dir.resolve())})
        replace_folder(work, target)
    except OSError as error:
        failure = storage_error(error, target)
        if failure is None or isinstance(error, StorageError):
            raise
        raise failure from error
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_hf(run_dir: Path, info: dict[str, Any], folder: Path) -> None:
    """The run's transformers model, tokenizer and card, config.json naming its labels."""
    folder.mkdir(exist_ok=True)
    for path in runfolder.model_dir(run_dir).iterdir():
        if path.is_file():
            shutil.copy2(path, folder / path.name)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    label_names = info["label_names"]
    config["id2label"] = {str(index): name for index, name in enumerate(label_names)}
    config["label2id"] = {name: index for index, name in enumerate(label_names)}
    config["problem_type"] = "multi_label_classification" if info.get("multi_label") else "single_label_classification"
    write_json(folder / "config.json", config)
    tokenizer_config = folder / "tokenizer_config.json"
    if tokenizer_config.is_file() and info.get("max_length"):
        # the pipeline cuts texts (truncation=True) where textcls does
        settings = json.loads(tokenizer_config.read_text(encoding="utf-8"))
        settings["model_max_length"] = info["max_length"]
        write_json(tokenizer_config, settings)
    write_text_atomic(folder / CARD_FILE, card_text(run_dir))


def _require_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as error:
        raise TextclsError(f"--format mlflow needs mlflow, found it missing; {TRACK_EXTRA_HINT}") from error
    return mlflow


def _write_mlflow(run_dir: Path, info: dict[str, Any], folder: Path) -> None:
    import mlflow

    from textcls.runs.mlflow_model import model_arguments

    folder.rmdir()  # mlflow writes the folder itself
    with tempfile.TemporaryDirectory() as staging:
        copy = _carried_copy(run_dir, Path(staging))
        mlflow.pyfunc.save_model(str(folder), **model_arguments(copy, info))


def _carried_copy(run_dir: Path, staging: Path) -> Path:
    """The run folder as the MLflow model carries it: without its other exports and hidden work folders."""
    copy = staging / run_dir.resolve().name
    shutil.copytree(
        run_dir,
        copy,
        ignore=lambda folder, names: [
            n for n in names if n.startswith(".") or (Path(folder) == run_dir and n in NOT_CARRIED)
        ],
    )
    return copy


def log_mlflow_model(run_dir: str | Path, name: str = "model") -> Any:
    """Log a run folder as an MLflow pyfunc model into the active MLflow run; returns mlflow's ModelInfo.

    Example:
        >>> with mlflow.start_run():                      # doctest: +SKIP
        ...     log_mlflow_model("runs/agnews")
    """
    mlflow = _require_mlflow()
    from textcls.runs.mlflow_model import model_arguments

    run_dir = Path(run_dir)
    info = _exportable_run(run_dir)
    with tempfile.TemporaryDirectory() as staging:
        copy = _carried_copy(run_dir, Path(staging))
        return mlflow.pyfunc.log_model(name=name, **model_arguments(copy, info))


# ---- the hub --------------------------------------------------------------------------------------
def push(run_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Export the run for transformers and upload it to the hub repository `repo_id`; returns the repo's URL.

    Refused at once when the hub cannot be reached (HF_HUB_OFFLINE=1, or no connection)."""
    run_dir = Path(run_dir)
    _check_online()
    info = _exportable_run(run_dir)
    check_hf_exportable(run_dir, info)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with _hub_errors():
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as staging:
        folder = export_run(run_dir, "hf", Path(staging) / "hf")
        with _hub_errors():
            api.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                commit_message=f"Upload {run_dir.name} with textcls",
                ignore_patterns=[EXPORT_MARKER],
            )
    return str(url)


OFFLINE_VALUES = ("1", "true", "yes", "on")


def _check_online() -> None:
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in OFFLINE_VALUES:
            raise TextclsError(
                f"push needs the Hugging Face hub, found {variable}=1 (offline); unset it, or copy "
                "`textcls export RUN --format hf` to the hub yourself"
            )


@contextlib.contextmanager
def _hub_errors() -> Iterator[None]:
    """Turn a failure talking to the hub into a one-line TextclsError: unreachable, or refused."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    # the hub client's HTTP library (httpx, or its fork httpx2, or requests) raises its own transport errors
    connection: list[type[BaseException]] = [OSError, OfflineModeIsEnabled]
    for library in ("httpx", "httpx2"):
        with contextlib.suppress(ImportError):
            connection.append(importlib.import_module(library).TransportError)
    try:
        yield
    except HfHubHTTPError as error:
        raise TextclsError(
            f"the hub refused the push ({str(error).splitlines()[0]}); check --repo and --token (or HF_TOKEN)"
        ) from error
    except tuple(connection) as error:
        cause = str(error).splitlines()[0] if str(error) else "no answer"
        raise TextclsError(
            f"push needs the Hugging Face hub, found it unreachable ({type(error).__name__}: {cause}); "
            "check the network or HF_ENDPOINT"
        ) from error
