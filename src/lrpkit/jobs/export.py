"""A store as the attribution HDF5 file that ViRelAy reads: ``attribution`` (n, C, H, W) float32, ``label``
(n, classes) float32 (one-hot of the explained class), ``prediction`` (n, classes) float32 (the logits) and
``index`` (n,) uint32 (position in the source). Only finished chunks are exported, one chunk at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingExtraError, StoreError
from ..files import atomic_write
from .store import Store, open_store


def export_h5(store: Store | str | Path, out: str | Path, class_index: int | None = None) -> Path:
    """Writes ``out`` (atomically) from ``store``; ``class_index`` picks one class of a ``target="all"`` store."""
    try:
        import h5py
    except ImportError:
        raise MissingExtraError("export-h5 needs h5py: pip install 'lrpkit[dataset]'") from None
    store = store if isinstance(store, Store) else open_store(store)
    _check_class(store, class_index)
    chunks = np.flatnonzero(store.finished)
    if len(chunks) == 0:
        raise StoreError(f"{store.path}: no finished chunk to export yet")
    count = int(store.finished_samples.sum())
    classes = store.logits.shape[1]
    shape = store.relevance.shape[2:] if class_index is not None else store.relevance.shape[1:]

    def write(file: Any) -> None:
        with h5py.File(file, "w") as h5:
            h5.create_dataset("attribution", (count, *shape), np.float32)
            h5.create_dataset("label", (count, classes), np.float32)
            h5.create_dataset("prediction", (count, classes), np.float32)
            h5.create_dataset("index", (count,), np.uint32)
            at = 0
            for chunk in chunks.tolist():
                rows = store.rows(chunk)
                n = rows.stop - rows.start
                values = _chunk(store, rows, class_index)
                for name, value in values.items():
                    h5[name][at : at + n] = value
                at += n

    return atomic_write(out, write)


def _check_class(store: Store, class_index: int | None) -> None:
    target, classes = store.attrs["target"], store.logits.shape[1]
    if target == "all" and (class_index is None or not 0 <= class_index < classes):
        raise StoreError(f"{store.path}: holds every class (target 'all'); pick one with --class 0..{classes - 1}")
    if target != "all" and class_index is not None:
        raise StoreError(f"{store.path}: holds one heatmap per sample (target {target!r}); --class is for 'all'")


def _chunk(store: Store, rows: slice, class_index: int | None) -> dict[str, np.ndarray]:
    """One chunk's rows in the HDF5 layout."""
    relevance, logits = store.relevance[rows], store.logits[rows]
    target = store.attrs["target"]
    if class_index is not None:
        relevance, explained = relevance[:, class_index], np.full(len(logits), class_index)
    elif target in ("true", "pred"):
        explained = (store.label if target == "true" else store.prediction)[rows]
    else:
        explained = np.full(len(logits), int(target))
    return {
        "attribution": relevance.astype(np.float32),
        "label": np.eye(logits.shape[1], dtype=np.float32)[explained],
        "prediction": logits.astype(np.float32),
        "index": store.index[rows].astype(np.uint32),
    }
