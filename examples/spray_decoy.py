"""Clever Hans on Decoy-MNIST: train the CNN on it, measure the shortcut, find it with SpRAy.

1. Full Decoy-MNIST (every training image patched with its label's gray value): accuracy on the clean test
   images vs. on decoy test images (patch of a random label), and the share of positive relevance inside the
   patch per explanation method.
2. Partial Decoy-MNIST, one run per poisoned class c = 0..9 (30 % of class c patched): explain class c's
   training images (target: the true class) and run SpRAy on them; at the k the eigengap suggests, the cluster
   holding most patched images has purity (patched share of the cluster) and recall (share of the patched images
   in it). ``--relabel`` runs the backdoor variant (the patched images come from other classes, labelled c).

    python examples/spray_decoy.py [--steps 1500] [--relabel] [--out out/spray-decoy]

Prints Markdown tables and writes ``results.json`` and the SpRAy report of the last run into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from lrpkit.data import decoy_mnist, mnist

import lrpkit
from lrpkit.analysis.report import write_report
from lrpkit.attribution import attribute

LRP = ["epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1"]
MASS_METHODS = [*LRP, "gradient", "gradxinput", "integrated_gradients"]
SPRAY_METHODS = [*LRP, "gradxinput"]


def explain(net, x, y, method, batch=500):
    return torch.cat([attribute(net, x[i : i + batch], y[i : i + batch], method) for i in range(0, len(x), batch)])


def patch_mass(relevance, mask):
    """Per sample: positive relevance inside the mask / all positive relevance."""
    positive = relevance.clamp(min=0).flatten(1)
    return (positive * mask.flatten(1)).sum(1) / positive.sum(1).clamp(min=1e-12)


def train(data, steps, seed=0):
    net = lrpkit.cnn()
    start = time.perf_counter()
    net.fit(data.train, steps=steps, augment=1, seed=seed, progress=False)
    return net, time.perf_counter() - start


def full_decoy(steps):
    data, clean = decoy_mnist(), mnist()
    net, seconds = train(data, steps)
    accuracy = {"decoy train": net.evaluate(data.train)["accuracy"], "clean test": net.evaluate(clean.test)["accuracy"],
                "decoy test": net.evaluate(data.test)["accuracy"]}  # fmt: skip
    decoy = data.test_decoy
    with torch.no_grad():
        predicted = net(data.test.images).argmax(1)
    accuracy["decoy test: predicted = the patch's label"] = float((predicted == decoy).float().mean())
    x, y, mask = data.train.images[:1000], data.train.labels[:1000], data.train_mask[:1000]
    mass = {m: float(patch_mass(explain(net, x, y, m), mask).mean()) for m in MASS_METHODS}
    return {"steps": steps, "train_seconds": seconds, "accuracy": accuracy, "patch_mass": mass}


def purity_recall(labels, patched):
    """At one clustering: the cluster holding most patched samples, its purity and recall."""
    best = np.bincount(labels[patched]).argmax()
    hits = int((labels[patched] == best).sum())
    return hits / int((labels == best).sum()), hits / int(patched.sum())


def union_purity_recall(labels, patched):
    """The union of the clusters that are mostly patched: its purity and recall (0, 0 if there is none)."""
    share = np.bincount(labels, weights=patched) / np.bincount(labels)
    union = np.isin(labels, np.flatnonzero(share > 0.5))
    if not union.any():
        return 0.0, 0.0
    return float(patched[union].mean()), float(union[patched].mean())


def partial_run(c, steps, relabel, out=None):
    data = decoy_mnist(poisoned=c, relabel=relabel)
    net, seconds = train(data, steps)
    members = data.train.labels == c
    x, y, patched = data.train.images[members], data.train.labels[members], data.train_patched[members].numpy()
    run = {"class": c, "train_seconds": seconds, "clean_test": net.evaluate(mnist().test)["accuracy"], "methods": {}}
    mask, hit = data.train_mask[members], torch.from_numpy(patched)
    run["patch_mass"] = {m: float(patch_mass(explain(net, x[hit], y[hit], m), mask[hit]).mean()) for m in MASS_METHODS}
    for method in SPRAY_METHODS:
        relevance = explain(net, x, y, method)
        result = lrpkit.spray(relevance.numpy(), y.numpy(), embeddings=("tsne",) if out else ())
        analysis = result[c]
        purity, recall = purity_recall(analysis.labels(), patched)
        union = union_purity_recall(analysis.labels(), patched)
        mass = float(patch_mass(relevance, data.train_mask[members])[torch.from_numpy(patched)].mean())
        run["methods"][method] = {"k": analysis.suggested, "purity": purity, "recall": recall, "patch_mass": mass,
                                  "union_purity": union[0], "union_recall": union[1],
                                  "sizes": np.bincount(analysis.labels()).tolist()}  # fmt: skip
        if out and method == "epsilon_plus":
            write_report(result, lambda _, r=relevance: r.numpy(), Path(out) / f"report-class-{c}",
                         images=lambda _, x=x: x.numpy(), title=f"SpRAy, partial Decoy-MNIST, class {c}")  # fmt: skip
    return run


def tables(results):
    full, lines = results["full"], []
    if full is not None:
        lines = ["| model trained on full Decoy-MNIST | accuracy |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in full["accuracy"].items()]
        lines += ["", "| method | positive relevance inside the patch |", "|---|---|"]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in full["patch_mass"].items()]
        lines += [""]
    lines += ["| class | " + " | ".join(f"`{m}` k / purity / recall" for m in SPRAY_METHODS) + " |"]
    lines += ["|---|" + "---|" * len(SPRAY_METHODS)]
    for run in results["partial"]:
        cells = [f"{r['k']} / {r['purity']:.2f} / {r['recall']:.2f}" for r in run["methods"].values()]
        lines.append(f"| {run['class']} | " + " | ".join(cells) + " |")
    found = {m: sum(r["methods"][m]["purity"] >= 0.9 and r["methods"][m]["recall"] >= 0.9 for r in results["partial"])
             for m in SPRAY_METHODS}  # fmt: skip
    lines.append("| found (purity, recall >= 0.9) | " + " | ".join(f"{v} of {len(results['partial'])}"
                                                                   for v in found.values()) + " |")  # fmt: skip
    union = {m: sum(r["methods"][m]["union_purity"] >= 0.9 and r["methods"][m]["union_recall"] >= 0.9
                    for r in results["partial"]) for m in SPRAY_METHODS}  # fmt: skip
    lines.append("| found as mostly-patched clusters (union purity, recall >= 0.9) | "
                 + " | ".join(f"{v} of {len(results['partial'])}" for v in union.values()) + " |")  # fmt: skip
    mass = {m: np.mean([r["methods"][m]["patch_mass"] for r in results["partial"]]) for m in SPRAY_METHODS}
    lines.append("| patch mass (mean over runs) | " + " | ".join(f"{v:.3f}" for v in mass.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--relabel", action="store_true", help="backdoor variant: patched images from other classes")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--out", default="out/spray-decoy")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-full", action="store_true", help="only the partial runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"settings": vars(args), "full": None if args.skip_full else full_decoy(args.steps), "partial": []}
    print(json.dumps(results["full"], indent=1), flush=True)
    classes = [int(c) for c in args.classes.split(",")]
    for c in classes:
        results["partial"].append(partial_run(c, args.steps, args.relabel, out if c == classes[-1] else None))
        print(json.dumps(results["partial"][-1]), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(tables(results))


if __name__ == "__main__":
    main()
