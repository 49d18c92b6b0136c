"""Batch inference on Ray Data: `textcls predict RUN --input PATH --output DIR --on ray`.

The driver reads and checks every input file (bad rows fail here, with file and row, before any
actor starts), cuts the rows into blocks and hands them to a pool of actors. Each actor loads the run
once with `textcls.runs.api.load` and scores batches through `Run.predict_proba`, the path every
other command predicts with. Ray restarts an actor that dies and runs its batch again; the output is
written into a hidden partial folder and renamed to DIR only once every batch is in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import glob
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textcls.config import PredictConfig, RayPredictConfig, worker_range
from textcls.data.loading import TABLE_SUFFIXES, read_texts
from textcls.errors import DataError, TextclsError
from textcls.files import replace_folder, work_folder
from textcls.inference.predictions import prediction_records
from textcls.runfolder import read_record
from textcls.runs.api import load, run_text_columns

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

INPUT_SUFFIXES = (".txt", *TABLE_SUFFIXES)
INSTALL_HINT = 'pip install "textcls[cluster]"'


@dataclass(frozen=True)
class RayPrediction:
    """What `predict_on_ray` wrote: the output folder, its shards, how many rows they hold, and the input files
    as the shards' `file` column names them (a path, or a URI)."""

    output_dir: Path
    shards: list[Path]
    rows: int
    input_files: list[str]


def predict_on_ray(
    run_dir: str | Path,
    input_path: str | Path,
    output_dir: str | Path,
    ray_config: RayPredictConfig | None = None,
    predict_config: PredictConfig | None = None,
    text_columns: tuple[str, ...] | None = None,
    predictor: type[BatchPredictor] | None = None,
) -> RayPrediction:
    """Score every text of `input_path` (a file, folder or glob) on Ray actors; write one row per input row
    (`file`, `row` and the fields of `textcls predict --output`) as Parquet or JSONL shards in `output_dir`.

    `predictor` is the callable class each actor runs (default `BatchPredictor`; a subclass may add work
    around each batch).

    Example:
        >>> predict_on_ray("runs/agnews", "news/*.csv", "scored", RayPredictConfig(workers="1-4"))  # doctest: +SKIP
        RayPrediction(output_dir=PosixPath('scored'), shards=[...], rows=20000, input_files=[...])
    """
    ray_config = ray_config or RayPredictConfig()
    predict_config = predict_config or PredictConfig()
    output_dir, run_dir = Path(output_dir), Path(run_dir).resolve()
    ray = _import_ray()
    check_output_dir(output_dir, ray_config.overwrite)
    info = read_record(run_dir).info
    with tempfile.TemporaryDirectory(prefix="textcls-inputs-") as copies:
        # inputs on another file system (s3://, gs://, hdfs://...) are copied here first and named by their URI
        names = fetch_inputs(str(input_path), Path(copies)) if is_uri(input_path) else None
        files = sorted(names) if names is not None else input_files(input_path)
        blocks = _input_blocks(files, text_columns, run_text_columns(info), ray_config.ray_batch_size, names)
    rows = sum(block.num_rows for block in blocks)
    actor_config = _actor_config(run_dir, predict_config, ray_config)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with _ray_session(ray, ray_config.address), work_folder(output_dir.parent, output_dir.name) as work_dir:
        scored = ray.data.from_arrow(blocks).map_batches(
            predictor or BatchPredictor,
            fn_constructor_args=(str(run_dir), actor_config),
            batch_size=ray_config.ray_batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(**_pool_size(ray_config)),
            num_cpus=ray_config.cpus_per_worker,
            num_gpus=ray_config.gpus_per_worker or None,
            **_retries(ray_config),
        )
        with _task_errors(ray):
            if ray_config.output_format == "parquet":
                scored.write_parquet(str(work_dir))
            else:
                scored.write_json(str(work_dir))  # JSON lines, named *.json
                for shard in work_dir.glob("*.json"):
                    shard.rename(shard.with_suffix(".jsonl"))
        replace_folder(work_dir, output_dir)
    shards = sorted(path for path in output_dir.iterdir() if path.is_file())
    log.info("wrote %d predictions in %d shards to %s", rows, len(shards), output_dir)
    return RayPrediction(output_dir, shards, rows, [names[file] if names else str(file) for file in files])


class BatchPredictor:
    """The callable class Ray Data runs in each actor: it loads the run once and scores batches of
    (`file`, `row`, `text`) into (`file`, `row`, prediction fields)."""

    def __init__(self, run_dir: str, predict_config: PredictConfig) -> None:
        self.run = load(run_dir, predict_config)
        self.schema = _output_schema(self.run.label_names, self.run.multi_label)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        probs = self.run.predict_proba(batch.column("text").to_pylist())
        records = prediction_records(probs, self.run.label_names, self.run.thresholds)
        files, rows = batch.column("file").to_pylist(), batch.column("row").to_pylist()
        return pa.Table.from_pylist(
            [{"file": file, "row": row, **record} for file, row, record in zip(files, rows, records)],
            schema=self.schema,
        )


def input_files(path: str | Path) -> list[Path]:
    """The files `path` names: itself, the input files of a folder (not its subfolders), or a glob's matches;
    sorted, so row ids and shard order do not depend on the file system's listing order."""
    text = str(path)
    if any(character in text for character in "*?["):
        found = [Path(match) for match in glob.glob(text, recursive=True)]
    elif Path(text).is_dir():
        found = list(Path(text).iterdir())
    else:
        return [Path(text)]  # read_texts names a missing file or a wrong extension
    files = sorted(file for file in found if file.is_file() and file.suffix.lower() in INPUT_SUFFIXES)
    if not files:
        raise DataError(
            f"expected input files ({', '.join(INPUT_SUFFIXES)}) at {text}, found none; check the folder or glob"
        )
    return files


def is_uri(path: str | Path) -> bool:
    """Whether `path` names a file system by its scheme (`s3://bucket/news`, `file:///data`), not a local path."""
    return isinstance(path, str) and "://" in path


def fetch_inputs(uri: str, into: Path) -> dict[Path, str]:
    """Copy the input files `uri` names on any file system pyarrow reads (a file, the input files of a folder,
    or a glob's matches) into the local folder `into`; return each copy's path -> the URI it came from.

    Example:
        >>> fetch_inputs("s3://news/2024/*.parquet", Path("/tmp/inputs"))   # doctest: +SKIP
        {PosixPath('/tmp/inputs/0/a.parquet'): 's3://news/2024/a.parquet', ...}
    """
    from pyarrow import fs

    try:
        filesystem, base = fs.FileSystem.from_uri(uri if not _has_wildcard(uri) else _fixed_part(uri))
        if _has_wildcard(uri):
            pattern = base.rstrip("/") + "/" + uri[len(_fixed_part(uri)) :].lstrip("/")
            listed = filesystem.get_file_info(fs.FileSelector(base, recursive="**" in pattern))
            found = [info for info in listed if fnmatch.fnmatch(info.path, pattern)]
        else:
            info = filesystem.get_file_info(base)
            if info.type == fs.FileType.NotFound:
                raise DataError(f"--input {uri}: no such file or folder; check the path")
            found = filesystem.get_file_info(fs.FileSelector(base)) if info.type == fs.FileType.Directory else [info]
    except (OSError, ValueError) as error:
        raise DataError(f"--input {uri}: cannot read it ({error}); check the URI and the credentials") from error
    files = [info.path for info in found if info.type == fs.FileType.File]
    chosen = sorted(path for path in files if Path(path).suffix.lower() in INPUT_SUFFIXES)
    if not chosen:
        raise DataError(f"expected input files ({', '.join(INPUT_SUFFIXES)}) at {uri}, found none; check the URI")
    scheme = uri.split("://", 1)[0]
    copies: dict[Path, str] = {}
    for number, remote in enumerate(chosen):
        local = into / str(number) / Path(remote).name  # a folder each: two files may share a name
        local.parent.mkdir(parents=True)
        with filesystem.open_input_stream(remote) as source, open(local, "wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
        copies[local] = f"{scheme}://{remote}"
    log.info("copied %d input files from %s", len(copies), uri)
    return copies


def _has_wildcard(text: str) -> bool:
    return any(character in text for character in "*?[")


def _fixed_part(uri: str) -> str:
    """The part of a glob URI before the path segment holding its first wildcard (`s3://b/x/*.csv` -> `s3://b/x`)."""
    head = uri[: min(uri.index(character) for character in "*?[" if character in uri)]
    return head.rsplit("/", 1)[0]


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless `overwrite`, as --output DIR before any work starts."""
    if output_dir.exists() and not output_dir.is_dir():
        raise TextclsError(f"--output {output_dir}: expected a folder for the shards, found a file; choose a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise TextclsError(
            f"--output {output_dir} already exists and is not empty; pass --overwrite to replace it or choose "
            "another folder"
        )


def _input_blocks(
    files: Sequence[Path],
    text_columns: tuple[str, ...] | None,
    preferred: Sequence[str] | None,
    block_rows: int,
    names: dict[Path, str] | None = None,
) -> list[pa.Table]:
    """(`file`, `row`, `text`) tables of at most `block_rows` rows, in file then row order; `row` counts a file's
    texts from 0, as the lines of `textcls predict FILE --output` do; `file` is the path, or the URI in `names`."""
    import pyarrow as pa

    blocks: list[pa.Table] = []
    for file in files:
        texts = read_texts(file, text_columns, preferred)
        name = names[file] if names else str(file)
        table = pa.table({"file": [name] * len(texts), "row": list(range(len(texts))), "text": texts})
        blocks.extend(table.slice(start, block_rows) for start in range(0, len(texts), block_rows))
    return blocks


def _output_schema(label_names: Sequence[str], multi_label: bool) -> pa.Schema:
    import pyarrow as pa

    per_label = pa.struct([(name, pa.float64()) for name in label_names])
    if multi_label:
        fields = [("labels", pa.list_(pa.string())), ("scores", per_label)]
    else:
        fields = [("label", pa.string()), ("score", pa.float64()), ("probs", per_label)]
    return pa.schema([("file", pa.string()), ("row", pa.int64()), *fields])


def _actor_config(run_dir: Path, predict_config: PredictConfig, ray_config: RayPredictConfig) -> PredictConfig:
    """The config every actor loads with: threads as reserved CPUs, and `auto` resolved once here so that
    every actor runs the same backend."""
    if predict_config.threads is None:
        predict_config = dataclasses.replace(predict_config, threads=max(1, int(ray_config.cpus_per_worker)))
    if predict_config.backend == "auto":
        predict_config = load(run_dir, predict_config).predict_config
        log.info("--backend auto chose %s for the actors", predict_config.backend)
    return predict_config


def _pool_size(ray_config: RayPredictConfig) -> dict[str, int]:
    size = worker_range(ray_config.workers)
    assert size is not None  # RayPredictConfig checked it
    return {"min_size": size[0], "max_size": size[1]}


def _retries(ray_config: RayPredictConfig) -> dict[str, Any]:
    """Actor options: a dead actor is restarted and its batch run again (`map_batches` passes these on)."""
    return {"max_restarts": ray_config.max_retries, "max_task_retries": ray_config.max_retries}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise TextclsError(
            f"--on ray: expected Ray to be installed, found no module {error.name!r}; install it: {INSTALL_HINT}"
        ) from error
    return ray


@contextlib.contextmanager
def _ray_session(ray: Any, address: str | None) -> Iterator[None]:
    """Join `address` (or $RAY_ADDRESS), else start a local Ray; disconnect (and stop a local one) after.
    A connection the caller already made is used as it is."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if address:
            ray.init(address=address)
        else:
            ray.init(include_dashboard=False)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # shards follow the input order
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _task_errors(ray: Any) -> Iterator[None]:
    """A textcls error raised in an actor surfaces as itself, not wrapped in Ray's task error."""
    try:
        yield
    except ray.exceptions.RayTaskError as error:
        cause = error.cause if isinstance(error.cause, TextclsError) else None
        if cause is None:
            raise
        raise cause from None
