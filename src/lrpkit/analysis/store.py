"""Where SpRAy's heatmaps come from and where its results go.

In: a dataset store (zarr v3 group with ``relevance`` ``(N, ...)`` or ``(N, C, ...)`` for target ``"all"``,
``logits``, ``prediction``, ``label`` (-1: unknown), ``index``, and attributes), read lazily class by class; or
arrays of heatmaps with labels. Rows not yet written (``prediction`` -1) are left out.

Out: ``spray/<class>/`` groups inside the store — arrays ``rows``, ``index``, ``eigenvalues``, ``embedding``,
``kmeans-02`` …, ``tsne``, ``umap`` and attributes ``suggested``, ``conductance``, ``settings`` — each class
written to a staging directory and renamed into place, so a group is complete or absent; and ViRelAy's analysis
HDF5 layout (:func:`export_virelay`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, InputError
from ..files import atomic_directory, atomic_write
from .spectral import require

RESULTS = "spray"
ARRAYS = ("relevance", "prediction", "label", "index")


@dataclass(frozen=True)
class Heatmaps:
    """Heatmaps to analyse: ``relevance`` (array-like, rows read on demand), per row the ``group`` (class, or -1
    for rows to leave out) and source ``index``, whether rows hold every class (target ``"all"``), and where
    they came from."""

    relevance: Any
    group: np.ndarray
    index: np.ndarray
    every_class: bool
    description: str
    path: Path | None = None

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.group[self.group >= 0])


def open_heatmaps(path: str | Path) -> Any:
    """The dataset store at ``path`` with its arrays (lazy) and ``attrs``; :class:`DataError` naming what is
    missing."""
    zarr = require("zarr")
    where = Path(path)
    if not (where / "zarr.json").is_file():
        raise DataError(f"{where}: not a dataset store (no zarr.json; write one with lrpkit explain-dataset)")
    try:
        group = zarr.open_group(str(where), mode="r")
    except (OSError, ValueError, TypeError) as err:
        raise DataError(f"{where}: not a readable zarr group ({err})") from None
    missing = [name for name in ARRAYS if name not in group.array_keys()]
    if missing:
        raise DataError(f"{where}: a zarr group without the store's array(s) {missing}")
    return _Store(where, group)


class _Store:
    def __init__(self, path: Path, group: Any) -> None:
        self.path, self.group, self.attrs = path, group, dict(group.attrs)

    def __getattr__(self, name: str) -> Any:
        if name in ARRAYS:
            return self.group[name]
        raise AttributeError(name)


def dataset(source: Any, labels: Any, by: str) -> Heatmaps:
    """:class:`Heatmaps` from a store path, an opened store, or an array with ``labels``."""
    if isinstance(source, str | Path):
        source = open_heatmaps(source)
    if hasattr(source, "relevance") and hasattr(source, "prediction"):
        if labels is not None:
            raise InputError("labels come from the store; pass labels only with an array of heatmaps")
        return _store_heatmaps(source, by)
    return _array_heatmaps(source, labels)


def _store_heatmaps(store: Any, by: str) -> Heatmaps:
    prediction = np.asarray(store.prediction[:], dtype=np.int64)
    group = prediction if by == "prediction" else np.asarray(store.label[:], dtype=np.int64)
    group = np.where(prediction >= 0, group, -1)  # rows not written yet
    every = store.attrs.get("target") == "all"
    path = getattr(store, "path", None)
    method = json.dumps(store.attrs.get("method"))
    return Heatmaps(store.relevance, group, np.asarray(store.index[:], dtype=np.int64), every,
                    f"store {path} (method {method}, target {store.attrs.get('target')})", path)  # fmt: skip


def _array_heatmaps(relevance: Any, labels: Any) -> Heatmaps:
    if hasattr(relevance, "detach"):
        relevance = relevance.detach().cpu().numpy()
    relevance = np.asarray(relevance)
    if labels is None:
        labels = np.zeros(len(relevance), dtype=np.int64)  # one class
    labels = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels).astype(np.int64)
    if labels.shape != (len(relevance),):
        raise InputError(f"labels must be ({len(relevance)},), one per heatmap; got shape {labels.shape}")
    return Heatmaps(relevance, labels, np.arange(len(labels)), False, f"array {relevance.shape}")


def class_heatmaps(data: Heatmaps, rows: np.ndarray, label: int) -> np.ndarray:
    """The heatmaps of ``rows`` (for a target-``"all"`` store: their map of class ``label``)."""
    relevance = data.relevance
    if hasattr(relevance, "oindex"):  # zarr: read only these rows (and that class)
        return np.asarray(relevance.oindex[(rows, label) if data.every_class else rows], dtype=np.float64)
    picked = relevance[rows]
    return picked[:, label] if data.every_class else picked


# -- results into the store ------------------------------------------------------------------------


def class_arrays(analysis: Any) -> dict[str, np.ndarray]:
    """One class's results as named arrays (the layout of a ``spray/<class>`` group)."""
    arrays = {"rows": analysis.rows, "index": analysis.index, "eigenvalues": analysis.eigenvalues,
              "embedding": analysis.embedding}  # fmt: skip
    arrays |= {f"kmeans-{k:02d}": labels for k, labels in analysis.clusters.items()}
    arrays |= {name: getattr(analysis, name) for name in ("tsne", "umap") if getattr(analysis, name) is not None}
    return arrays


def write_results(result: Any, path: str | Path) -> Path:
    """Writes each class of a :class:`~lrpkit.analysis.spray.Spray` as ``spray/<class>`` into the store at
    ``path`` (each group replaced atomically); other classes' groups stay."""
    zarr = require("zarr")
    root = Path(path) / RESULTS
    zarr.open_group(str(root), mode="a")
    for label, analysis in result.classes.items():
        attrs = {"class": label, "suggested": analysis.suggested, "conductance": analysis.conductance,
                 "settings": _json_safe(result.settings), "seconds": analysis.seconds}  # fmt: skip
        atomic_directory(root / str(label), lambda staging, a=analysis, m=attrs: _write_group(zarr, staging, a, m))
    return root


def _write_group(zarr: Any, directory: Path, analysis: Any, attrs: dict[str, Any]) -> None:
    group = zarr.open_group(str(directory), mode="w")
    for name, values in class_arrays(analysis).items():
        group.create_array(name, data=np.ascontiguousarray(values))
    group.attrs.update(attrs)


def read_results(path: str | Path) -> dict[int, dict[str, Any]]:
    """``class -> {array name: values, "attrs": {...}}`` of the ``spray/`` groups of the store at ``path``."""
    zarr = require("zarr")
    root = Path(path) / RESULTS
    if not (root / "zarr.json").is_file():
        raise DataError(f"{Path(path)}: holds no SpRAy results (no {RESULTS}/ group)")
    found = {}
    for name, group in zarr.open_group(str(root), mode="r").groups():
        found[int(name)] = {key: np.asarray(group[key][...]) for key in group.array_keys()}
        found[int(name)]["attrs"] = dict(group.attrs)
    return found


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# -- ViRelAy ----------------------------------------------------------------------------------------


def export_virelay(result: Any, path: str | Path) -> Path:
    """Writes ViRelAy's analysis HDF5 file: per class a group ``f"{class:08d}"`` with ``index`` (uint32),
    ``embedding/spectral`` (float32, attribute ``eigenvalue``), ``embedding/tsne`` and ``embedding/umap``
    (attributes ``embedding="spectral"``, ``index=[0, 1]``), ``cluster/kmeans-KK`` (attributes
    ``embedding``, ``k``, ``index``). Eigenvalues and embedding columns are in CoRelAy's order (``1 − μ``
    for ``μ`` rising, i.e. ``λ`` falling). Written to a temporary file and renamed."""
    h5py = require("h5py")

    def write(file: Any) -> None:
        with h5py.File(file, "w") as h5:
            for label, analysis in result.classes.items():
                _virelay_group(h5.create_group(f"{label:08d}"), analysis)

    return atomic_write(path, write)


def _virelay_group(group: Any, analysis: Any) -> None:
    group["index"] = analysis.index.astype(np.uint32)
    spectral = group.create_dataset("embedding/spectral", data=analysis.embedding[:, ::-1].astype(np.float32))
    spectral.attrs["eigenvalue"] = analysis.eigenvalues[::-1].astype(np.float32)
    for name in ("tsne", "umap"):
        values = getattr(analysis, name)
        if values is not None:
            picture = group.create_dataset(f"embedding/{name}", data=values.astype(np.float32))
            picture.attrs["embedding"], picture.attrs["index"] = "spectral", np.array([0, 1])
    for k, labels in analysis.clusters.items():
        clustering = group.create_dataset(f"cluster/kmeans-{k:02d}", data=labels)
        clustering.attrs["embedding"], clustering.attrs["k"] = "spectral", k
        clustering.attrs["index"] = np.arange(analysis.embedding.shape[1], dtype=np.uint32)
