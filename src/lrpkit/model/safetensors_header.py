"""The header of a safetensors file, read and checked on its own: what it holds, before anything is allocated.

A safetensors file is an 8-byte little-endian header length, a JSON header ``{name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}`` and the tensor bytes. Reading only the header lets a
loader compare names, shapes and dtypes with what it expects, and the byte ranges with the file's real size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import LrpkitError
from ..files import parse_json

FLOAT_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
"""The floating point dtypes lrpkit loads, and their sizes in bytes."""
INTEGER_BYTES = {"I64": 8, "I32": 4}
"""The integer dtypes of counters (BatchNorm's ``num_batches_tracked``), and their sizes in bytes."""
HEADER_LIMIT = 100 * 2**20
"""The largest header lrpkit reads (safetensors' own limit)."""


def read_header(file: Path, error: type[LrpkitError]) -> tuple[dict[str, Any], int]:
    """The header's tensor entries (without ``__metadata__``) and the number of data bytes after it.

    A missing file raises ``FileNotFoundError`` (a caller may retry); everything else ``error`` naming the file.
    """
    size = file.stat().st_size
    with open(file, "rb") as stream:
        head = stream.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(HEADER_LIMIT, size - 8):
            raise error(f"{file}: not a readable safetensors file (header of {length} bytes in a {size}-byte file)")
        raw = stream.read(length)
    try:
        header = parse_json(raw.decode("utf-8"), str(file), error)
    except UnicodeDecodeError:
        header = None
    if not isinstance(header, dict):
        raise error(f"{file}: not a readable safetensors file (its header is not a JSON object)")
    return {k: v for k, v in header.items() if k != "__metadata__"}, size - 8 - length


def _entry(file: Path, name: str, entry: Any, data: int, floating: bool, error: type[LrpkitError]) -> tuple[int, ...]:
    """The shape of one checked entry: the expected kind of dtype, a shape of sizes, a byte range inside the data."""
    if not isinstance(entry, dict):
        raise error(f"{file}: the header entry of {name} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    sizes_of = FLOAT_BYTES if floating else INTEGER_BYTES
    if dtype not in sizes_of:
        kind = "a floating point dtype" if floating else "an integer dtype (a counter)"
        raise error(f"{file}: {name} has dtype {dtype}, expected {kind} ({', '.join(sizes_of)})")
    sizes = shape if isinstance(shape, list) else [None]
    if not all(type(s) is int and s >= 0 for s in sizes):
        raise error(f"{file}: {name} has shape {shape!r}, expected a list of sizes")
    ends = offsets if isinstance(offsets, list) and len(offsets) == 2 else [None, None]
    if not all(type(e) is int for e in ends) or not 0 <= ends[0] <= ends[1] <= data:
        raise error(f"{file}: {name} has data_offsets {offsets!r} outside the file's {data} data bytes")
    if ends[1] - ends[0] != math.prod(sizes) * sizes_of[dtype]:
        raise error(f"{file}: {name} has {ends[1] - ends[0]} data bytes, its shape {shape} and {dtype} need more")
    return tuple(sizes)


def check_header(file: Path, expected: dict[str, tuple[tuple[int, ...], bool]], error: type[LrpkitError]) -> None:
    """``error`` naming the file and the tensor unless the header holds exactly the ``expected`` names, with
    their shapes and kinds of dtype (``name: (shape, floating)``), and byte ranges that the file really has."""
    entries, data = read_header(file, error)
    missing, extra = sorted(set(expected) - set(entries)), sorted(set(entries) - set(expected))
    if missing or extra:
        raise error(f"{file}: tensors do not match the spec (missing {missing}, unexpected {extra})")
    for name, entry in entries.items():
        shape, floating = expected[name]
        found = _entry(file, name, entry, data, floating, error)
        if found != shape:
            raise error(f"{file}: {name} has shape {found}, the spec needs {shape}")
