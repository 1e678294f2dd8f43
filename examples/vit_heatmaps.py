"""Heatmaps of the MNIST ViT: train ``lrpkit.vit()`` with its recipe (about 5 minutes on 2 cores, so not part of
``make demo``), then explain ten test digits, one per class, with AttnLRP, CP-LRP, the gamma ViT variant and
gradient x input, one row per digit.

    python examples/vit_heatmaps.py [--model DIR] [--out out/vit]

``--model``: a saved ViT to explain instead (e.g. from ``lrpkit train --arch vit --out DIR``); otherwise the trained
model is saved to ``OUT/model`` and reused by the next run. Writes ``OUT/heatmaps.png`` (input, then one column per
method; red: evidence for the true class, blue: against) and ``OUT/x.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import lrpkit
from lrpkit.attribution import attribute
from lrpkit.model.data import mnist
from lrpkit.model.train import RECIPES
from lrpkit.pictures.explain import spread

METHODS = ["attnlrp", "cp_lrp", "attnlrp_vit", "gradxinput"]


def trained(model: Path | None, out: Path, data) -> lrpkit.Network:
    if model is not None:
        return lrpkit.load(model)
    if (out / "model" / "model.json").is_file():
        return lrpkit.load(out / "model")
    net = lrpkit.vit()
    print(f"training lrpkit.vit() for {RECIPES['vit']['steps']} steps ...", flush=True)
    net.fit(data.train, **RECIPES["vit"])
    net.metadata["test_accuracy"] = net.evaluate(data.test)["accuracy"]
    net.save(out / "model")
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a saved lrpkit.vit() model directory")
    parser.add_argument("--out", type=Path, default=Path("out/vit"))
    args = parser.parse_args()
    data = mnist()
    net = trained(args.model, args.out, data)
    print(f"test accuracy (embedded 1000): {net.evaluate(data.test)['accuracy']:.4f}")
    index = spread(len(data.test), 10)
    x, y = data.test.images[index], data.test.labels[index]
    relevance = torch.stack([attribute(net, x, y, method).reshape(x.shape) for method in METHODS], 1)
    print(lrpkit.visualize(x, "gray", args.out / "x.png", zoom=3))
    print(lrpkit.visualize(relevance, "bwr", args.out / "heatmaps.png", zoom=3, symmetric=True))
    print(f"columns: {', '.join(METHODS)}; rows: the test digits of classes {y.tolist()}")


if __name__ == "__main__":
    main()
