"""Commands that explain: explain, evaluate-methods. Both take methods in one syntax (see ``common.parse_method``)."""

from __future__ import annotations

import argparse
from typing import Any

from .. import checks
from .common import BASELINES, DEFAULT_METHODS, POSITIVE, SEED, add_data, load_data, method_help, parse_method

# -- explain -------------------------------------------------------------------------------------------


def add_explain(sub: Any) -> None:
    from ..pictures.colormaps import COLORMAPS

    p = sub.add_parser("explain", help="heatmaps of a saved model's decisions on MNIST test images")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--method", default="deeptaylor", help=f"the LRP method: {method_help()}")
    p.add_argument("--target", default="true", help="true, pred, all, none, or a class K")
    p.add_argument(
        "--n", type=POSITIVE, default=10, help="number of test images, taken class by class (10: one per digit)"
    )
    add_data(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the pictures and the relevance .npy")
    p.add_argument("--cmap", default="heatmap", help=f"colour map of the heatmaps: {', '.join(COLORMAPS)}")


def run_explain(args: argparse.Namespace) -> None:
    from ..composites import check_method
    from ..files import check_output_directory
    from ..model.io import load
    from ..model.train import check_split
    from ..pictures.colormaps import colormap
    from ..pictures.explain import explain_to_files, parse_target

    check_output_directory(args.out)
    method = parse_method(args.method)
    check_method(method)
    colormap(args.cmap)
    net = load(args.model)
    parse_target(args.target, net.classes)  # fail before loading the data
    test = check_split(load_data(args).test, net, "--data")
    sample = test.balanced(checks.integer(args.n, "--n (a number of test images)", maximum=len(test)))
    result = explain_to_files(
        net, sample.images, method, args.target, args.out, labels=sample.labels, cmap=args.cmap, progress=None
    )
    print("\n".join(str(path) for path in result.files))
    error = result.conservation_error.max(initial=0.0)
    print(f"conservation error: max |sum(heatmap) - R_top| = {error:.3g} ", end="")
    print(f"({result.relative_error():.2g} of the largest |R_top|) over {args.n} images")


# -- evaluate-methods (faithfulness: pixel flipping / AOPC, see report.py) ---------------------------


def add_evaluate_methods(sub: Any) -> None:
    p = sub.add_parser("evaluate-methods", help="pixel flipping / AOPC of explanation methods, with an HTML report")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated methods: the baselines "
                   f"{', '.join(BASELINES)}, and LRP {method_help()}")  # fmt: skip
    p.add_argument("--n", type=POSITIVE, default=500, help="number of test images (a seeded random subset)")
    add_data(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for aopc.md/.csv, PNGs and report.html")
    p.add_argument("--target", choices=["pred", "true"], default="pred", help="explain the predicted or true class")
    p.add_argument("--steps", type=POSITIVE, default=100, help="perturbation steps (all regions over the steps)")
    p.add_argument("--region", type=POSITIVE, default=1, help="square region size in pixels")
    p.add_argument("--fill", choices=["uniform", "zeros", "mean", "low"], default="uniform", help="replacement")
    p.add_argument("--order", choices=["morf", "lerf", "random"], default="morf", help="which regions go first")
    p.add_argument("--batch-size", type=POSITIVE, default=1024, help="perturbed images per forward pass")
    p.add_argument("--seed", type=SEED, default=0, help="the image subset and the noise")


def run_evaluate_methods(args: argparse.Namespace) -> None:
    from ..attribution import check_method
    from ..evaluate.report import evaluate_methods
    from ..files import check_output_directory
    from ..model.io import load
    from ..model.train import check_split
    from .common import split_methods

    check_output_directory(args.out)
    methods = [parse_method(text) for text in split_methods(args.methods)]
    for method in methods:
        check_method(method)  # fail before loading anything
    net = load(args.model)
    test = check_split(load_data(args).test, net, "--data")
    options = {"steps": args.steps, "region": args.region, "fill": args.fill, "order": args.order}
    _, files = evaluate_methods(
        net, test, methods, args.out, n=args.n, target=args.target, seed=args.seed,
        details={"model": args.model}, batch_size=args.batch_size, progress=None, **options,
    )  # fmt: skip
    print(files["aopc.md"].read_text(), end="")
    print("\n".join(str(path) for path in files.values()))


COMMANDS = {
    "explain": (add_explain, run_explain),
    "evaluate-methods": (add_evaluate_methods, run_evaluate_methods),
}
