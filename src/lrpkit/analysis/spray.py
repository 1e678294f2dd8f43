"""``lrpkit.spray``: spectral relevance analysis (SpRAy) of every class of a dataset's heatmaps.

Per class: the steps of :mod:`lrpkit.analysis.spectral` (features, k-NN graph, spectrum, eigengap, k-means for
each ``k``, t-SNE/UMAP), then how cut off the class's smallest cluster is. A class whose smallest cluster has
(almost) no neighbourhood edges to the rest — conductance near 0 — is where the model may use a separate
strategy: a Clever Hans candidate. Classes are ranked by that conductance, lowest first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, SpecError
from . import spectral

EMBEDDINGS = ("tsne", "umap")
GROUPINGS = ("label", "prediction")


@dataclass(frozen=True)
class ClassAnalysis:
    """SpRAy of one class: ``rows`` (positions of its samples in the analysed arrays / store), ``index`` (their
    index in the source), the eigenvalues of ``L`` (rising) and the spectral ``embedding`` ``(n, K)``, the
    eigengap's ``suggested`` k, k-means ``clusters`` per k (cluster 0 the largest), 2-D ``tsne``/``umap``
    pictures (or None), and the ``conductance`` of the smallest cluster at the suggested k."""

    label: int
    rows: np.ndarray
    index: np.ndarray
    eigenvalues: np.ndarray
    embedding: np.ndarray
    suggested: int
    clusters: dict[int, np.ndarray]
    conductance: float
    tsne: np.ndarray | None = None
    umap: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def labels(self, k: int | None = None) -> np.ndarray:
        """Cluster of each sample at ``k`` clusters (default: the suggested k)."""
        k = self.suggested if k is None else k
        if k not in self.clusters:
            raise SpecError(f"class {self.label}: no clustering with k={k}; computed: {sorted(self.clusters)}")
        return self.clusters[k]

    def smallest(self, k: int | None = None) -> int:
        """The cluster id of the smallest cluster at ``k`` (ids count down by size: the last one)."""
        return int(self.labels(k).max())

    def __repr__(self) -> str:
        sizes = np.bincount(self.labels()).tolist()
        return (f"ClassAnalysis(class {self.label}, {len(self.rows)} samples, suggested k={self.suggested}, "
                f"sizes {sizes}, conductance of the smallest {self.conductance:.3f})")  # fmt: skip


@dataclass(frozen=True)
class Spray:
    """SpRAy of several classes (``classes``: class -> :class:`ClassAnalysis`) and the ``settings`` used."""

    classes: dict[int, ClassAnalysis]
    settings: dict[str, Any]

    def ranking(self) -> list[int]:
        """Classes by how cut off their smallest cluster is: lowest conductance first (ties: larger eigengap)."""

        def key(c: int) -> tuple[float, float]:
            a = self.classes[c]
            return (a.conductance, -(a.eigenvalues[a.suggested] - a.eigenvalues[a.suggested - 1]))

        return sorted(self.classes, key=key)

    def __getitem__(self, label: int) -> ClassAnalysis:
        return self.classes[label]

    def __repr__(self) -> str:
        return f"Spray({len(self.classes)} classes, ranking {self.ranking()}, {self.settings})"


# -- one class ---------------------------------------------------------------------------------------


def analyse_class(
    relevance: Any,
    label: int = 0,
    *,
    neighbors: int = 10,
    eigenvalues: int = 32,
    clusters: Iterable[int] = range(2, 11),
    pool: int | None = None,
    embeddings: Iterable[str] = EMBEDDINGS,
    columns: str = "leading",
    seed: int = 0,
    rows: np.ndarray | None = None,
    index: np.ndarray | None = None,
) -> ClassAnalysis:
    """SpRAy of one class's heatmaps ``(n, ...)``; see :mod:`lrpkit.analysis.spectral` for the steps."""
    clusters, embeddings = _check_clusters(clusters), _check_embeddings(embeddings)
    clock = _Clock()
    x = clock("features", spectral.features, relevance, pool)
    affinity = clock("neighbors", spectral.knn_affinity, x, neighbors)
    adjacency = spectral.normalized_adjacency(affinity)
    values, vectors = clock("eigenvectors", spectral.spectral_embedding, adjacency, eigenvalues, seed)
    usable = [k for k in clusters if k < len(values) and k <= len(x)]
    suggested = spectral.eigengap(values, usable or [1])
    partitions = {k: clock("kmeans", spectral.kmeans, vectors, k, seed, columns=columns) for k in usable}
    partitions.setdefault(suggested, np.zeros(len(x), dtype=np.int64))
    labels = partitions[suggested]
    phi = spectral.conductance(affinity, labels == labels.max()) if labels.max() > 0 else 1.0
    pictures = {name: clock(name, getattr(spectral, name), vectors, seed=seed) for name in embeddings}
    n = len(x)
    return ClassAnalysis(
        label=int(label),
        rows=np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64),
        index=np.arange(n) if index is None else np.asarray(index, dtype=np.int64),
        eigenvalues=values, embedding=vectors, suggested=suggested, clusters=partitions, conductance=phi,
        tsne=pictures.get("tsne"), umap=pictures.get("umap"), seconds=clock.seconds,
    )  # fmt: skip


class _Clock:
    """Calls a step and adds its wall time to ``seconds[name]``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, step: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = step(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return result


def _check_clusters(clusters: Iterable[int]) -> list[int]:
    values = list(clusters)
    if not values or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in values):
        raise SpecError(f"clusters must be positive whole numbers (e.g. range(2, 11)), got {values!r}")
    return sorted({int(k) for k in values})


def _check_embeddings(embeddings: Iterable[str]) -> list[str]:
    names = [embeddings] if isinstance(embeddings, str) else list(embeddings)
    unknown = [name for name in names if name not in EMBEDDINGS]
    if unknown:
        raise SpecError(f"unknown embedding(s) {unknown}; choose from {', '.join(EMBEDDINGS)}")
    return names


# -- a dataset -----------------------------------------------------------------------------------------


def spray(
    source: Any,
    labels: Any = None,
    *,
    classes: Iterable[int] | None = None,
    by: str = "label",
    neighbors: int = 10,
    eigenvalues: int = 32,
    clusters: Iterable[int] = range(2, 11),
    pool: int | None = None,
    embeddings: Iterable[str] = EMBEDDINGS,
    columns: str = "leading",
    seed: int = 0,
    progress: Any = None,
) -> Spray:
    """Spectral relevance analysis of each class of a dataset's heatmaps.

    ``source``: a dataset store (path, or what :func:`lrpkit.analysis.store.open_heatmaps` returns), or an
    array of heatmaps ``(N, C, H, W)`` / ``(N, H, W)`` / ``(N, F)`` with ``labels`` ``(N,)``. A store groups
    samples by ``by`` (``"label"``, the true class as CoRelAy does, or ``"prediction"``); for a store explained
    with target ``"all"`` a class is analysed on its own relevance map. ``classes``: which (default: every
    class present). ``neighbors``: k of the k-NN graph; ``eigenvalues``: K; ``clusters``: the k of k-means
    (the eigengap picks among them); ``pool``: sum-pool maps by this factor first; ``embeddings``: any of
    ``"tsne"``, ``"umap"`` (t-SNE of 50,000 samples takes minutes: pass ``()`` to skip); ``columns``: k-means on
    the first k eigenvectors (``"leading"``) or on all K (``"all"``, CoRelAy). ``progress``: a
    callable ``progress(label, count)`` told before each class.
    """
    from .store import class_heatmaps, dataset

    if by not in GROUPINGS:
        raise SpecError(f"by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    data = dataset(source, labels, by)
    chosen = _check_classes(classes, data.classes)
    options = {"neighbors": neighbors, "eigenvalues": eigenvalues, "clusters": list(clusters), "pool": pool}
    options |= {"embeddings": list(embeddings), "columns": columns, "seed": seed}
    results = {}
    for label in chosen:
        rows = np.flatnonzero(data.group == label)
        if progress is not None:
            progress(label, len(rows))
        if len(rows) < 2:
            raise InputError(f"class {label}: {len(rows)} sample(s); SpRAy needs at least 2")
        relevance = class_heatmaps(data, rows, label)
        results[label] = analyse_class(relevance, label, rows=rows, index=data.index[rows], **options)
    return Spray(results, {**options, "by": by, "source": data.description})


def _check_classes(classes: Iterable[int] | None, present: Mapping[int, int] | np.ndarray) -> list[int]:
    found = sorted(int(c) for c in present)
    if classes is None:
        return found
    chosen = [int(c) for c in classes]
    missing = [c for c in chosen if c not in found]
    if missing:
        raise InputError(f"class(es) {missing} have no samples; classes present: {found}")
    return chosen
