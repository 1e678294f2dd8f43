"""The ``lrpkit`` command line. Each subcommand is an ``add_<name>`` (arguments) + ``run_<name>`` (work) pair.

Errors print one line on stderr and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import LrpkitError, SpecError


def _load_data(args: argparse.Namespace) -> Any:
    from .data import mnist

    return mnist(args.data)


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="directory with MNIST IDX files (default: embedded 5000 images)")


def _architecture(name: str) -> Any:
    from .files import read_json
    from .network import ARCHITECTURES, Network

    if name in ARCHITECTURES:
        return ARCHITECTURES[name]()
    file = Path(name)
    if not file.is_file():
        raise SpecError(f"--arch {name!r}: neither an architecture ({', '.join(ARCHITECTURES)}) nor a JSON file")
    spec = read_json(file, SpecError)
    return Network.from_spec(spec if isinstance(spec, dict) else {"layers": spec})


# -- train / evaluate / info ---------------------------------------------------------------------


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a network on MNIST and save it")
    p.add_argument("--arch", default="mlp", help="mlp, cnn, tutorial_mlp, tutorial_cnn, or a JSON spec file")
    p.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    _add_data(p)
    p.add_argument("--steps", type=int, help="training steps (default: 3000 for mlp, 1500 for cnn, else 2000)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=["sigmoid", "softmax"], default="sigmoid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", type=int, metavar="PIXELS", help="random shifts of up to PIXELS (mlp/cnn: 1, else 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace) -> None:
    from .train import DEFAULT_RECIPE, RECIPES

    net = _architecture(args.arch)
    data = _load_data(args)
    if data.train is None:
        raise SpecError(f"--data {args.data}: has no training files (train-images-idx3-ubyte...)")
    recipe = {**RECIPES.get(args.arch, DEFAULT_RECIPE)}
    recipe.update({k: v for k, v in (("steps", args.steps), ("augment", args.augment)) if v is not None})
    history = net.fit(
        data.train, batch_size=args.batch_size, lr=args.lr, loss=args.loss, seed=args.seed,
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
    _add_data(p)


def run_evaluate(args: argparse.Namespace) -> None:
    from .io import load

    net = load(args.model)
    scores = net.evaluate(_load_data(args).test)
    print(f"accuracy {scores['accuracy']:.4f}  loss {scores['loss']:.4f}")


def add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="architecture, parameter count and metadata of a saved model")
    p.add_argument("model", metavar="MODEL")


def run_info(args: argparse.Namespace) -> None:
    from .io import load

    net = load(args.model)
    print(net.summary())
    for key, value in sorted(net.metadata.items()):
        print(f"{key}: {value}")


# -- explain / filters -----------------------------------------------------------------------------


def add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="heatmaps of a saved model's decisions on MNIST test images")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--method", default="deeptaylor", help="a rule or preset name, or JSON such as '[\"ab\", 2.0]'")
    p.add_argument("--target", default="true", help="true, pred, all, none, or a class K (default: true)")
    p.add_argument("--n", type=int, default=10, help="number of test images, spread evenly over the split")
    _add_data(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the pictures and the relevance .npy")
    p.add_argument("--cmap", default="heatmap", help="heatmap, tutorial, bwr, seismic, coldnhot or gray")


def _method(text: str) -> Any:
    if not text.lstrip().startswith("["):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(f"--method {text!r}: not valid JSON ({err})") from None


def run_explain(args: argparse.Namespace) -> None:
    from .explanation import explain_to_files, parse_target, spread
    from .io import load

    net = load(args.model)
    parse_target(args.target, net.classes)  # fail before loading the data
    test = _load_data(args).test
    index = spread(len(test), args.n, "--n")
    x, labels = test.images[index], test.labels[index]
    result = explain_to_files(net, x, _method(args.method), args.target, args.out, labels=labels, cmap=args.cmap)
    print("\n".join(str(path) for path in result.files))
    error = result.conservation_error.max(initial=0.0)
    print(f"conservation error: max |sum(heatmap) - R_top| = {error:.3g} ", end="")
    print(f"({result.relative_error():.2g} of the largest |R_top|) over {args.n} images")


def add_filters(sub: Any) -> None:
    p = sub.add_parser("filters", help="draw the first layer's filters of a saved model")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--out", default="filters.png", metavar="PNG", help="picture to write (default: filters.png)")


def run_filters(args: argparse.Namespace) -> None:
    from .io import load
    from .pictures import plot_filters

    print(plot_filters(load(args.model), args.out))


# -- evaluate-methods (faithfulness: pixel flipping / AOPC, see report.py) ---------------------------


def add_evaluate_methods(sub: Any) -> None:
    from .report import DEFAULT_METHODS

    p = sub.add_parser("evaluate-methods", help="pixel flipping / AOPC of explanation methods, with an HTML report")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated LRP methods/presets (name:param for "
                   "rules, e.g. ab:2) and baselines: gradient, gradxinput, sensitivity, integrated_gradients, "
                   "smoothgrad, random")  # fmt: skip
    p.add_argument("--n", type=int, default=500, help="number of test images (a seeded random subset)")
    _add_data(p)
    p.add_argument("--out", required=True, metavar="DIR", help="directory for aopc.md/.csv, PNGs and report.html")
    p.add_argument("--target", choices=["pred", "true"], default="pred", help="explain the predicted or true class")
    p.add_argument("--steps", type=int, default=100, help="perturbation steps (all regions over the steps)")
    p.add_argument("--region", type=int, default=1, help="square region size in pixels")
    p.add_argument("--fill", choices=["uniform", "zeros", "mean", "low"], default="uniform")
    p.add_argument("--order", choices=["morf", "lerf", "random"], default="morf")
    p.add_argument("--batch-size", type=int, default=1024, help="perturbed images per forward pass")
    p.add_argument("--seed", type=int, default=0)


def run_evaluate_methods(args: argparse.Namespace) -> None:
    from .io import load
    from .report import evaluate_methods, parse_methods

    methods = parse_methods(args.methods)  # fail before loading anything
    net = load(args.model)
    options = {"steps": args.steps, "region": args.region, "fill": args.fill, "order": args.order}
    comparison, files = evaluate_methods(
        net, _load_data(args).test, methods, args.out, n=args.n, target=args.target, seed=args.seed,
        details={"model": args.model}, batch_size=args.batch_size, **options,
    )  # fmt: skip
    print(comparison)
    print("\n".join(str(path) for path in files.values()))


# -- entry point ---------------------------------------------------------------------------------

# -- import-tutorial -------------------------------------------------------------------------------


def add_import_tutorial(sub: Any) -> None:
    p = sub.add_parser("import-tutorial", help="convert a heatmapping.org tutorial model (text files) to a model")
    p.add_argument("directory", metavar="DIR", help="directory with l1-W.txt ... (MLP) or c1-5x5x1x10-W.txt ... (CNN)")
    p.add_argument("--out", required=True, metavar="MODEL", help="model directory to write")


def run_import_tutorial(args: argparse.Namespace) -> None:
    from .tutorial_format import load_tutorial

    net = load_tutorial(args.directory)
    net.save(args.out)
    print(f"imported the {net.metadata['source']} from {args.directory}; saved to {args.out}")


COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], None]]] = {
    "train": (add_train, run_train),
    "evaluate": (add_evaluate, run_evaluate),
    "info": (add_info, run_info),
    "explain": (add_explain, run_explain),
    "filters": (add_filters, run_filters),
    "evaluate-methods": (add_evaluate_methods, run_evaluate_methods),
    "import-tutorial": (add_import_tutorial, run_import_tutorial),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other error
        raise SystemExit(_fail(f"{self.prog}: {message}"))


def _fail(message: str) -> int:
    print(f"lrpkit: error: {message}", file=sys.stderr)
    return 2


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="lrpkit", description="Train networks on MNIST and explain them with LRP.")
    root.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = root.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add, _ in COMMANDS.values():
        add(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        COMMANDS[args.command][1](args)
    except (LrpkitError, OSError) as err:
        if args.debug:
            raise
        return _fail(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
