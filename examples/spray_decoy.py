"""Clever Hans on Decoy-MNIST: train the CNN on it, measure the shortcut, find it with SpRAy.

1. Full Decoy-MNIST (every training image patched with its label's gray value): accuracy on the clean test
   images vs. on decoy test images (patch of a random label), and the share of positive relevance inside the
   patch per explanation method.
2. Partial Decoy-MNIST, one run per poisoned class c = 0..9 (30 % of class c patched): explain class c's
   training images for their true class (LRP composites with the dataset job ``lrpkit.explain_dataset`` into a
   zarr store per method, gradient x input in batches) and run ``lrpkit.spray`` on them; at the k the eigengap
   suggests, the cluster holding most patched images has purity (patched share of the cluster) and recall (share
   of the patched images in it). ``--relabel`` runs the backdoor variant (the patched images come from other
   classes, labelled c); ``--corner K`` puts every training patch in corner K instead of a random one (an extra
   check, not the issue's definition).

    python examples/spray_decoy.py [--steps 1000] [--augment 0] [--arch cnn] [--relabel] [--corner K]
                                   [--classes 0,...,9] [--skip-full] [--out out/spray-decoy]

Prints Markdown tables and writes ``results.json`` and the stores into ``--out``; ``lrpkit spray
OUT/class-C-epsilon_plus.zarr --out DIR`` makes the HTML report of one run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from lrpkit.data import decoy_mnist, mnist

import lrpkit
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


def train(data, steps, seed=0, arch="cnn", augment=0):
    net = getattr(lrpkit, arch)()
    start = time.perf_counter()
    net.fit(data.train, steps=steps, augment=augment, seed=seed, progress=False)
    return net, time.perf_counter() - start


def full_decoy(steps, arch, augment):
    data, clean = decoy_mnist(), mnist()
    net, seconds = train(data, steps, arch=arch, augment=augment)
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


def heatmaps(net, x, y, method, store):
    """Relevance for the true class: LRP methods through the dataset job (:func:`lrpkit.explain_dataset`, a zarr
    store, returned as its path), the baselines in batches (the job runs LRP only)."""
    if method not in LRP:
        return explain(net, x, y, method).numpy()
    shutil.rmtree(store, ignore_errors=True)  # a store of an earlier run's model would be refused
    lrpkit.explain_dataset(net, x, store, method=method, source_options={"labels": y.numpy()}, progress=False)
    return store


def corners(mask):
    """Per sample: the corner its patch is in (0..3 as in ``lrpkit.model.decoy.CORNERS``), -1 if none."""
    at = torch.stack([mask[:, 0, 0, 0], mask[:, 0, 0, -1], mask[:, 0, -1, 0], mask[:, 0, -1, -1]], 1)
    return torch.where(at.any(1), at.int().argmax(1), -1).numpy()


def partial_run(c, steps, relabel, arch, augment, out, corner=None):
    """Train on the partial variant for class c; SpRAy of class c's training images, per method."""
    data = decoy_mnist(poisoned=c, relabel=relabel, corner=corner)
    net, seconds = train(data, steps, arch=arch, augment=augment)
    members = data.train.labels == c
    x, y, patched = data.train.images[members], data.train.labels[members], data.train_patched[members]
    hit = patched.numpy()
    run = {"class": c, "train_seconds": seconds, "clean_test": net.evaluate(mnist().test)["accuracy"], "methods": {}}
    mask = data.train_mask[members][patched]
    run["patch_mass"] = {m: float(patch_mass(explain(net, x[patched], y[patched], m), mask).mean())
                         for m in MASS_METHODS}  # fmt: skip
    for method in SPRAY_METHODS:
        relevance = heatmaps(net, x, y, method, out / f"class-{c}-{method}.zarr")
        labels = None if isinstance(relevance, Path) else y.numpy()
        analysis = lrpkit.spray(relevance, labels, embeddings=())[c]
        found = hit[analysis.index]  # the store's rows in the order SpRAy read them
        purity, recall = purity_recall(analysis.labels(), found)
        union = union_purity_recall(analysis.labels(), found)
        where = corners(data.train_mask[members])[analysis.index]
        by_corner = [
            np.bincount(analysis.labels()[where == k], minlength=analysis.suggested).tolist() for k in range(4)
        ]
        run["methods"][method] = {"k": analysis.suggested, "purity": purity, "recall": recall,
                                  "patch_mass": run["patch_mass"][method], "union_purity": union[0],
                                  "union_recall": union[1], "sizes": np.bincount(analysis.labels()).tolist(),
                                  "clusters_by_corner": by_corner}  # fmt: skip
    return run


def full_table(full):
    lines = ["| model trained on full Decoy-MNIST | accuracy |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in full["accuracy"].items()]
    lines += ["", "| method | positive relevance inside the patch (1000 training images) |", "|---|---|"]
    return lines + [f"| `{k}` | {v:.2%} |" for k, v in full["patch_mass"].items()]


def partial_table(runs):
    def passed(key):
        return [sum(r["methods"][m][f"{key}purity"] >= 0.9 and r["methods"][m][f"{key}recall"] >= 0.9 for r in runs)
                for m in SPRAY_METHODS]  # fmt: skip

    lines = ["| class | " + " | ".join(f"`{m}` k: purity / recall" for m in SPRAY_METHODS) + " |"]
    lines += ["|---|" + "---|" * len(SPRAY_METHODS)]
    for run in runs:
        cells = [f"k {r['k']}: {r['purity']:.2f} / {r['recall']:.2f}" for r in run["methods"].values()]
        lines.append(f"| {run['class']} | " + " | ".join(cells) + " |")
    lines.append("| one cluster, purity and recall >= 0.9 | " + " | ".join(f"{v} of {len(runs)}" for v in passed("")))
    lines[-1] += " |"
    lines.append("| mostly-patched clusters together >= 0.9 | "
                 + " | ".join(f"{v} of {len(runs)}" for v in passed("union_")) + " |")  # fmt: skip
    lines += [
        "",
        "| class | " + " | ".join(f"`{m}`" for m in MASS_METHODS) + " |",
        "|---|" + "---|" * len(MASS_METHODS),
    ]
    lines += [f"| {r['class']} | " + " | ".join(f"{r['patch_mass'][m]:.2%}" for m in MASS_METHODS) + " |" for r in runs]
    return lines


def tables(results):
    """Markdown: the full-decoy accuracies and patch masses, the SpRAy scores and patch masses of each run."""
    lines = [] if results["full"] is None else [*full_table(results["full"]), ""]
    return "\n".join(lines + (partial_table(results["partial"]) if results["partial"] else []))


def merged(files):
    """The results of several ``results.json`` (runs split over processes), runs sorted by class."""
    loaded = [json.loads(Path(f).read_text()) for f in files]
    full = next((r["full"] for r in loaded if r["full"] is not None), None)
    runs = sorted((run for r in loaded for run in r["partial"]), key=lambda run: run["class"])
    return {"full": full, "partial": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--relabel", action="store_true", help="backdoor variant: patched images from other classes")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--out", default="out/spray-decoy")
    parser.add_argument("--arch", default="cnn", choices=["cnn", "mlp"])
    parser.add_argument("--augment", type=int, default=0, help="training shifts of up to this many pixels")
    parser.add_argument("--corner", type=int, choices=range(4), help="every training patch in this corner")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tables", nargs="+", metavar="RESULTS", help="only print the tables of results.json files")
    parser.add_argument("--skip-full", action="store_true", help="only the partial runs")
    args = parser.parse_args()
    if args.tables:
        print(tables(merged(args.tables)))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    full = None if args.skip_full else full_decoy(args.steps, args.arch, args.augment)
    results = {"settings": vars(args), "full": full, "partial": []}
    print(json.dumps(full, indent=1), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    classes = [int(c) for c in args.classes.split(",") if c]
    for c in classes:
        results["partial"].append(partial_run(c, args.steps, args.relabel, args.arch, args.augment, out, args.corner))
        print(json.dumps(results["partial"][-1]), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(tables(results))


if __name__ == "__main__":
    main()
