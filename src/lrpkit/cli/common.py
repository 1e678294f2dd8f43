"""What several commands share: the data option, typed arguments, and the one syntax of explanation methods.

Building the parser imports no torch, so ``lrpkit``, ``lrpkit --help`` and ``lrpkit --version`` answer at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .. import checks
from ..errors import SpecError

T = TypeVar("T")

BASELINES = ("random", "gradient", "sensitivity", "gradxinput", "integrated_gradients", "smoothgrad")
"""The names of :data:`lrpkit.attribution.BASELINES` (spelled out here so that the parser needs no torch)."""
DEFAULT_METHODS = "deeptaylor,zbab,epsilon_plus,simple,sensitivity,gradient,gradxinput,random"


# -- data ---------------------------------------------------------------------------------------------


def load_data(args: argparse.Namespace) -> Any:
    from ..model.data import mnist

    return mnist(args.data)


def add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="directory with MNIST IDX files (default: embedded 5000 images)")


def architecture(name: str, skeleton: bool = False) -> Any:
    """The network ``--arch`` names (a ready-made one or a JSON spec file); ``skeleton``: on the meta device,
    nothing allocated, to check it against the data before building it."""
    import torch

    from ..files import read_json
    from ..model.network import ARCHITECTURES, Network

    if name not in ARCHITECTURES and not Path(name).is_file():
        raise SpecError(f"--arch {name!r}: neither an architecture ({', '.join(ARCHITECTURES)}) nor a JSON file")
    with torch.device("meta" if skeleton else "cpu"):
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]()
        spec = read_json(name, SpecError)
        try:
            return Network.from_spec(spec if isinstance(spec, dict) else {"layers": spec})
        except SpecError as err:
            raise SpecError(f"--arch {name}: {err}") from None


# -- typed arguments ----------------------------------------------------------------------------------


def typed(check: Callable[[Any, str], T], convert: Callable[[str], Any] = int) -> Callable[[str], T]:
    """An argparse ``type``: ``convert`` the text, then ``check`` it; problems become argparse's one-line errors."""

    def parse(text: str) -> T:
        try:
            return check(convert(text), "value")
        except (ValueError, SpecError) as err:
            message = str(err) if isinstance(err, SpecError) else f"expected {convert.__name__}, got {text!r}"
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = convert.__name__  # argparse names the type in its messages
    return parse


POSITIVE = typed(checks.positive_int)
SEED = typed(checks.seed)
LEARNING_RATE = typed(lambda value, name: checks.number(value, name, above=0.0), float)
PIXELS = typed(lambda value, name: checks.integer(value, name, minimum=0))


# -- explanation methods ------------------------------------------------------------------------------


def method_help() -> str:
    """The names a method may have, for ``--help``."""
    from ..composites import PRESETS
    from ..rules import RULES

    return (
        f"presets: {', '.join(PRESETS)}; rules: {', '.join(RULES)} (with parameters: name:value, e.g. ab:2, "
        'epsilon:0.25, or JSON such as \'["ab", 2.0]\', one rule per layer \'["zb", "ab", "epsilon"]\' or a '
        'composite \'{"conv": "zplus", "linear": "epsilon"}\')'
    )


def parse_method(text: str) -> Any:
    """``"deeptaylor"``, ``"ab:2"`` -> ``["ab", 2.0]``, or JSON: ``'["ab", 2.0]'``, a per-layer list, or a
    composite ``'{"conv": "zplus", "linear": "epsilon"}'``."""
    text = text.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"method {text!r}: not valid JSON ({err})") from None
    name, *params = text.split(":")
    try:
        return [name, *map(float, params)] if params else name
    except ValueError:
        raise SpecError(f"method {text!r}: expected name or name:number (e.g. ab:2)") from None


def split_methods(text: str) -> list[str]:
    """Splits ``--methods`` at the commas outside JSON brackets and braces."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if not all(part.strip() for part in parts):
        raise SpecError(f"--methods: expected comma-separated methods, got {text!r}")
    return parts
