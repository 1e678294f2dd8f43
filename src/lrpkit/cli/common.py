"""What several commands share: the data option, reading a method."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import SpecError


def load_data(args: argparse.Namespace) -> Any:
    from ..model.data import mnist

    return mnist(args.data)


def add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="directory with MNIST IDX files (default: embedded 5000 images)")


def architecture(name: str) -> Any:
    from ..files import read_json
    from ..model.network import ARCHITECTURES, Network

    if name in ARCHITECTURES:
        return ARCHITECTURES[name]()
    file = Path(name)
    if not file.is_file():
        raise SpecError(f"--arch {name!r}: neither an architecture ({', '.join(ARCHITECTURES)}) nor a JSON file")
    spec = read_json(file, SpecError)
    return Network.from_spec(spec if isinstance(spec, dict) else {"layers": spec})


def method_spec(text: str) -> Any:
    if not text.lstrip().startswith("["):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(f"--method {text!r}: not valid JSON ({err})") from None
