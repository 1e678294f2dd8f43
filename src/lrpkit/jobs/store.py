"""The store of a dataset job: one zarr (v3) group, chunked by blocks of samples.

Arrays (axis 0: the ``N`` samples; one chunk = one block of ``chunk_size`` samples = one job batch):
``relevance`` ``(N, *x.shape[1:])`` or ``(N, C, ...)`` for target ``"all"`` (float32 or float16),
``logits`` ``(N, C)`` float32, ``prediction`` ``(N,)`` int64, ``label`` ``(N,)`` int64 (-1: unknown),
``index`` ``(N,)`` int64 (the sample's position in the source), and ``finished`` ``(chunks,)`` uint8: one
marker per chunk, each its own zarr chunk object, set to 1 only after the chunk's rows are written. Rows of
unfinished chunks read as the fill values (NaN, -1).

Group attributes: ``format``, ``version``, ``lrpkit_version``, ``model`` (fingerprint), ``method`` (JSON
data), ``options`` (of the engine), ``target``, ``source`` (description), ``chunk_size``, ``dtype``, ``compression``,
``classes`` (names or None), ``skipped`` (unreadable images left out), ``markers`` (``"finished"``).
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..files import atomic_directory
from .fingerprint import differences
from .sources import require_zarr

FORMAT, VERSION = "lrpkit-dataset-store", 1
MARKERS = "finished"
DTYPES = ("float32", "float16")
COMPRESSIONS = ("zstd", "none")
BLOSC = {"cname": "zstd", "clevel": 5, "shuffle": "shuffle"}
"""``"zstd"``: Blosc's byte shuffle, then zstd (on float32 relevance ~0.83 of the raw size; zstd alone ~0.94)."""
RUN_KEYS = ["model", "method", "options", "target", "source", "chunk_size", "dtype", "compression"]
"""Attributes that must match for a run to resume a store."""


@dataclass(frozen=True)
class Layout:
    """The shape of a store: ``count`` samples in chunks of ``chunk_size``, relevance per sample, classes."""

    count: int
    chunk_size: int
    relevance_shape: tuple[int, ...]
    classes: int
    dtype: str = "float32"
    compression: str = "zstd"

    @property
    def chunks(self) -> int:
        return math.ceil(self.count / self.chunk_size)

    def arrays(self) -> dict[str, tuple[tuple[int, ...], str, Any]]:
        """name -> (shape, dtype, fill value)."""
        n = self.count
        return {
            "relevance": ((n, *self.relevance_shape), self.dtype, np.nan),
            "logits": ((n, self.classes), "float32", np.nan),
            "prediction": ((n,), "int64", -1),
            "label": ((n,), "int64", -1),
            "index": ((n,), "int64", -1),
        }


class Store:
    """A dataset store opened with :func:`open_store`: the arrays (lazy zarr arrays), ``attrs``, ``len()``,
    which chunks are ``finished``, and :meth:`rows` of a chunk."""

    def __init__(self, path: Path, group: Any) -> None:
        self.path, self.group = path, group
        self.attrs: dict[str, Any] = dict(group.attrs)

    relevance = property(lambda self: self.group["relevance"], doc="(N, ...) relevance, lazy")
    logits = property(lambda self: self.group["logits"], doc="(N, C) float32 logits, lazy")
    prediction = property(lambda self: self.group["prediction"], doc="(N,) int64 predicted class, lazy")
    label = property(lambda self: self.group["label"], doc="(N,) int64 label, -1 when unknown, lazy")
    index = property(lambda self: self.group["index"], doc="(N,) int64 position in the source, lazy")

    def __len__(self) -> int:
        return int(self.group["index"].shape[0])

    @property
    def chunk_size(self) -> int:
        return int(self.attrs["chunk_size"])

    @property
    def chunks(self) -> int:
        return math.ceil(len(self) / self.chunk_size)

    def rows(self, chunk: int) -> slice:
        """The samples of ``chunk``: ``slice(start, stop)``."""
        if not 0 <= chunk < self.chunks:
            raise StoreError(f"{self.path}: chunk {chunk} out of range (0..{self.chunks - 1})")
        return slice(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, len(self)))

    @property
    def finished(self) -> np.ndarray:
        """``(chunks,)`` bool: which chunks are written completely."""
        return np.asarray(self.group[MARKERS][:], dtype=bool)

    @property
    def finished_samples(self) -> np.ndarray:
        """``(N,)`` bool: which samples lie in finished chunks."""
        return np.repeat(self.finished, self.chunk_size)[: len(self)]

    @property
    def complete(self) -> bool:
        return bool(self.finished.all())

    def is_finished(self, chunk: int) -> bool:
        return bool(self.group[MARKERS][chunk])

    def write_chunk(self, chunk: int, values: dict[str, np.ndarray]) -> None:
        """Writes the arrays' rows of ``chunk`` (each its own zarr chunk), then sets its marker; a full disk or
        any other OS error becomes a :class:`StoreError` that says the store is valid up to its last marker."""
        rows = self.rows(chunk)
        try:
            for name in ("relevance", "logits", "prediction", "label", "index"):
                self.group[name][rows] = values[name]
            self.group[MARKERS][chunk] = 1
        except OSError as err:
            full = "the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot write"
            raise StoreError(
                f"{self.path}: {full} while writing chunk {chunk} ({err.strerror or err}); the store is valid up "
                "to its finished chunks; make room and run the same command again to resume"
            ) from None

    def __repr__(self) -> str:
        done = int(self.finished.sum())
        return (f"Store({str(self.path)!r}, {len(self)} samples, relevance {tuple(self.relevance.shape[1:])} "
                f"{self.attrs.get('dtype')}, {done}/{self.chunks} chunks finished)")  # fmt: skip


def open_store(path: str | Path, writable: bool = False) -> Store:
    """Opens the store at ``path`` (see the module doc); :class:`StoreError` if it is not one."""
    zarr = require_zarr()
    where = Path(path)
    if not (where / "zarr.json").is_file():
        raise StoreError(f"{where}: not a dataset store (no zarr.json)")
    try:
        group = zarr.open_group(str(where), mode="r+" if writable else "r")
    except (OSError, ValueError, TypeError) as err:
        raise StoreError(f"{where}: not a readable zarr group ({err})") from None
    found = group.attrs.get("format")
    if found != FORMAT:
        raise StoreError(f"{where}: a zarr group, but not an lrpkit dataset store (format {found!r})")
    if group.attrs.get("version") != VERSION:
        raise StoreError(f"{where}: store version {group.attrs.get('version')!r}, this lrpkit reads {VERSION}")
    return Store(where, group)


def prepare_store(path: str | Path, layout: Layout, attrs: dict[str, Any]) -> Store:
    """The store for a run: created whole (atomically) if ``path`` does not exist, else the existing one, refused
    with what differs unless it was made by the same run (same ``attrs`` under :data:`RUN_KEYS` and layout)."""
    where = Path(path)
    if where.exists() and not (where.is_dir() and not any(where.iterdir())):
        store = open_store(where, writable=True)
        found = differences(store.attrs, attrs, RUN_KEYS)
        if len(store) != layout.count or tuple(store.relevance.shape[1:]) != layout.relevance_shape:
            found.append(f"shape: {store.relevance.shape} there, {(layout.count, *layout.relevance_shape)} now")
        if found:
            raise StoreError(
                f"{where}: this store was written by another run ({'; '.join(found)}); "
                f"write to a new --out, or delete {where} to start over"
            )
        return store
    atomic_directory(where, lambda staging: _create(staging, layout, attrs))
    return open_store(where, writable=True)


def _create(directory: Path, layout: Layout, attrs: dict[str, Any]) -> None:
    zarr = require_zarr()
    from .. import __version__

    if layout.dtype not in DTYPES or layout.compression not in COMPRESSIONS:
        raise StoreError(f"dtype must be one of {DTYPES} and compression one of {COMPRESSIONS}")
    group = zarr.open_group(str(directory), mode="w")
    compressors = None if layout.compression == "none" else [zarr.codecs.BloscCodec(**BLOSC)]
    for name, (shape, dtype, fill) in layout.arrays().items():
        chunks = (layout.chunk_size, *shape[1:])
        group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, compressors=compressors)
    group.create_array(MARKERS, shape=(layout.chunks,), chunks=(1,), dtype="uint8", fill_value=0, compressors=None)
    group.attrs.update({"format": FORMAT, "version": VERSION, "lrpkit_version": __version__, **attrs,
                        "chunk_size": layout.chunk_size, "dtype": layout.dtype, "compression": layout.compression,
                        "markers": MARKERS})  # fmt: skip
