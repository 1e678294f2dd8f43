"""`make demo`: train the ready-made MLP, CNN and ResNet on the embedded MNIST images, save them, and draw explanations.

Writes out/<arch>/model/ for each (the model directories) and, beside each, the pictures listed at the end.

    python examples/demo.py [--out out] [--steps N]   # --steps: fewer training steps, for a quick check
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lrpkit
from lrpkit.model.data import mnist
from lrpkit.model.train import RECIPES as TRAINING
from lrpkit.pictures.explain import explain_to_files

DEMO = ("mlp", "cnn", "resnet")
"""The ready-made networks the demo trains (the ViT's 2 minutes of training: examples/vit_heatmaps.py)."""


def train(name: str, data, out: Path, steps: int | None) -> lrpkit.Network:
    net = lrpkit.ARCHITECTURES[name]()
    recipe = {**TRAINING[name], **({"steps": steps} if steps else {})}
    print(f"{name}: training {recipe['steps']} steps on {len(data.train)} images ...", flush=True)
    start = time.perf_counter()
    net.fit(data.train, **recipe)
    scores = net.evaluate(data.test)
    net.metadata["test_accuracy"] = scores["accuracy"]
    net.save(out / "model")
    seconds = time.perf_counter() - start
    print(f"{name}: test accuracy {scores['accuracy']:.4f} after {seconds:.1f} s -> {out / 'model'}", flush=True)
    return net


def draw(net: lrpkit.Network, data, out: Path) -> list[Path]:
    """Pictures of the net's explanations, written beside its model directory; returns the files written."""
    sample = data.test.balanced(10)  # one test image per digit, 0 to 9
    x, y = sample.images, sample.labels
    every = explain_to_files(net, x, "deeptaylor", "all", out, labels=y)  # x, class_0..9, classes
    true = explain_to_files(net, x, "deeptaylor", "true", out, labels=y, class_grid=False)  # correct_class
    nothing = explain_to_files(net, x, "deeptaylor", "none", out, labels=y, class_grid=False)
    gap = max(e.relative_error() for e in (every, true, nothing))
    print(f"{out.name}: deeptaylor heatmaps conserve the relevance up to {gap:.1e} (relative)")
    filters = lrpkit.plot_filters(net, out / "filters.png")
    return [out / "model" / "model.json", *every.files, *true.files[1:], *nothing.files[1:], filters]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", type=Path, help="directory for out/<arch>/")
    parser.add_argument("--steps", type=int, help="training steps of each model (default: its recipe)")
    args = parser.parse_args()
    start = time.perf_counter()
    data = mnist()
    written: list[Path] = []
    for name in DEMO:
        net = train(name, data, args.out / name, args.steps)
        written += draw(net, data, args.out / name)
    print("\nwritten:")
    for path in written:
        print(f"  {path}")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
