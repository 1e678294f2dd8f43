"""The ``lrpkit`` entry point. Each subcommand is an ``add_<name>`` (arguments) + ``run_<name>`` (work) pair.

Errors print one line on stderr and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from ..errors import LrpkitError

Command = tuple[Callable[[Any], None], Callable[[argparse.Namespace], None]]


GROUPS = ("model", "explain", "dataset", "spray")
"""The modules of this package that define commands, in the order ``lrpkit --help`` lists them."""


def commands() -> dict[str, Command]:
    """Every command name -> (add its arguments, run it), from each group's ``COMMANDS``."""
    found: dict[str, Command] = {}
    for group in GROUPS:
        found.update(import_module(f"{__package__}.{group}").COMMANDS)
    return found


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
    for add, _ in commands().values():
        add(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        commands()[args.command][1](args)
    except (LrpkitError, OSError) as err:
        if args.debug:
            raise
        return _fail(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
