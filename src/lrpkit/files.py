"""Files: atomic writing (a file or a whole directory appears complete under its name, or not at all), and
reading JSON with an error that names the file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import LrpkitError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Calls ``write(file)`` on a fresh temporary file next to ``path``, then renames it to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temporary, "xb") as file:
            write(file)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return target


def atomic_directory(path: str | Path, fill: Callable[[Path], Any]) -> Path:
    """Calls ``fill(staging)`` on a fresh temporary directory next to ``path``, then renames it to ``path``.

    An existing ``path`` is moved aside first and deleted only once the new directory is in place; on any
    error the staging directory is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(staging)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{staging.name[-8:]}")
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_json(path: str | Path, error: type[LrpkitError]) -> Any:
    """The JSON value in ``path``; ``error`` (naming the file) when it is not valid JSON text."""
    file = Path(path)
    try:
        return json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{file}: not valid JSON ({err})") from None
