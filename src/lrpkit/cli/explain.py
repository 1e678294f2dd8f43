"""Commands that explain: explain, evaluate-methods."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_data, load_data, method_spec

# -- explain / filters -----------------------------------------------------------------------------


def add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="heatmaps of a saved model's decisions on MNIST test images")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--method", default="deeptaylor", help="a rule or preset name, or JSON such as '[\"ab\", 2.0]'")
    p.add_argument("--target", default="true", help="true, pred, all, none, or a class K (default: true)")
    p.add_argument("--n", type=int, default=10, help="number of test images, spread evenly over the split")
    add_data(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the pictures and the relevance .npy")
    p.add_argument("--cmap", default="heatmap", help="heatmap, tutorial, bwr, seismic, coldnhot or gray")


def run_explain(args: argparse.Namespace) -> None:
    from ..model.io import load
    from ..pictures.explain import explain_to_files, parse_target, spread

    net = load(args.model)
    parse_target(args.target, net.classes)  # fail before loading the data
    test = load_data(args).test
    index = spread(len(test), args.n, "--n")
    x, labels = test.images[index], test.labels[index]
    result = explain_to_files(net, x, method_spec(args.method), args.target, args.out, labels=labels, cmap=args.cmap)
    print("\n".join(str(path) for path in result.files))
    error = result.conservation_error.max(initial=0.0)
    print(f"conservation error: max |sum(heatmap) - R_top| = {error:.3g} ", end="")
    print(f"({result.relative_error():.2g} of the largest |R_top|) over {args.n} images")


# -- evaluate-methods (faithfulness: pixel flipping / AOPC, see report.py) ---------------------------


def add_evaluate_methods(sub: Any) -> None:
    from ..evaluate.report import DEFAULT_METHODS

    p = sub.add_parser("evaluate-methods", help="pixel flipping / AOPC of explanation methods, with an HTML report")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated LRP methods/presets (name:param for "
                   "rules, e.g. ab:2) and baselines: gradient, gradxinput, sensitivity, integrated_gradients, "
                   "smoothgrad, random")  # fmt: skip
    p.add_argument("--n", type=int, default=500, help="number of test images (a seeded random subset)")
    add_data(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for aopc.md/.csv, PNGs and report.html")
    p.add_argument("--target", choices=["pred", "true"], default="pred", help="explain the predicted or true class")
    p.add_argument("--steps", type=int, default=100, help="perturbation steps (all regions over the steps)")
    p.add_argument("--region", type=int, default=1, help="square region size in pixels")
    p.add_argument("--fill", choices=["uniform", "zeros", "mean", "low"], default="uniform")
    p.add_argument("--order", choices=["morf", "lerf", "random"], default="morf")
    p.add_argument("--batch-size", type=int, default=1024, help="perturbed images per forward pass")
    p.add_argument("--seed", type=int, default=0)


def run_evaluate_methods(args: argparse.Namespace) -> None:
    from ..evaluate.report import evaluate_methods, parse_methods
    from ..model.io import load

    methods = parse_methods(args.methods)  # fail before loading anything
    net = load(args.model)
    options = {"steps": args.steps, "region": args.region, "fill": args.fill, "order": args.order}
    comparison, files = evaluate_methods(
        net, load_data(args).test, methods, args.out, n=args.n, target=args.target, seed=args.seed,
        details={"model": args.model}, batch_size=args.batch_size, **options,
    )  # fmt: skip
    print(comparison)
    print("\n".join(str(path) for path in files.values()))


COMMANDS = {
    "explain": (add_explain, run_explain),
    "evaluate-methods": (add_evaluate_methods, run_evaluate_methods),
}
