"""The spray command: spectral relevance analysis of a dataset store, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import SpecError


def parse_clusters(text: str) -> list[int]:
    """``"2..10"`` (both ends included) or ``"2,3,5"`` -> the list of k."""
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split(".."))
            values = list(range(low, high + 1))
        else:
            values = [int(part) for part in text.split(",")]
    except ValueError:
        raise SpecError(f"--clusters {text!r}: expected LOW..HIGH or a comma-separated list of whole numbers") from None
    if not values or min(values) < 1:
        raise SpecError(f"--clusters {text!r}: expected numbers of clusters >= 1")
    return values


def parse_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise SpecError(f"{option} {text!r}: expected a comma-separated list of class numbers") from None


def add_spray(sub: Any) -> None:
    p = sub.add_parser("spray", help="spectral relevance analysis (SpRAy) of a dataset store's heatmaps, with a report")
    p.add_argument("store", metavar="STORE", help="a dataset store written by lrpkit explain-dataset")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for report.html, summary.json, analysis.h5")
    p.add_argument("--classes", metavar="LIST", help="comma-separated classes (default: every class present)")
    p.add_argument("--by", choices=["label", "prediction"], default="label", help="group samples by (default: label)")
    p.add_argument("--neighbors", type=int, default=10, help="k of the k-nearest-neighbour graph (default: 10)")
    p.add_argument("--eigenvalues", type=int, default=32, help="eigenpairs of the spectral embedding (default: 32)")
    p.add_argument("--clusters", default="2..10", help="numbers of k-means clusters, LOW..HIGH or a list (2..10)")
    p.add_argument("--pool", type=int, help="sum-pool the heatmaps by this factor first")
    p.add_argument("--embeddings", default="tsne,umap", help="2-D pictures: tsne, umap, both, or none")
    p.add_argument("--columns", choices=["leading", "all"], default="leading",
                   help="k-means on the first k eigenvectors (default) or on all of them (as CoRelAy)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", metavar="NPY", help="input images (N, ...) in store order, drawn beside the heatmaps")
    p.add_argument("--no-store", action="store_true", help="do not write the results into the store's spray/ group")


def run_spray(args: argparse.Namespace) -> None:
    from ..analysis.report import summary, write_report
    from ..analysis.spray import spray
    from ..analysis.store import class_heatmaps, dataset, export_virelay, open_heatmaps, write_results

    store = open_heatmaps(args.store)
    embeddings = [] if args.embeddings == "none" else [name for name in args.embeddings.split(",") if name]
    result = spray(
        store, classes=parse_list(args.classes, "--classes"), by=args.by, neighbors=args.neighbors,
        eigenvalues=args.eigenvalues, clusters=parse_clusters(args.clusters), pool=args.pool, embeddings=embeddings,
        columns=args.columns, seed=args.seed, progress=lambda label, n: print(f"class {label}: {n} heatmaps"),
    )  # fmt: skip
    data = dataset(store, None, args.by)
    images = _images(args.images, len(data.group))
    files = write_report(
        result, lambda c: class_heatmaps(data, result[c].rows, c), args.out,
        images=None if images is None else (lambda c: images[result[c].rows]), title=f"SpRAy of {args.store}",
    )  # fmt: skip
    files["analysis.h5"] = export_virelay(result, Path(args.out) / "analysis.h5")
    if not args.no_store:
        files["store"] = write_results(result, args.store)
    for row in summary(result):
        print(f"#{row['rank']} class {row['class']}: {row['samples']} samples, suggested k={row['suggested_k']}, "
              f"sizes {row['sizes']}, conductance of the smallest {row['conductance']:.4f}")  # fmt: skip
    print("\n".join(str(path) for path in files.values()))


def _images(path: str | None, count: int) -> Any:
    import numpy as np

    if path is None:
        return None
    try:
        images = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise SpecError(f"--images {path}: not a readable .npy array ({err})") from None
    if len(images) != count:
        raise SpecError(f"--images {path}: {len(images)} images, but the store holds {count} samples")
    return images


COMMANDS = {"spray": (add_spray, run_spray)}
