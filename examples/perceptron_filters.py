"""A linear classifier trained twice: as one Linear(10) layer and as one Conv(10, 28x28) layer + Flatten.

A convolution whose kernel covers the whole 28x28 image has one output position per filter: it computes
exactly the 10 dot products of a Linear layer. Both networks start from the same initial weights (same seed,
same fan-in) and see the same batches, so they learn the same 10 filters. The script draws the filters side
by side and prints the largest differences of weights and predictions.

    python examples/perceptron_filters.py --out out/perceptron_filters.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import lrpkit
from lrpkit.pictures.grids import first_layer_filters, save_figure, shared_gray


def train_both(steps: int, seed: int) -> tuple[lrpkit.Network, lrpkit.Network, lrpkit.data.Split]:
    data = lrpkit.mnist()
    linear = lrpkit.Network([lrpkit.Linear(10)], seed=seed)
    conv = lrpkit.Network([lrpkit.Conv(10, kernel_size=28), lrpkit.Flatten()], seed=seed)
    for net in (linear, conv):
        net.fit(data.train, steps=steps, seed=seed, progress=False)
    return linear, conv, data.test


def draw(rows: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """One row of 10 filters per network, all on one shared gray scale."""
    from matplotlib.figure import Figure

    names = list(rows)
    levels = shared_gray(np.concatenate([rows[name] for name in names]))
    figure = Figure(figsize=(10, 0.6 + 1.2 * len(names)), layout="constrained")
    axes = figure.subplots(len(names), 10, squeeze=False)
    for r, name in enumerate(names):
        for k in range(10):
            axes[r, k].imshow(levels[r * 10 + k], interpolation="nearest")
            axes[r, k].set_title(f"{name}: {k}" if k == 0 else str(k), fontsize=8)
            axes[r, k].set_axis_off()
    figure.suptitle(title, fontsize=9)
    return save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/perceptron_filters.png")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    linear, conv, test = train_both(args.steps, args.seed)
    filters = {"Linear(10)": first_layer_filters(linear), "Conv(10, 28)": first_layer_filters(conv)}
    with torch.no_grad():
        predictions = {name: net(test.images) for name, net in zip(filters, (linear, conv), strict=True)}
    weight_gap = np.abs(filters["Linear(10)"] - filters["Conv(10, 28)"]).max()
    logit_gap = (predictions["Linear(10)"] - predictions["Conv(10, 28)"]).abs().max().item()
    same_class = (predictions["Linear(10)"].argmax(1) == predictions["Conv(10, 28)"].argmax(1)).double().mean()
    for name, net in zip(filters, (linear, conv), strict=True):
        print(f"{name:<13} test accuracy {net.evaluate(test)['accuracy']:.4f}")
    print(f"max |filter difference| {weight_gap:.2e} (weights up to {np.abs(filters['Linear(10)']).max():.2f})")
    print(f"max |logit difference|  {logit_gap:.2e} on {len(test)} test images; same class for {same_class:.2%}")
    title = f"the same 10 filters; max |weight difference| {weight_gap:.1e}, max |logit difference| {logit_gap:.1e}"
    print(f"wrote {draw(filters, title, Path(args.out))}")


if __name__ == "__main__":
    main()
