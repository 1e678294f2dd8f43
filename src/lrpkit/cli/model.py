"""Commands on models: train, evaluate, info, filters, import-tutorial."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import SpecError
from .common import LEARNING_RATE, PIXELS, POSITIVE, SEED, add_data, architecture, load_data

# -- train / evaluate / info ---------------------------------------------------------------------


ARCHITECTURE_NAMES = "mlp, cnn, resnet, vit, tutorial_mlp, tutorial_cnn"
"""The ready-made ``--arch`` names, written out so that ``--help`` does not import torch (a test compares them)."""


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a network on MNIST and save it")
    p.add_argument("--arch", default="mlp", help=f"{ARCHITECTURE_NAMES}, or a JSON spec file")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write (new, empty, or a model)")
    add_data(p)
    p.add_argument("--steps", type=POSITIVE, help="training steps (default: the architecture's recipe, else 2000)")
    p.add_argument("--batch-size", type=POSITIVE, default=50, help="images per step")
    p.add_argument("--lr", type=LEARNING_RATE, help="Adam's learning rate (default: the recipe's, else 0.001)")
    p.add_argument(
        "--schedule", choices=["constant", "cosine"], help="learning rate over the steps (resnet, vit: cosine)"
    )
    p.add_argument(
        "--loss", choices=["sigmoid", "softmax"], help="cross-entropy of either kind (default: the recipe's)"
    )
    p.add_argument("--seed", type=SEED, default=0, help="initialisation, batch order, shifts and dropout")
    p.add_argument("--augment", type=PIXELS, metavar="PIXELS", help="random shifts of up to PIXELS (recipes: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace) -> None:
    from ..model.io import check_target
    from ..model.train import DEFAULT_RECIPE, RECIPES, check_split

    check_target(args.out)  # before any work: a directory holding anything else is refused now, not after training
    data = load_data(args)
    if data.train is None:
        raise SpecError(f"--data {args.data}: has no training files (train-images-idx3-ubyte...)")
    check_split(data.train, architecture(args.arch, skeleton=True), f"--arch {args.arch} on --data")
    net = architecture(args.arch)
    recipe = {**RECIPES.get(args.arch, DEFAULT_RECIPE)}
    given = {name: getattr(args, name) for name in ("steps", "augment", "lr", "loss", "schedule")}
    recipe.update({name: value for name, value in given.items() if value is not None})
    history = net.fit(
        data.train, batch_size=args.batch_size, seed=args.seed,
        progress=False if args.quiet else None, **recipe,
    )  # fmt: skip
    scores = net.evaluate(data.test)
    net.metadata.update({"test_accuracy": scores["accuracy"], "data": data.source})
    net.save(args.out)
    print(f"trained {args.arch} for {recipe['steps']} steps in {history.seconds:.1f} s: ", end="")
    print(f"test accuracy {scores['accuracy']:.4f}, loss {scores['loss']:.4f}; saved to {args.out}")


def add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="accuracy and loss of a saved model on the MNIST test split")
    p.add_argument("model", metavar="MODEL")
    add_data(p)


def run_evaluate(args: argparse.Namespace) -> None:
    from ..model.io import load

    net = load(args.model)
    scores = net.evaluate(load_data(args).test)
    print(f"accuracy {scores['accuracy']:.4f}  loss {scores['loss']:.4f}")


def add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="architecture, parameter count and metadata of a saved model")
    p.add_argument("model", metavar="MODEL")


def run_info(args: argparse.Namespace) -> None:
    from ..model.io import load

    net = load(args.model)
    print(net.summary())
    for key, value in sorted(net.metadata.items()):
        print(f"{key}: {value}")


def add_filters(sub: Any) -> None:
    p = sub.add_parser("filters", help="draw the first layer's filters of a saved model")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--out", default="filters.png", metavar="PNG", help="picture to write")


def run_filters(args: argparse.Namespace) -> None:
    from ..files import check_output_file
    from ..model.io import load
    from ..pictures.grids import plot_filters, png_path

    check_output_file(png_path(args.out))
    print(plot_filters(load(args.model), args.out))


# -- import-tutorial -------------------------------------------------------------------------------


def add_import_tutorial(sub: Any) -> None:
    p = sub.add_parser("import-tutorial", help="convert a heatmapping.org tutorial model (text files) to a model")
    p.add_argument("directory", metavar="DIR", help="directory with l1-W.txt ... (MLP) or c1-5x5x1x10-W.txt ... (CNN)")
    p.add_argument("--out", required=True, metavar="MODEL", help="model directory to write")


def run_import_tutorial(args: argparse.Namespace) -> None:
    from ..model.io import check_target
    from ..model.tutorial import load_tutorial

    check_target(args.out)
    net = load_tutorial(args.directory)
    net.save(args.out)
    print(f"imported the {net.metadata['source']} from {args.directory}; saved to {args.out}")


COMMANDS = {
    "train": (add_train, run_train),
    "evaluate": (add_evaluate, run_evaluate),
    "info": (add_info, run_info),
    "filters": (add_filters, run_filters),
    "import-tutorial": (add_import_tutorial, run_import_tutorial),
}
