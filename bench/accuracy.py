"""Accuracy benchmark: train the ready-made MLP, CNN and ResNet with their recipes (lrpkit.train.RECIPES) on the
embedded 4000 training images and report test accuracy on the embedded 1000 and on the real 10,000 MNIST test images.

    python bench/accuracy.py [--t10k ../shared/data/mnist-t10k] [--threads 2]
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

TARGETS = {"mlp": 0.94, "cnn": 0.975, "resnet": 0.983}
DEFAULT_T10K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-t10k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--t10k", type=Path, default=DEFAULT_T10K, help="directory with the t10k IDX files")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = mnist()
    real = mnist(args.t10k).test if args.t10k.is_dir() else None
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {args.threads} threads, load average {load}; real test set: ", end="")
    print(args.t10k if real else "absent")
    print("| model | steps | train s | embedded 1000 | real 10,000 | target (10,000) |")
    print("|---|---|---|---|---|---|")
    for name, settings in SETTINGS.items():
        net = lrpkit.ARCHITECTURES[name]()
        start = time.perf_counter()
        net.fit(data.train, progress=False, **settings)
        seconds = time.perf_counter() - start
        embedded = net.evaluate(data.test)["accuracy"]
        tenk = f"{net.evaluate(real)['accuracy']:.4f}" if real is not None else "n/a"
        print(f"| {name} | {settings['steps']} | {seconds:.1f} | {embedded:.4f} | {tenk} | >= {TARGETS[name]} |")


if __name__ == "__main__":
    main()
