"""Files: atomic writing, output paths checked before any work, bounded reading of JSON and file heads.

Every temporary file or directory lrpkit makes is named ``.lrpkit-<32 hex digits>.tmp`` (:data:`TEMPORARY`), next
to the file it becomes, so that whatever a killed process leaves behind is recognisable as lrpkit's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import io
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import LrpkitError, OutputError

TEMPORARY = re.compile(r"\.lrpkit-[0-9a-f]{32}\.tmp")
"""The names of lrpkit's temporary files and directories."""
JSON_BYTES = 16 * 2**20
"""The largest JSON file lrpkit reads (model.json, --arch specs): 16 MiB."""
JSON_DEPTH = 64
"""The deepest nesting of arrays and objects lrpkit accepts in JSON."""


def temporary_path(directory: Path) -> Path:
    """A fresh name matching :data:`TEMPORARY` in ``directory``."""
    return directory / f".lrpkit-{uuid.uuid4().hex}.tmp"


# -- output paths ---------------------------------------------------------------------------------


def check_output_directory(path: str | Path) -> Path:
    """``path`` if it is a directory lrpkit can write into, or one it can create; :class:`OutputError` otherwise.

    Meant to run before any work, so that a bad ``--out`` fails at once and names the user's path.
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a directory")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{target}: cannot be created, {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{target}: cannot write there ({existing} is not writable)")
    return target


def check_output_file(path: str | Path) -> Path:
    """``path`` if lrpkit can write a file there (its directory may still have to be created)."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory, expected a file name")
    try:
        check_output_directory(target.parent)
    except OutputError as err:
        raise OutputError(f"{target}: cannot be written ({err})") from None
    return target


def make_directory(path: Path) -> None:
    """Creates ``path`` and its parents (modes from the umask); :class:`OutputError` naming ``path`` on failure."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path}: cannot create the directory ({err.strerror or err})") from None


# -- atomic writing -------------------------------------------------------------------------------


def write_bytes(path: str | Path, data: bytes, sync: bool = False) -> Path:
    """Writes ``data`` to a temporary file next to ``path`` and renames it to ``path``.

    ``sync``: flush the data to the disk before the rename (for files that must survive a power cut).
    Readers see the old file or the new one, never a part; errors name ``path``, not the temporary file.
    """
    return _stream(Path(path), lambda file: file.write(data), sync)


def atomic_write(
    path: str | Path, write: Callable[[IO[bytes]], Any], sync: bool = False, in_memory: bool = False
) -> Path:
    """Calls ``write(file)`` on a temporary file next to ``path``, then renames it to ``path``.

    ``in_memory``: ``write`` fills an in-memory buffer first, and only the finished content touches the disk,
    so that a killed process leaves no empty or half-written file (for pictures, arrays, reports). Otherwise
    the content streams to the temporary file (for files too large to hold in memory); a failing ``write``
    removes it, a killed one may leave it, named as :data:`TEMPORARY`. Errors name ``path``.
    """
    if in_memory:
        buffer = io.BytesIO()
        write(buffer)
        return write_bytes(path, buffer.getvalue(), sync=sync)
    return _stream(Path(path), write, sync)


def _stream(target: Path, write: Callable[[IO[bytes]], Any], sync: bool) -> Path:
    make_directory(target.parent)
    temporary = temporary_path(target.parent)
    try:
        with open(temporary, "xb") as file:
            write(file)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(err, OSError) and not isinstance(err, LrpkitError):
            raise OutputError(f"{target}: cannot write ({err.strerror or err})") from None
        raise
    return target


def sync_directory(directory: Path) -> None:
    """Flushes ``directory``'s entries (renames) to the disk where the OS allows it."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[bool]:
    """Holds an exclusive lock on ``directory`` (``flock`` on the directory itself: no lock file) while inside.

    Yields False, and locks nothing, where the OS has no ``flock`` (Windows). A killed holder releases it.
    """
    try:
        import fcntl
    except ImportError:
        yield False
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)


def remove_temporaries(directory: Path, prefix: str = "") -> None:
    """Removes every ``prefix`` + :data:`TEMPORARY` entry of ``directory`` (call it holding :func:`locked`)."""
    for entry in directory.iterdir():
        if entry.name.startswith(prefix) and TEMPORARY.fullmatch(entry.name[len(prefix) :]):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two directory entries in one atomic step (Linux ``renameat2``); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_cwd, exchange = -100, 2
    return renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0


def atomic_directory(path: str | Path, fill: Callable[[Path], Any], check: Callable[[Path], Any] | None = None) -> Path:
    """Calls ``fill(staging)`` on a fresh directory next to ``path``, then puts it in place of ``path``.

    An existing ``path`` is swapped with the staging directory in one atomic step where the OS can (Linux),
    and keeps its mode; elsewhere it is moved aside for the instant of the rename. Staging directories left by
    a killed run are removed by the next one; ``check(path)`` runs after that, before ``fill``. On any error
    ``path`` is left as it was.
    """
    target = Path(path)
    make_directory(target.parent)
    prefix = f".{target.name}"
    with locked(target.parent):
        _restore_aside(target)
        remove_temporaries(target.parent, prefix)
        if check is not None:
            check(target)
        staging = target.with_name(prefix + temporary_path(target.parent).name)
        try:
            staging.mkdir()
            fill(staging)
            _replace_directory(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    sync_directory(target.parent)
    return target


def _replace_directory(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
        return
    staging.chmod(stat.S_IMODE(target.stat().st_mode))
    if _exchange(staging, target):
        return  # staging now holds the old directory, removed by the caller
    aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    target.rename(aside)
    staging.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


def _restore_aside(target: Path) -> None:
    """Undoes what a run killed between the two renames of :func:`_replace_directory` left: the old directory
    moved aside and nothing at ``target`` (put back); or an old directory left over beside a new one (removed)."""
    for aside in target.parent.glob(f".{glob.escape(target.name)}.old-*"):
        if not target.exists():
            aside.rename(target)
        else:
            shutil.rmtree(aside, ignore_errors=True)


# -- bounded reading ------------------------------------------------------------------------------


def read_head(path: str | Path, size: int) -> bytes:
    """The first ``size`` bytes of ``path`` (fewer if it is shorter; empty if it is not a readable file)."""
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except OSError:
        return b""


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def check_depth(text: str, where: str, error: type[LrpkitError], limit: int = JSON_DEPTH) -> None:
    """``error`` when arrays and objects in the JSON ``text`` nest deeper than ``limit``."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    for char in re.sub(r"[^\[\]{}]", "", _STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            raise error(f"{where}: JSON nested deeper than {limit} levels")


def parse_json(text: str, where: str, error: type[LrpkitError]) -> Any:
    """The JSON value of ``text``; ``error`` naming ``where`` when it is not valid or nests too deep."""
    check_depth(text, where, error)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise error(f"{where}: not valid JSON ({err})") from None


def read_json(path: str | Path, error: type[LrpkitError], limit: int = JSON_BYTES) -> Any:
    """The JSON value in ``path`` (at most ``limit`` bytes); ``error`` naming the file on any problem."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > limit:
            raise error(f"{file}: {size} bytes, more than the {limit} this JSON file may have")
        with open(file, "rb") as stream:
            raw = stream.read(limit + 1)
    except OSError as err:
        raise error(f"{file}: cannot read ({err.strerror or err})") from None
    if len(raw) > limit:
        raise error(f"{file}: more than the {limit} bytes this JSON file may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{file}: not valid JSON (not UTF-8 text)") from None
    return parse_json(text, str(file), error)
