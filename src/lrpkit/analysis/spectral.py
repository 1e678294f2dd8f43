"""The steps of spectral relevance analysis (SpRAy, Lapuschkin et al., Nat. Commun. 2019), one function each,
with CoRelAy's definitions so that results compare:

1. ``features``: heatmaps summed over channels, optionally sum-pooled, each divided by ``Σ|R|``, flattened;
2. ``knn_affinity``: ``A_ij = 1`` if ``j`` is among the ``k`` nearest neighbours of ``i`` (Euclidean, ``i``
   itself excluded), then ``A = (A + Aᵀ)/2`` (entries 0.5 or 1) — found by a nearest-neighbour search, never a
   dense ``N × N`` matrix;
3. ``normalized_adjacency``: ``M = D^-1/2 A D^-1/2`` with ``D = diag(Σ_j A_ij)``;
4. ``spectral_embedding``: the ``K`` largest eigenpairs of ``M`` (``eigsh``, per connected component); the
   eigenvalues of ``L = I − M`` are ``1 − μ``, in ``[0, 2]``, the smallest 0 once per connected component; the
   eigenvectors are row-normalised (each sample's embedding has length 1);
5. ``eigengap``: the number of clusters ``k`` with the largest gap ``λ_{k+1} − λ_k`` (von Luxburg 2007);
6. ``kmeans`` for each ``k`` on the first ``k`` columns of the embedding (or, as CoRelAy, on all of them);
   ``tsne`` (perplexity 30) and ``umap`` of the embedding for pictures; ``conductance`` of a cluster measures
   how cut off it is.
"""

from __future__ import annotations

import warnings
from importlib import import_module
from typing import Any

import numpy as np

from ..errors import InputError, MissingExtraError, SpecError

EXTRA = "analysis"
DENSE_LIMIT = 3
"""Below ``DENSE_LIMIT * K`` samples the eigenproblem is solved densely (ARPACK wants ``N`` well above ``K``)."""


def require(module: str) -> Any:
    """Imports ``module`` of the ``analysis`` extra, or says how to install it."""
    try:
        with warnings.catch_warnings():  # umap: "Tensorflow not installed; ParametricUMAP will be unavailable"
            warnings.simplefilter("ignore", ImportWarning)
            return import_module(module)
    except ImportError:
        package = {"sklearn": "scikit-learn", "umap": "umap-learn"}.get(module.split(".")[0], module.split(".")[0])
        raise MissingExtraError(f"spectral relevance analysis needs {package}: pip install 'lrpkit[{EXTRA}]'") from None


# -- 1. features ------------------------------------------------------------------------------------


def features(relevance: Any, pool: int | None = None) -> np.ndarray:
    """``(N, F)`` float64: per sample ``r / Σ|r|`` of the channel-summed (and ``pool × pool`` sum-pooled) map.

    ``relevance``: ``(N, C, H, W)`` (channels summed), ``(N, H, W)`` or ``(N, F)`` (``pool`` needs images). An
    all-zero map stays zero. For non-negative maps this is CoRelAy's division by the sum.
    """
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim == 4:
        r = r.sum(1)
    if r.ndim not in (2, 3) or len(r) == 0:
        raise InputError(f"heatmaps must be (N, C, H, W), (N, H, W) or (N, F) with N > 0, got shape {r.shape}")
    if pool is not None and pool != 1:
        r = sum_pool(r, pool)
    r = r.reshape(len(r), -1)
    if not np.isfinite(r).all():
        raise InputError(f"heatmaps hold NaN or Inf (in {int((~np.isfinite(r)).any(1).sum())} of {len(r)} samples)")
    total = np.abs(r).sum(1, keepdims=True)
    return np.divide(r, total, out=np.zeros_like(r), where=total > 0)


def sum_pool(maps: np.ndarray, size: int) -> np.ndarray:
    """``(N, H, W) -> (N, H/size, W/size)``: the sum of each ``size × size`` block (H, W divisible by size)."""
    if maps.ndim != 3:
        raise InputError(f"pooling needs (N, H, W) maps, got shape {maps.shape}")
    n, h, w = maps.shape
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or h % size or w % size:
        raise SpecError(f"pool must be a whole number dividing the map size {h}x{w}, got {size!r}")
    return maps.reshape(n, h // size, size, w // size, size).sum((2, 4))


# -- 2.-3. the graph --------------------------------------------------------------------------------


def nearest_neighbors(x: np.ndarray, k: int) -> np.ndarray:
    """``(N, k)``: the indices of each row's ``k`` nearest other rows (Euclidean), nearest first."""
    neighbors_cls = require("sklearn.neighbors").NearestNeighbors
    sklearn = require("sklearn")
    with sklearn.config_context(working_memory=256):  # MiB per block of distances
        found = neighbors_cls(n_neighbors=k + 1, algorithm="brute").fit(x).kneighbors(x, return_distance=False)
    is_self = found == np.arange(len(x))[:, None]
    is_self[~is_self.any(1), -1] = True  # a duplicate came before the sample itself: drop the farthest instead
    return found[~is_self].reshape(len(x), k)


def knn_affinity(x: np.ndarray, neighbors: int = 10) -> Any:
    """Sparse ``(N, N)`` ``(A + Aᵀ)/2`` of the ``k``-nearest-neighbour graph (``k = min(neighbors, N − 1)``)."""
    sparse = require("scipy.sparse")
    if isinstance(neighbors, bool) or not isinstance(neighbors, int) or neighbors < 1:
        raise SpecError(f"neighbors must be a positive integer, got {neighbors!r}")
    n = len(x)
    if n < 2:
        raise InputError(f"a neighbourhood graph needs at least 2 samples, got {n}")
    k = min(neighbors, n - 1)
    columns = nearest_neighbors(x, k)
    rows = np.repeat(np.arange(n), k)
    a = sparse.csr_matrix((np.ones(n * k), (rows, columns.ravel())), shape=(n, n))
    return ((a + a.T) / 2).tocsr()


def degrees(affinity: Any) -> np.ndarray:
    """``d_i = Σ_j A_ij``."""
    return np.asarray(affinity.sum(1)).ravel()


def normalized_adjacency(affinity: Any) -> Any:
    """``D^-1/2 A D^-1/2`` (sparse); every degree of a k-NN graph is at least ``k/2 > 0``."""
    sparse = require("scipy.sparse")
    scale = sparse.diags(degrees(affinity) ** -0.5)
    return (scale @ affinity @ scale).tocsr()


# -- 4.-5. spectrum ---------------------------------------------------------------------------------


def spectral_embedding(adjacency: Any, eigenvalues: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(λ, V)``: the ``K`` smallest eigenvalues ``λ = 1 − μ`` of ``L = I − M`` in rising order (``μ``: the
    largest eigenvalues of ``M``, ``K = min(eigenvalues, N − 1)``) and their eigenvectors ``(N, K)``, each row
    scaled to length 1.

    ``M`` is block-diagonal over the graph's connected components, so each component is solved on its own and
    the largest ``μ`` of all are kept: a Lanczos solver on the whole matrix can miss copies of a repeated
    eigenvalue (one ``μ = 1`` per component).
    """
    if isinstance(eigenvalues, bool) or not isinstance(eigenvalues, int) or eigenvalues < 1:
        raise SpecError(f"eigenvalues must be a positive integer, got {eigenvalues!r}")
    n = adjacency.shape[0]
    k = min(eigenvalues, n - 1)
    _, component = require("scipy.sparse.csgraph").connected_components(adjacency, directed=False)
    parts = []  # (μ, members, eigenvector on the members) of every component
    for label in np.unique(component):
        members = np.flatnonzero(component == label)
        mu, vectors = largest_eigenpairs(adjacency[members][:, members], min(k, len(members)), seed)
        parts += [(m, members, v) for m, v in zip(mu, vectors.T, strict=True)]
    parts.sort(key=lambda part: -part[0])
    embedding = np.zeros((n, k))
    for column, (_, members, vector) in enumerate(parts[:k]):
        embedding[members, column] = vector
    mu = np.array([part[0] for part in parts[:k]])
    return np.clip(1.0 - mu, 0.0, 2.0), row_normalize(embedding)


def largest_eigenpairs(matrix: Any, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (falling) of a symmetric sparse matrix and their eigenvectors: ARPACK
    (``eigsh``, seeded start vector) for large matrices, dense ``eigh`` below ``DENSE_LIMIT · k`` rows."""
    n = matrix.shape[0]
    if n <= DENSE_LIMIT * k or k >= n:
        mu, vectors = np.linalg.eigh(matrix.toarray())
        mu, vectors = mu[n - k :], vectors[:, n - k :]
    else:
        start = np.random.default_rng(seed).uniform(-1, 1, n)  # ARPACK's start vector: seeded, reproducible
        mu, vectors = require("scipy.sparse.linalg").eigsh(matrix, k=k, which="LA", v0=start)
    order = np.argsort(-mu, kind="stable")
    return mu[order], vectors[:, order]


def row_normalize(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its Euclidean length (zero rows stay zero)."""
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)


def eigengap(eigenvalues: np.ndarray, clusters: range | list[int]) -> int:
    """The ``k`` in ``clusters`` with the largest gap ``λ_{k+1} − λ_k`` (1-based, ``λ`` rising); the smallest
    such ``k`` on ties. ``k`` must leave a ``λ_{k+1}``: at most ``len(eigenvalues) − 1``."""
    usable = [k for k in clusters if 1 <= k < len(eigenvalues)]
    if not usable:
        raise SpecError(f"no number of clusters in {list(clusters)} fits {len(eigenvalues)} eigenvalues")
    gaps = [eigenvalues[k] - eigenvalues[k - 1] for k in usable]
    return usable[int(np.argmax(gaps))]


# -- 6. clusters and pictures -----------------------------------------------------------------------


COLUMNS = ("leading", "all")


def kmeans(embedding: np.ndarray, k: int, seed: int = 0, restarts: int = 10, columns: str = "leading") -> np.ndarray:
    """k-means labels ``(N,)`` int64 (scikit-learn, k-means++, best of ``restarts``), renumbered so that
    cluster 0 is the largest (ties: the one holding the earliest sample).

    ``columns="leading"``: on the first ``k`` eigenvectors, rows normalised again (Ng, Jordan & Weiss 2002; ``k``
    disconnected groups are found exactly); ``"all"``: on all ``K`` columns, as CoRelAy does (the later columns
    describe structure inside the groups and can split them).
    """
    cls = require("sklearn.cluster").KMeans
    if columns not in COLUMNS:
        raise SpecError(f"columns must be one of {', '.join(COLUMNS)}, got {columns!r}")
    k = min(k, len(embedding))
    points = row_normalize(embedding[:, :k]) if columns == "leading" else embedding
    labels = cls(n_clusters=k, n_init=restarts, random_state=seed).fit_predict(points)
    return by_size(labels)


def by_size(labels: np.ndarray) -> np.ndarray:
    """The same partition, clusters numbered by falling size (ties: by first member)."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = ids[np.lexsort((first, -counts))]
    renumber = np.empty(ids.max() + 1, dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return renumber[labels]


def conductance(affinity: Any, members: np.ndarray) -> float:
    """``φ(S) = cut(S, S̄) / min(vol S, vol S̄)`` with ``vol S = Σ_{i∈S} d_i``: 0 for a cluster with no edge
    leaving it, up to 1; ``members``: a boolean mask of ``S``."""
    members = np.asarray(members, dtype=bool)
    d = degrees(affinity)
    inside = np.asarray(affinity[members][:, members].sum())
    cut = d[members].sum() - inside
    smaller = min(d[members].sum(), d[~members].sum())
    return float(cut / smaller) if smaller > 0 else 0.0


def tsne(embedding: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of the embedding (CoRelAy's settings: random init, early exaggeration 12); perplexity is
    capped at ``(N − 1)/3`` for small classes."""
    cls = require("sklearn.manifold").TSNE
    n = len(embedding)
    if n < 4:
        return np.zeros((n, 2))
    perplexity = min(perplexity, (n - 1) / 3)
    model = cls(n_components=2, perplexity=perplexity, early_exaggeration=12.0, init="random", random_state=seed)
    return model.fit_transform(embedding).astype(np.float64)


def umap(embedding: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D UMAP of the embedding (CoRelAy's settings: 15 neighbours, min_dist 0.1, correlation metric)."""
    cls = require("umap").UMAP
    n = len(embedding)
    if n < 4:
        return np.zeros((n, 2))
    model = cls(n_neighbors=min(15, n - 1), min_dist=0.1, metric="correlation", random_state=seed, n_jobs=1)
    with warnings.catch_warnings():  # e.g. "graph is not fully connected": expected for well-separated clusters
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(model.fit_transform(embedding), dtype=np.float64)
