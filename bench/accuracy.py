"""Accuracy benchmark: train the ready-made MLP, CNN and ViT with their recipes (``lrpkit.train.RECIPES``) on the
embedded 4000 training images and report test accuracy on the embedded 1000 and on the real 10,000 MNIST test images.

    python bench/accuracy.py [--t10k ../shared/data/mnist-t10k] [--threads 2] [--models mlp,cnn,vit] [--save DIR]

Training time is wall-clock and, beside it, the CPU time of the process (with one thread close to what an idle
core would take; on a shared machine the wall time grows with the load, printed before and after).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

import lrpkit
from lrpkit.model.data import mnist
from lrpkit.model.train import RECIPES as SETTINGS

TARGETS = {"mlp": 0.94, "cnn": 0.975, "resnet": 0.983, "vit": 0.96}
DEFAULT_T10K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-t10k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--t10k", type=Path, default=DEFAULT_T10K, help="directory with the t10k IDX files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(SETTINGS), help="comma-separated names of RECIPES")
    parser.add_argument("--save", type=Path, metavar="DIR", help="save each trained model to DIR/<name>")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = mnist()
    real = mnist(args.t10k).test if args.t10k.is_dir() else None
    print(f"torch {torch.__version__}, {args.threads} threads; real test set: {args.t10k if real else 'absent'}")
    print(f"load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("| model | steps | train s (wall) | train s (CPU) | embedded 1000 | real 10,000 | target (10,000) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        settings = SETTINGS[name]
        net = lrpkit.ARCHITECTURES[name]()
        start, cpu = time.perf_counter(), time.process_time()
        net.fit(data.train, progress=False, **settings)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        embedded = net.evaluate(data.test)["accuracy"]
        tenk = f"{net.evaluate(real)['accuracy']:.4f}" if real is not None else "n/a"
        if args.save:
            net.metadata.update({"test_accuracy_10k": float(tenk) if real is not None else None, "cpu_seconds": cpu})
            net.save(args.save / name)
        times = f"{seconds:.1f} | {cpu:.1f}"
        print(f"| {name} | {settings['steps']} | {times} | {embedded:.4f} | {tenk} | >= {TARGETS[name]} |", flush=True)
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
