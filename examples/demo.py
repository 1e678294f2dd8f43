"""`make demo`: train the default MLP and CNN on the embedded MNIST images, save them, and draw explanations.

Writes out/mlp/ and out/cnn/ (model directories) and the pictures listed at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lrpkit
from lrpkit.model.data import mnist
from lrpkit.model.train import RECIPES as TRAINING  # about 10 s (MLP) and 25 s (CNN) on 2 cores


def train(name: str, data, out: Path) -> lrpkit.Network:
    net = lrpkit.ARCHITECTURES[name]()
    print(f"{name}: training {TRAINING[name]['steps']} steps on {len(data.train)} images ...", flush=True)
    start = time.perf_counter()
    net.fit(data.train, **TRAINING[name])
    scores = net.evaluate(data.test)
    net.metadata["test_accuracy"] = scores["accuracy"]
    net.save(out / name)
    print(
        f"{name}: test accuracy {scores['accuracy']:.4f} after {time.perf_counter() - start:.1f} s -> {out / name}",
        flush=True,
    )
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="out", type=Path)
    args = parser.parse_args()
    data = mnist()
    written: list[Path] = []
    for name in TRAINING:
        net = train(name, data, args.out)
        written += draw(net, data, args.out / name)
    print("\nwritten:")
    for path in written:
        print(f"  {path}")


def draw(net: lrpkit.Network, data, out: Path) -> list[Path]:
    """Pictures of the net's explanations; returns the files written."""
    from lrpkit.pictures.explain import explain_to_files, spread

    index = spread(len(data.test), 10)  # ten test images spread over the split: one per class here
    x, y = data.test.images[index], data.test.labels[index]
    every = explain_to_files(net, x, "deeptaylor", "all", out, labels=y)  # x, class_0..9, classes
    true = explain_to_files(net, x, "deeptaylor", "true", out, labels=y, class_grid=False)  # correct_class
    nothing = explain_to_files(net, x, "deeptaylor", "none", out, labels=y, class_grid=False)
    gap = max(e.relative_error() for e in (every, true, nothing))
    print(f"{out.name}: deeptaylor heatmaps conserve the relevance up to {gap:.1e} (relative)")
    filters = lrpkit.plot_filters(net, out / "filters.png")
    return [out / "model.json", *every.files, *true.files[1:], *nothing.files[1:], filters]


if __name__ == "__main__":
    main()
