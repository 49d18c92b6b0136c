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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from textcls.errors import ConfigError, StorageError

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

    A storage failure is a `StorageError`; the temporary file is removed and an old `path` stays. A link is
    written through: a link to a file (or to nothing yet) keeps being a link and its target is replaced; a
    link to, or a path of, a pipe or a device (`/dev/stdout`, a FIFO) gets the bytes written into it.
    """
    path = Path(path)
    if path.is_dir():
        raise StorageError(errno.EISDIR, f"could not write {path}: {_FIXES[errno.EISDIR]}")
    if path.exists() and not path.is_file():  # a pipe or a device, or a link to one
        return _write_into(path, write)
    if path.is_symlink():  # to a file, or to none yet
        return _replace_file(path.resolve(), write, shown=path)
    return _replace_file(path, write, shown=path)


def _replace_file(path: Path, write: Callable[[Path], Any], shown: Path) -> Path:
    """`write_atomic` for a regular file (or none yet) at `path`; errors name `shown` (the path as given)."""
    temp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        write(Path(temp_name))
        os.chmod(temp_name, shared_mode())  # mkstemp makes 0600 files; results are for sharing and serving
        os.replace(temp_name, path)
    except BaseException as error:
        if temp_name is not None:
            Path(temp_name).unlink(missing_ok=True)
        failure = storage_error(error, shown) if isinstance(error, Exception) else None
        if failure is not None:
            raise failure from error
        raise
    return shown


def _write_into(path: Path, write: Callable[[Path], Any]) -> Path:
    """Write into a pipe or device at `path`: made whole in a temporary file first, then copied in."""
    handle, temp_name = tempfile.mkstemp(prefix="textcls.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temp_name))
        with open(temp_name, "rb") as source, open(path, "wb") as sink:
            shutil.copyfileobj(source, sink)
    except Exception as error:
        failure = storage_error(error, path)
        if failure is not None:
            raise failure from error
        raise
    finally:
        Path(temp_name).unlink(missing_ok=True)
    return path


def _umask() -> int:
    """This process's umask. Linux tells it in /proc/self/status; elsewhere it is set and put back, which
    another thread creating a file at that instant would see (0: world-writable), so only as a fallback."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_mode(folder: bool = False) -> int:
    """The permissions a new file (or `folder`) gets under this process's umask: 0o644 / 0o755 under 022."""
    return (0o777 if folder else 0o666) & ~_umask()


def share_tree(root: Path) -> None:
    """Give `root` and everything in it the umask's permissions: temporary folders and some writers
    (`tempfile`, safetensors) make 0700 folders and 0600 files, and a run folder is for sharing and serving."""
    root = Path(root)
    file_mode, folder_mode = shared_mode(), shared_mode(folder=True)
    for folder, _folders, files in os.walk(root):
        os.chmod(folder, folder_mode)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                os.chmod(path, file_mode)


def check_output(output: Path, inputs: Iterable[Path] = (), folders: Iterable[Path] = ()) -> None:
    """Refuse `output` before any work when writing it would replace one of the command's `inputs` or a file
    already in one of its input `folders` (a run folder, say); links and `./` spellings are seen through.

    Example:
        >>> check_output(Path("data.csv"), inputs=[Path("./data.csv")])  # doctest: +SKIP
        Traceback (most recent call last):
        textcls.errors.ConfigError: --output data.csv is also an input of this command (data.csv) ...
    """
    output = Path(output)
    for source in inputs:
        if _same(output, Path(source)):
            raise ConfigError(
                f"--output {output} is also an input of this command ({source}); writing it would replace the "
                "input: pass another --output"
            )
    if not (output.exists() and output.is_file()):
        return
    written = output.resolve()
    for folder in folders:
        if Path(folder).is_dir() and written.is_relative_to(Path(folder).resolve()):
            raise ConfigError(
                f"--output {output} is a file of {folder}, which this command reads; writing it would replace "
                f"that file: pass an --output outside {folder} or a new file name"
            )


def _same(first: Path, second: Path) -> bool:
    """Whether two paths name one file (both existing: the same inode; otherwise the same resolved path)."""
    try:
        if first.exists() and second.exists():
            return os.path.samefile(first, second)
    except OSError:
        pass
    return first.resolve() == second.resolve()


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object (a marker file that
    may or may not be there, a record that may be damaged)."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


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
    share_tree(work_dir)
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
