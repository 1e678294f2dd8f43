"""Save and load networks as a directory: ``model.json`` (spec + metadata) and ``weights.safetensors``.

Never unpickles. Every problem with a model directory raises :class:`ModelFileError` naming the file.
Saving writes a temporary sibling directory and renames it into place, so a crash never leaves half a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import LrpkitError, ModelFileError
from ..files import atomic_directory, read_json
from .network import Network
from .tutorial import load_tutorial  # noqa: F401 (lrpkit.io.load_tutorial)

FORMAT_NAME = "lrpkit-model"
FORMAT_VERSION = 1
SPEC_FILE, WEIGHTS_FILE = "model.json", "weights.safetensors"
PICKLE_SIGNATURES = {b"PK\x03\x04": "a zip archive (torch.save / .pt)", b"\x80": "a Python pickle"}


def _sniff_foreign(file: Path) -> str | None:
    head = file.read_bytes()[:4] if file.is_file() else b""
    return next((what for sig, what in PICKLE_SIGNATURES.items() if head.startswith(sig)), None)


def save(net: Network, path: str | Path, overwrite: bool = True) -> Path:
    """Writes ``net`` to directory ``path`` atomically; replaces an existing lrpkit model only if ``overwrite``."""
    from safetensors.torch import save_file

    from .. import __version__

    target = Path(path)
    if target.exists():
        if not (target / SPEC_FILE).is_file() and (not target.is_dir() or any(target.iterdir())):
            raise ModelFileError(f"{target}: exists and is not an lrpkit model directory; refusing to overwrite it")
        if not overwrite:
            raise ModelFileError(f"{target}: a model is already saved there (pass overwrite=True to replace it)")
    spec = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "lrpkit_version": __version__, **net.spec()}
    spec["metadata"] = net.metadata
    tensors = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}

    def fill(staging: Path) -> None:
        (staging / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})

    return atomic_directory(target, fill)


def _read_spec(directory: Path) -> dict[str, Any]:
    file = directory / SPEC_FILE
    if not file.is_file():
        raise ModelFileError(f"{file}: missing (not an lrpkit model directory)")
    spec = read_json(file, ModelFileError)
    if not isinstance(spec, dict) or spec.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{file}: not an lrpkit model (format {spec.get('format') if isinstance(spec, dict) else None!r})"
        )
    if spec.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{file}: format version {spec.get('version')!r}, this lrpkit reads {FORMAT_VERSION}")
    return spec


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise ModelFileError(f"{file}: missing")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{file}: not a readable safetensors file ({err})") from None


def _check_weights(net: Network, tensors: dict[str, torch.Tensor], file: Path) -> None:
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{file}: tensors do not match the spec (missing {missing}, unexpected {extra})")
    for name, tensor in tensors.items():
        want = expected[name]
        if tensor.shape != want.shape:
            raise ModelFileError(f"{file}: {name} has shape {tuple(tensor.shape)}, the spec needs {tuple(want.shape)}")
        if tensor.is_floating_point() != want.is_floating_point():
            kind = "a floating point dtype" if want.is_floating_point() else f"{want.dtype} (a counter)"
            raise ModelFileError(f"{file}: {name} has dtype {tensor.dtype}, expected {kind}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFileError(f"{file}: {name} contains NaN or Inf")


def load(path: str | Path) -> Network:
    """Rebuilds a network saved with :func:`save`; its logits are bit-identical to the saved network's."""
    directory = Path(path)
    foreign = _sniff_foreign(directory)
    if foreign:
        raise ModelFileError(f"{directory}: this is {foreign}; lrpkit never unpickles, it loads model directories")
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: no such model directory")
    spec = _read_spec(directory)
    try:
        net = Network.from_spec(spec, seed=None)
    except LrpkitError as err:
        raise ModelFileError(f"{directory / SPEC_FILE}: {err}") from None
    weights_file = directory / WEIGHTS_FILE
    foreign = _sniff_foreign(weights_file)
    if foreign:
        raise ModelFileError(f"{weights_file}: this is {foreign}, not safetensors; lrpkit never unpickles")
    tensors = _read_weights(weights_file)
    _check_weights(net, tensors, weights_file)
    dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    net = net.to(dtypes.pop()) if len(dtypes) == 1 else net
    net.load_state_dict(tensors)
    net.metadata = dict(spec.get("metadata") or {})
    return net.eval()
