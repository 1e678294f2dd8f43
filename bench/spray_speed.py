"""Time and peak memory of SpRAy on one class of 5,000 and 50,000 synthetic 28×28 heatmaps.

Each size runs in a fresh process; peak memory is that process's peak resident set size minus its size after
the imports (so it counts the heatmaps, the k-NN search, the eigensolver, k-means and the 2-D pictures).
Stages are timed one by one (``ClassAnalysis.seconds``).

    python bench/spray_speed.py [--sizes 5000,50000] [--embeddings 5000:tsne+umap] [--write]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def measure(n: int, embeddings: list[str]) -> dict:
    """In this process: SpRAy of ``n`` synthetic heatmaps; seconds per stage and peak memory above the start."""
    import threadpoolctl

    from lrpkit.analysis import analyse_class
    from spray_corelay import synthetic

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maps = synthetic(n).astype(np.float32)
    start = time.perf_counter()
    with threadpoolctl.threadpool_limits(1):
        analysis = analyse_class(maps, embeddings=embeddings)
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base  # KiB on Linux
    return {"n": n, "seconds": total, "stages": analysis.seconds, "peak_mib": peak / 1024,
            "suggested": analysis.suggested, "embeddings": embeddings}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--embeddings", default="5000:tsne+umap", help="SIZE:NAME+NAME,... (default)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: measure one size
    parser.add_argument("--with", dest="with_", default="", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="update this script's section of bench/RESULTS.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, [e for e in args.with_.split("+") if e])))
        return
    chosen = dict(item.split(":") for item in args.embeddings.split(",") if item)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--one", str(n), "--with", chosen.get(str(n), "")]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    lines = ["## SpRAy time and memory (one class, synthetic 28x28 heatmaps, 1 thread)", "",
             "| heatmaps | total s | features | k-NN graph | eigenvectors | k-means (k = 2..10) | t-SNE | UMAP | "
             "peak memory MiB | suggested k |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        stage = [f"{row['stages'].get(name, float('nan')):.1f}" if name in row["stages"] else "—"
                 for name in ("features", "neighbors", "eigenvectors", "kmeans", "tsne", "umap")]  # fmt: skip
        lines.append(f"| {row['n']:,} | {row['seconds']:.1f} | {' | '.join(stage)} | {row['peak_mib']:.0f} | "
                     f"{row['suggested']} |")  # fmt: skip
    print("\n".join(lines))
    if args.write:
        import torch

        from _report import environment, load_average, update_section

        env = [*environment(torch.device("cpu")), f"- load average at the end: {load_average()}"]
        update_section("spray-speed", "\n".join([lines[0], "", *env, *lines[1:]]))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
