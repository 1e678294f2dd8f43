"""The plain-text model format of the heatmapping.org LRP tutorial (Montavon et al.): import and export.

A model is a directory of text files, inputs in [-1, 1]:

- MLP (784-300-100-10, ReLU): ``l1-W.txt``, ``l1-B.txt``, ``l2-...``, ``l3-...``. A W file is a matrix with one
  row per input unit and one column per output unit (``y = x W + b``); a B file holds the biases.
- CNN (:func:`lrpkit.tutorial_cnn`): ``c1-5x5x1x10-W.txt``, ``c2-5x5x10x25-W.txt``, ``c3-4x4x25x100-W.txt``,
  ``c4-1x1x100x10-W.txt`` and the matching ``-B.txt``. The name holds the kernel shape ``[kh, kw, c_in, c_out]``;
  the W file its values in C order of that shape, whitespace-separated (one per line as written here).
  Convolutions are "valid" cross-correlations with stride 1.

Problems (a missing file, a wrong value count, a non-numeric value) raise :class:`ModelFileError` naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelFileError, SpecError
from ..files import atomic_directory, check_output_directory
from .network import Network, tutorial_cnn, tutorial_mlp

TUTORIAL_FILE = re.compile(r"(l\d+|c\d+-\d+x\d+x\d+x\d+)-[WB]\.txt")
EXPORTABLE = ("Format", "Linear", "Conv", "ReLU", "SumPool", "Pad", "Flatten")


# -- names ----------------------------------------------------------------------------------------------


def _names(net: Network, kind: str) -> list[tuple[int, str]]:
    """``(body index, file stem)`` of each weighted layer: ``l1`` ... or ``c1-5x5x1x10`` ..."""
    out = []
    for k, i in enumerate(net.weighted_indices, start=1):
        if kind == "mlp":
            out.append((i, f"l{k}"))
        else:
            c_out, c_in, kh, kw = net.body[i].weight.shape
            out.append((i, f"c{k}-{kh}x{kw}x{c_in}x{c_out}"))
    return out


# -- reading --------------------------------------------------------------------------------------------


def load_tutorial(path: str | Path) -> Network:
    """The tutorial MLP or CNN stored in directory ``path`` (detected from the file names), in float32."""
    directory = Path(path)
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: no such directory (expected the tutorial's l1-W.txt ... or c1-...-W.txt)")
    if any(directory.glob("l[0-9]*-[WB].txt")):
        kind, net = "mlp", tutorial_mlp()
    elif any(directory.glob("c[0-9]*-*x*x*x*-[WB].txt")):
        kind, net = "cnn", tutorial_cnn()
    else:
        raise ModelFileError(
            f"{directory}: neither the tutorial MLP (l1-W.txt, l1-B.txt, ...) nor the tutorial CNN "
            "(c1-5x5x1x10-W.txt, ...)"
        )
    with torch.no_grad():
        for i, stem in _names(net, kind):
            layer = net.body[i]
            weight = _read_weight(directory, stem, kind, layer.weight.shape)
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(_values(directory / f"{stem}-B.txt", layer.bias.numel())))
    net.metadata = {"source": f"heatmapping.org tutorial {kind.upper()}", "path": str(directory)}
    return net.eval()


def _read_weight(directory: Path, stem: str, kind: str, shape: torch.Size) -> np.ndarray:
    """The weight in torch layout: Linear ``(out, in)`` from an ``in x out`` matrix, Conv ``(out, in, kh, kw)``
    from ``[kh, kw, in, out]`` values."""
    file = directory / f"{stem}-W.txt"
    if kind == "mlp":
        return _matrix(file, shape[1], shape[0]).T.copy()
    if not file.is_file():
        found = sorted(p.name for p in directory.glob(f"{stem.split('-')[0]}-*-W.txt"))
        hint = f"; found {', '.join(found)}, but the tutorial CNN needs {file.name}" if found else ""
        raise ModelFileError(f"{file}: missing{hint}")
    c_out, c_in, kh, kw = shape
    return _values(file, c_out * c_in * kh * kw).reshape(kh, kw, c_in, c_out).transpose(3, 2, 0, 1).copy()


def _tokens(file: Path) -> tuple[str, list[str]]:
    if not file.is_file():
        raise ModelFileError(f"{file}: missing")
    try:
        text = file.read_text()
    except UnicodeDecodeError:
        raise ModelFileError(f"{file}: not a text file") from None
    return text, text.split()


def _numbers(file: Path, tokens: list[str]) -> np.ndarray:
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        k, bad = next(((k, t) for k, t in enumerate(tokens) if not _is_number(t)), (-1, "?"))
        raise ModelFileError(f"{file}: value {k + 1} ({bad!r}) is not a number") from None
    if not np.isfinite(values).all():
        raise ModelFileError(f"{file}: value {int(np.argmin(np.isfinite(values))) + 1} is NaN or Inf")
    return values


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _values(file: Path, count: int) -> np.ndarray:
    """Exactly ``count`` whitespace-separated numbers, as float32."""
    _, tokens = _tokens(file)
    if len(tokens) != count:
        raise ModelFileError(f"{file}: expected {count} values, found {len(tokens)}")
    return _numbers(file, tokens).astype(np.float32)


def _matrix(file: Path, rows: int, cols: int) -> np.ndarray:
    """A ``rows x cols`` matrix written as ``rows`` lines of ``cols`` numbers, as float32."""
    text, tokens = _tokens(file)
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) != rows or any(len(line) != cols for line in lines):
        widths = sorted({len(line) for line in lines})
        raise ModelFileError(
            f"{file}: expected a {rows} x {cols} matrix ({rows} lines of {cols} values), found {len(lines)} lines "
            f"of {'/'.join(map(str, widths)) or 0} values"
        )
    return _numbers(file, tokens).astype(np.float32).reshape(rows, cols)


# -- writing --------------------------------------------------------------------------------------------


def export_tutorial(net: Network, path: str | Path, overwrite: bool = False) -> Path:
    """Writes ``net`` (the tutorial MLP or CNN architecture) to directory ``path`` in the tutorial format.

    The directory is written next to ``path`` and renamed into place. An existing tutorial directory is
    replaced only with ``overwrite``; anything else at ``path`` is never touched.
    """
    kind = _tutorial_kind(net)
    target = check_output_directory(path)

    def fill(staging: Path) -> None:
        for i, stem in _names(net, kind):
            _write_layer(staging, stem, kind, net.body[i])

    return atomic_directory(target, fill, check=lambda target: _check_target(target, overwrite))


def _tutorial_kind(net: Network) -> str:
    """``"mlp"`` or ``"cnn"``, or :class:`SpecError` saying why ``net`` does not fit the format."""
    for i, spec in enumerate(net.specs):
        if type(spec).__name__ not in EXPORTABLE:
            raise SpecError(
                f"layer {i} ({spec!r}): the tutorial format holds only {', '.join(EXPORTABLE)} layers "
                "(the tutorial MLP or CNN)"
            )
    if net.bounds != (-1.0, 1.0):
        raise SpecError(f"the tutorial format assumes inputs in [-1, 1]; this network has {net.specs[0]!r}")
    kind = "cnn" if any(type(s).__name__ == "Conv" for s in net.specs) else "mlp"
    expected = (tutorial_cnn if kind == "cnn" else tutorial_mlp)(seed=None)
    if (net.input_shape, net.classes) != (expected.input_shape, expected.classes):
        raise SpecError(
            f"the tutorial {kind.upper()} takes input {expected.input_shape} and has {expected.classes} classes; "
            f"this network: input {net.input_shape}, {net.classes} classes"
        )
    for i, (ours, theirs) in enumerate(zip(net.specs, expected.specs, strict=False)):
        if ours != theirs:
            raise SpecError(f"layer {i} is {ours!r}; the tutorial {kind.upper()} has {theirs!r} there")
    if len(net.specs) != len(expected.specs):
        raise SpecError(
            f"the network has {len(net.specs)} layers; the tutorial {kind.upper()} has {len(expected.specs)}"
        )
    return kind


def _check_target(target: Path, overwrite: bool) -> None:
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    if not target.is_dir() or not all(TUTORIAL_FILE.fullmatch(p.name) for p in target.iterdir()):
        raise ModelFileError(f"{target}: exists and is not a tutorial model directory; refusing to overwrite it")
    if not overwrite:
        raise ModelFileError(f"{target}: a tutorial model is already there (pass overwrite=True to replace it)")


def _write_layer(directory: Path, stem: str, kind: str, layer: torch.nn.Module) -> None:
    weight = layer.weight.detach().cpu().numpy()
    fmt = "%.9g" if weight.dtype == np.float32 else "%.17g"  # enough digits to read back the same value
    if kind == "mlp":
        np.savetxt(directory / f"{stem}-W.txt", weight.T, fmt=fmt)
    else:
        np.savetxt(directory / f"{stem}-W.txt", weight.transpose(2, 3, 1, 0).ravel(), fmt=fmt)  # [kh, kw, in, out]
    np.savetxt(directory / f"{stem}-B.txt", layer.bias.detach().cpu().numpy(), fmt=fmt)
