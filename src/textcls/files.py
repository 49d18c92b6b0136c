"""Atomic file writes: every file textcls writes appears whole or not at all, and a write that
fails (disk full, read-only, a folder in the way) is a `StorageError` naming the path, the cause
and the fix, never a traceback.

Example:
    >>> write_json(Path("runs/x/metrics.json"), {"accuracy": 0.93})   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from textcls.errors import StorageError

# What libraries say when the disk fails them without an OSError (safetensors' Rust writer, torch's
# zip writer): the message is all there is to go by.
_DISK_MESSAGES = {
    "no space left on device": errno.ENOSPC,
    "os error 28": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "read-only file system": errno.EROFS,
    "os error 30": errno.EROFS,
    "permission denied": errno.EACCES,
    "file write failed": errno.EIO,
}
FULL_DISK_BYTES = 1 << 20  # less free space than this after a failed write: the disk was full
_FIXES = {
    errno.ENOSPC: "free some disk space or write somewhere else",
    errno.EDQUOT: "free some of your quota or write somewhere else",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EACCES: "you may not write there; write somewhere else or fix its permissions",
    errno.EPERM: "you may not write there; write somewhere else or fix its permissions",
    errno.EISDIR: "a folder is in the way; pass a file path",
    errno.ENOTDIR: "part of the path is a file, not a folder; pass another path",
}


def storage_error(error: BaseException, path: Path | str) -> StorageError | None:
    """`error` as a `StorageError` about writing `path` when it is a storage failure, else None.

    Example:
        >>> str(storage_error(OSError(errno.ENOSPC, "No space left on device"), "runs/x"))
        'could not write runs/x: No space left on device; free some disk space or write somewhere else'
    """
    if isinstance(error, StorageError):
        return error
    code = error.errno if isinstance(error, OSError) else None
    if code is None:
        text = str(error).lower()
        code = next((number for phrase, number in _DISK_MESSAGES.items() if phrase in text), None)
        if code is None and _disk_full(Path(path)):  # torch's zip writer just says "unexpected pos"
            code = errno.ENOSPC
        if code is None:
            return None
    cause = os.strerror(code) if code in _FIXES or not isinstance(error, OSError) else (error.strerror or str(error))
    fix = _FIXES.get(code, "check the path and the disk, then try again")
    return StorageError(code, f"could not write {path}: {cause}; {fix}")


def _disk_full(path: Path) -> bool:
    """Whether the file system that holds `path` (or its nearest existing parent) has no room left."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free < FULL_DISK_BYTES
            except OSError:
                return False
    return False


def make_folder(path: Path) -> Path:
    """`path` as a folder (parents included); a failure is a `StorageError` naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        code = errno.ENOTDIR if isinstance(error, FileExistsError) else error.errno
        cause = "a file is in the way" if isinstance(error, FileExistsError) else os.strerror(code or errno.EIO)
        raise StorageError(
            code, f"could not make the folder {path}: {cause}; {_FIXES.get(code or errno.EIO, 'pass another path')}"
        ) from error
    return path


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(temp_path)` on a temporary file beside `path`, then rename it into place.

    A storage failure is a `StorageError`; the temporary file is removed and an old `path` stays.
    """
    path = Path(path)
    if path.is_dir():
        raise StorageError(errno.EISDIR, f"could not write {path}: {_FIXES[errno.EISDIR]}")
    temp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        write(Path(temp_name))
        os.chmod(temp_name, 0o644)  # mkstemp makes 0600 files; results are for sharing and serving
        os.replace(temp_name, path)
    except BaseException as error:
        if temp_name is not None:
            Path(temp_name).unlink(missing_ok=True)
        failure = storage_error(error, path) if isinstance(error, Exception) else None
        if failure is not None:
            raise failure from error
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """`text` as UTF-8, written atomically."""
    return write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json(path: Path, payload: Any) -> Path:
    """`payload` as indented UTF-8 JSON, written atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def work_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A fresh hidden folder `parent/.PREFIX.*.partial` of this writer's own (two writers into one parent
    never share one), removed on the way out whatever happened; a storage failure is a `StorageError`."""
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{prefix}.", suffix=".partial", dir=parent))
    except OSError as error:
        raise (storage_error(error, Path(parent) / prefix) or error) from error
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def replace_folder(work_dir: Path, target: Path) -> None:
    """Rename the finished folder `work_dir` over `target`. The folder it replaces is kept as `.NAME.old`
    beside it until the new one is in place, so readers see the old set of files or the new one, never a
    mix: a stop between the two renames leaves `target` absent and the old one in `.NAME.old`."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if target.exists() or target.is_symlink():
        _remove(old)
        os.replace(target, old)
    os.replace(work_dir, target)
    _remove(old)


def _remove(path: Path) -> None:
    """Delete `path` whatever it is: a link (not what it points to), a file or a folder; nothing if absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an OS lock on `folder` itself (waiting for another holder), so that commands writing sets of
    files into one folder take turns; no lock file is left in it. Where the OS has no `flock`, no lock."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock
