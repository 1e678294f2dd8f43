"""Regenerates the README pictures under docs/img/ (small PNGs).

    python examples/make_readme_images.py                       # trains the CNN first (a few minutes on a CPU)
    python examples/make_readme_images.py --cnn out/cnn/model   # or explains a model saved by `make demo`

The `quickstart` function is the Python quickstart shown in the README, line for line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lrpkit
from lrpkit.pictures.colormaps import COLORMAPS, colormap
from lrpkit.pictures.grids import save_figure


def quickstart(net: lrpkit.Network, out: Path) -> list[Path]:
    data = lrpkit.mnist()
    digits = data.test.balanced(10)  # one test image per digit, 0 to 9
    x, y = digits.images, digits.labels
    R = net.lrp(x, y, "deeptaylor")  # relevance of the true class, x's shape
    return [
        lrpkit.visualize(x, "gray", out / "x.png", ncols=10, zoom=2),
        lrpkit.visualize(R, "heatmap", out / "heatmap.png", ncols=10, zoom=2),
        lrpkit.visualize(R, "heatmap", out / "overlay.png", ncols=10, zoom=2, overlay=x, alpha=0.6),
        lrpkit.plot_classes(net, x[[3, 5, 8]], "deeptaylor", out / "classes.png", labels=y[[3, 5, 8]]),
        lrpkit.plot_filters(net, out / "filters.png", ncols=16, zoom=6),
    ]


def methods_figure(net: lrpkit.Network, out: Path) -> Path:
    """One row per method on the same five digits: how the rules differ."""
    from matplotlib.figure import Figure

    data = lrpkit.mnist()
    sample = data.test.balanced(10)[::2]  # the digits 0, 2, 4, 6 and 8
    x, y = sample.images, sample.labels
    methods = ["simple", "deeptaylor", ["ab", 2.0], "epsilon_plus_flat"]
    figure = Figure(figsize=(6.2, 1.0 + 1.25 * len(methods)), layout="constrained")
    axes = figure.subplots(len(methods), len(x), squeeze=False)
    for row, method in enumerate(methods):
        images = lrpkit.heatmap(net.lrp(x, y, method))
        for col, image in enumerate(images):
            axes[row, col].imshow(image, interpolation="nearest")
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(method if isinstance(method, str) else f"{method[0]} {method[1]}", fontsize=9)
    figure.suptitle("CNN, true class: red = evidence for, blue = against", fontsize=9)
    return save_figure(figure, out / "methods.png")


def colormaps_figure(out: Path) -> Path:
    """Every colour map from -1 to 1 (relevance after normalisation by its largest magnitude)."""
    from matplotlib.figure import Figure

    ramp = np.linspace(-1, 1, 201)[None, :].repeat(12, axis=0)
    figure = Figure(figsize=(6, 0.45 * len(COLORMAPS) + 0.3), layout="constrained")
    axes = figure.subplots(len(COLORMAPS), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, COLORMAPS, strict=True):
        ax.imshow(colormap(name)(ramp), extent=(-1, 1, 0, 0.1), aspect="auto")
        ax.set_yticks([])
        ax.set_xticks([-1, -0.2, 0, 0.7, 1] if name == "heatmap" else [-1, 0, 1])
        ax.tick_params(labelsize=7)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    return save_figure(figure, out / "colormaps.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cnn", metavar="DIR", help="a saved CNN (default: train one)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps when no --cnn is given")
    parser.add_argument("--out", default="docs/img")
    args = parser.parse_args()
    if args.cnn:
        net = lrpkit.load(args.cnn)
    else:
        net = lrpkit.cnn()
        net.fit(lrpkit.mnist().train, steps=args.steps)
    out = Path(args.out)
    for path in [*quickstart(net, out), methods_figure(net, out), colormaps_figure(out)]:
        print(path)


if __name__ == "__main__":
    main()
