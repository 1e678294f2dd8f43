"""lrpkit's SpRAy against CoRelAy's spectral clustering pipeline on the same heatmaps and settings.

Both get the same heatmaps, summed over channels and divided by their sum (CoRelAy's ``Normalize``; the
heatmaps are non-negative, so lrpkit's division by the sum of absolute values is the same), Euclidean distances,
a 10-nearest-neighbour affinity symmetrised as ``(A + Aᵀ)/2``, ``D^-1/2 A D^-1/2``, 32 eigenpairs, and k-means
(k = 2..10, k-means++, 10 restarts, seed 0) on all 32 row-normalised eigenvectors (lrpkit's ``columns="all"``).
Reported: the largest eigenvalue difference and the adjusted Rand index of each k's partitions.

Needs CoRelAy (``pip install corelay``; the bench keeps it in ``.venv-corelay``, see bench/README.md). Real
heatmaps are made first, in lrpkit's own environment (a CNN trained for ``--steps`` on the embedded MNIST;
``epsilon_plus`` heatmaps of the true class of all 500 embedded images of one digit):

    .venv/bin/python bench/spray_corelay.py --make-heatmaps out/heatmaps-3.npy [--digit 3] [--steps 300]
    .venv-corelay/bin/python bench/spray_corelay.py --heatmaps out/heatmaps-3.npy [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lrpkit.analysis import analyse_class

CLUSTERS = range(2, 11)


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 1, 28, 28)`` non-negative heatmaps: three shapes (a stroke, a ring, a corner patch) at jittered places,
    in proportions 5:3:2, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    maps = 0.05 * rng.random((n, 1, 28, 28))
    kinds = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    for i, kind in enumerate(kinds):
        dy, dx = rng.integers(-2, 3, 2)
        if kind == 0:
            maps[i, 0] += np.exp(-((xx - 14 - dx) ** 2) / 4) * ((yy > 5 + dy) & (yy < 23 + dy))
        elif kind == 1:
            maps[i, 0] += np.exp(-((np.hypot(yy - 14 - dy, xx - 14 - dx) - 7) ** 2) / 2)
        else:
            maps[i, 0, 1 + abs(dy) : 5 + abs(dy), 1 + abs(dx) : 5 + abs(dx)] += 2.0
    return maps


def make_heatmaps(path: Path, digit: int, steps: int) -> None:
    import torch

    import lrpkit

    data = lrpkit.mnist()
    net = lrpkit.cnn()
    net.fit(data.train, steps=steps, progress=False)
    x = torch.cat([data.train.images[data.train.labels == digit], data.test.images[data.test.labels == digit]])
    relevance = net.lrp(x, digit, "epsilon_plus").numpy()
    np.save(path, relevance)
    print(f"{path}: {relevance.shape} epsilon_plus heatmaps of digit {digit} (CNN, {steps} steps)")


def corelay_run(maps: np.ndarray, neighbors: int, eigenvalues: int) -> tuple[np.ndarray, list[np.ndarray]]:
    from corelay.pipeline.spectral import SpectralClustering
    from corelay.processor.affinity import SparseKNN
    from corelay.processor.clustering import KMeans
    from corelay.processor.distance import SciPyPDist
    from corelay.processor.embedding import EigenDecomposition
    from corelay.processor.flow import Parallel
    from corelay.processor.laplacian import SymmetricNormalLaplacian

    def preprocessing(data: np.ndarray) -> np.ndarray:  # SumChannel, Normalize, Flatten of CoRelAy's example
        summed = data.sum(1)
        return (summed / summed.sum((1, 2), keepdims=True)).reshape(len(data), -1)

    pipeline = SpectralClustering(
        preprocessing=preprocessing,
        pairwise_distance=SciPyPDist(metric="euclidean"),
        affinity=SparseKNN(n_neighbors=neighbors, symmetric=True),
        laplacian=SymmetricNormalLaplacian(),
        embedding=EigenDecomposition(n_eigval=eigenvalues, is_output=True),
        clustering=Parallel(
            [KMeans(n_clusters=k, kwargs={"n_init": 10, "random_state": 0}) for k in CLUSTERS],
            broadcast=True, is_output=True,
        ),
    )  # fmt: skip
    (values, _), partitions = pipeline(maps)
    return np.sort(values), list(partitions)


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heatmaps", type=Path, help=".npy of heatmaps (N, C, H, W) to compare besides synthetic")
    parser.add_argument("--make-heatmaps", type=Path, metavar="NPY", help="only write real heatmaps (needs torch)")
    parser.add_argument("--digit", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--write", action="store_true", help="update this script's section of bench/RESULTS.md")
    args = parser.parse_args()
    if args.make_heatmaps:
        return make_heatmaps(args.make_heatmaps, args.digit, args.steps)
    cases = {"synthetic (3 shapes, 5:3:2, noise)": synthetic(args.n)}
    if args.heatmaps:
        cases = {f"{args.heatmaps.name} (real)": np.load(args.heatmaps)[: args.n], **cases}
    lines = [f"## SpRAy against CoRelAy ({args.n} heatmaps)", "",
             "Settings: 10 neighbours, 32 eigenvalues, k-means k = 2..10 (10 restarts, seed 0) on all eigenvectors.",
             "", "| heatmaps | connected components | max eigenvalue difference | "
             "vs. dense `eigvalsh`: lrpkit / CoRelAy | ARI per k = 2..10 | lrpkit s | CoRelAy s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [compare(name, maps) for name, maps in cases.items()]
    print("\n".join(lines))
    if args.write:
        import torch

        from _report import environment, update_section

        update_section("spray-corelay", "\n".join([lines[0], "", *environment(torch.device("cpu")), *lines[1:]]))


def compare(name: str, maps: np.ndarray) -> str:
    """One table row: both pipelines on the same (non-negative) heatmaps."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.metrics import adjusted_rand_score

    from lrpkit.analysis import spectral

    maps = np.clip(maps.astype(np.float64), 0, None)
    start = time.perf_counter()
    ours = analyse_class(maps, eigenvalues=32, neighbors=10, clusters=CLUSTERS, embeddings=(), columns="all")
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    values, partitions = corelay_run(maps, 10, 32)
    corelay_seconds = time.perf_counter() - start
    affinity = spectral.knn_affinity(spectral.features(maps), 10)
    components = connected_components(affinity, directed=False)[0]
    dense = np.sort(1 - np.linalg.eigvalsh(spectral.normalized_adjacency(affinity).toarray()))[:32]
    exact = {"lrpkit": np.abs(ours.eigenvalues - dense).max(), "CoRelAy": np.abs(values - dense).max()}
    difference = float(np.abs(values - ours.eigenvalues).max())
    ari = [adjusted_rand_score(theirs, ours.clusters[k]) for k, theirs in zip(CLUSTERS, partitions, strict=True)]
    return (f"| {name} | {components} | {difference:.1e} | {exact['lrpkit']:.1e} / {exact['CoRelAy']:.1e} | "
            f"{', '.join(f'{v:.3f}' for v in ari)} | "
            f"{ours_seconds:.2f} | {corelay_seconds:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
