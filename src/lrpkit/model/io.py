"""Save and load networks as a directory: ``model.json`` (spec + metadata) naming a ``weights-<hash>.safetensors``.

Never unpickles. Every problem with a model directory raises :class:`ModelFileError` naming the file.

Saving never loses a model. The weights go to a file named after their content; ``model.json``, which names
that file, is then replaced by one atomic rename: the commit point. Until then the name holds the old model,
from then on the new one, whenever the process is killed. The previous weights file is kept until the next save,
so a reader that read the old ``model.json`` still finds its weights (and a loader that finds them gone re-reads
``model.json``). Savers of one directory take turns (a lock on the directory); each removes what a killed save
left. lrpkit writes only its own files into a directory and refuses one that holds anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from .. import checks
from ..errors import LrpkitError, ModelFileError
from ..files import (
    TEMPORARY,
    check_output_directory,
    locked,
    make_directory,
    read_head,
    read_json,
    remove_temporaries,
    sync_directory,
    write_bytes,
)
from .network import Network
from .safetensors_header import check_header
from .tutorial import load_tutorial  # noqa: F401 (lrpkit.io.load_tutorial)

FORMAT_NAME = "lrpkit-model"
FORMAT_VERSION = 2
READS = (1, 2)
"""Format versions this lrpkit loads: 1 (``weights.safetensors``, lrpkit 0.1) and 2 (content-named weights)."""
SPEC_FILE, LEGACY_WEIGHTS = "model.json", "weights.safetensors"
WEIGHTS = re.compile(r"weights-[0-9a-f]{16}\.safetensors")
PICKLE_SIGNATURES = {b"PK\x03\x04": "a zip archive (torch.save / .pt)", b"\x80": "a Python pickle"}
LOAD_ATTEMPTS = 3


def _sniff_foreign(file: Path) -> str | None:
    head = read_head(file, 4) if file.is_file() else b""
    return next((what for sig, what in PICKLE_SIGNATURES.items() if head.startswith(sig)), None)


def _own(name: str) -> bool:
    """Whether a directory entry is one lrpkit writes into a model directory."""
    return name in (SPEC_FILE, LEGACY_WEIGHTS) or bool(WEIGHTS.fullmatch(name) or TEMPORARY.fullmatch(name))


def _foreign(directory: Path) -> list[str]:
    return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in directory.iterdir() if not _own(entry.name))


def check_target(path: str | Path, overwrite: bool = True) -> Path:
    """``path`` if a model may be saved there: a new or empty directory, or one holding only an lrpkit model
    (replaced only with ``overwrite``). Raises :class:`ModelFileError` naming what is in the way."""
    target = check_output_directory(path)
    if not target.is_dir():
        return target
    foreign = _foreign(target)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ModelFileError(
            f"{target}: holds files that are not part of an lrpkit model ({shown}); lrpkit saves a model only into "
            "a new or empty directory or over another model, so choose another directory"
        )
    if not overwrite and (target / SPEC_FILE).exists():
        raise ModelFileError(f"{target}: a model is already saved there (pass overwrite=True to replace it)")
    return target


def _tensors(net: Network) -> dict[str, torch.Tensor]:
    tensors = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"refusing to save: {name} holds NaN or Inf (did the training diverge?)")
    return tensors


def save(net: Network, path: str | Path, overwrite: bool = True) -> Path:
    """Writes ``net`` to directory ``path`` (see the module docstring); replaces a model there only if ``overwrite``."""
    from .. import __version__

    target = check_target(path, overwrite)
    tensors = _tensors(net)
    spec = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "lrpkit_version": __version__, **net.spec()}
    try:
        json.dumps(checks.mapping(net.metadata, "metadata", ModelFileError))
    except TypeError as err:
        raise ModelFileError(f"refusing to save: the metadata must hold JSON values only ({err})") from None
    make_directory(target)
    with locked(target):
        check_target(target, overwrite)  # again, now that no other saver can change the directory
        remove_temporaries(target)
        previous = _current_weights(target)
        weights = _write_weights(target, tensors)
        spec |= {"weights": weights, "metadata": net.metadata}
        write_bytes(target / SPEC_FILE, (json.dumps(spec, indent=2) + "\n").encode(), sync=True)  # the commit
        sync_directory(target)
        _remove_weights(target, keep={weights, previous})
    return target


def _current_weights(directory: Path) -> str | None:
    """The weights file the directory's ``model.json`` names now (None if there is none or it is unreadable)."""
    try:
        return _weights_name(_read_spec(directory), directory / SPEC_FILE)
    except ModelFileError:
        return None


def _write_weights(directory: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Writes the weights (in memory first, then to the disk) under a name derived from their content."""
    from safetensors.torch import save as serialize

    data = serialize(tensors, metadata={"format": FORMAT_NAME})
    name = f"weights-{hashlib.sha256(data).hexdigest()[:16]}.safetensors"
    write_bytes(directory / name, data, sync=True)
    return name


def _remove_weights(directory: Path, keep: set[str | None]) -> None:
    for entry in directory.iterdir():
        if entry.name not in keep and (entry.name == LEGACY_WEIGHTS or WEIGHTS.fullmatch(entry.name)):
            with contextlib.suppress(OSError):
                entry.unlink()


# -- loading ------------------------------------------------------------------------------------------


def _read_spec(directory: Path) -> dict[str, Any]:
    file = directory / SPEC_FILE
    if not file.is_file():
        raise ModelFileError(f"{file}: missing (not an lrpkit model directory)")
    spec = read_json(file, ModelFileError)
    if not isinstance(spec, dict) or spec.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{file}: not an lrpkit model (format {spec.get('format') if isinstance(spec, dict) else None!r})"
        )
    if spec.get("version") not in READS:
        raise ModelFileError(f"{file}: format version {spec.get('version')!r}, this lrpkit reads {READS}")
    checks.mapping(spec.get("metadata") or {}, f"{file}: metadata", ModelFileError)
    return spec


def _weights_name(spec: dict[str, Any], file: Path) -> str:
    if spec["version"] == 1:
        return LEGACY_WEIGHTS
    name = spec.get("weights")
    if not isinstance(name, str) or not WEIGHTS.fullmatch(name):
        raise ModelFileError(f"{file}: 'weights' must name a weights-<16 hex digits>.safetensors file, got {name!r}")
    return name


def _skeleton(spec: dict[str, Any], file: Path) -> Network:
    """The network the spec describes, its weights on the meta device: nothing allocated yet."""
    try:
        with torch.device("meta"):
            return Network.from_spec(spec, seed=None)
    except LrpkitError as err:
        raise ModelFileError(f"{file}: {err}") from None


def _read_weights(file: Path, net: Network) -> dict[str, torch.Tensor]:
    """The tensors of ``file``, once its header matches what ``net`` needs (names, shapes, float dtypes)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    foreign = _sniff_foreign(file)
    if foreign:
        raise ModelFileError(f"{file}: this is {foreign}, not safetensors; lrpkit never unpickles")
    expected = {name: (tuple(t.shape), t.is_floating_point()) for name, t in net.state_dict().items()}
    check_header(file, expected, ModelFileError)
    try:  # read through one open handle: a save in another process may unlink the name, never these bytes
        with open(file, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise  # replaced by a save in another process: the caller re-reads model.json
    except OSError as err:
        raise ModelFileError(f"{file}: cannot be read ({err})") from None
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as err:
        raise ModelFileError(f"{file}: not a readable safetensors file ({err})") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{file}: {name} contains NaN or Inf")
    return tensors


def _load_once(directory: Path) -> Network:
    spec = _read_spec(directory)
    weights = directory / _weights_name(spec, directory / SPEC_FILE)
    net = _skeleton(spec, directory / SPEC_FILE)
    if not weights.is_file():
        raise FileNotFoundError(weights)
    tensors = _read_weights(weights, net)
    dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    net = net.to_empty(device="cpu").to(dtypes.pop() if len(dtypes) == 1 else torch.get_default_dtype())
    net.load_state_dict(tensors)  # copies into fresh tensors: the same memory layout as the saved network's
    net.metadata = dict(spec.get("metadata") or {})
    return net.eval()


def load(path: str | Path) -> Network:
    """Rebuilds a network saved with :func:`save`; its logits are bit-identical to the saved network's.

    Reads what ``model.json`` names; when a save in another process replaced those weights meanwhile, it
    re-reads ``model.json``. Nothing is allocated before the weights file's header matches the spec.
    """
    directory = Path(path)
    foreign = _sniff_foreign(directory)
    if foreign:
        raise ModelFileError(f"{directory}: this is {foreign}; lrpkit never unpickles, it loads model directories")
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: no such model directory")
    for _ in range(LOAD_ATTEMPTS):
        try:
            return _load_once(directory)
        except FileNotFoundError as err:  # from the OS: (errno, message) and .filename; from _load_once: the path
            named = err.filename if err.filename is not None else (err.args[0] if err.args else None)
            missing = Path(named) if isinstance(named, (str, os.PathLike)) else directory
    raise ModelFileError(f"{missing}: missing")
