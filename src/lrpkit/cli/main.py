"""The ``lrpkit`` entry point. Each subcommand is an ``add_<name>`` (arguments) + ``run_<name>`` (work) pair.

Errors print one line on stderr and exit with code 2; ``--debug`` (before or after the command) shows the
traceback instead. Ctrl-C prints one line and exits with 130. ``lrpkit`` alone prints the usage and the commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from ..errors import LrpkitError

Command = tuple[Callable[[Any], None], Callable[[argparse.Namespace], None]]
INTERRUPTED = 130


GROUPS = ("model", "explain", "dataset", "spray")
"""The modules of this package that define commands, in the order ``lrpkit --help`` lists them."""


def commands() -> dict[str, Command]:
    """Every command name -> (add its arguments, run it), from each group's ``COMMANDS``."""
    found: dict[str, Command] = {}
    for group in GROUPS:
        found.update(import_module(f"{__package__}.{group}").COMMANDS)
    return found


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to every option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or not action.help or "(default" in action.help:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, as for every other error
        raise SystemExit(_fail(f"{self.prog}: {message}"))


def _fail(message: str) -> int:
    print(f"lrpkit: error: {message}", file=sys.stderr)
    return 2


def _debug_option() -> argparse.ArgumentParser:
    """``--debug``, accepted before the command and after it (a subcommand's default never hides the root's)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parent


def parser() -> argparse.ArgumentParser:
    from .. import __version__

    debug = _debug_option()
    root = _Parser(prog="lrpkit", description="Train networks on MNIST and explain them with LRP.", parents=[debug])
    root.add_argument("--version", action="version", version=f"lrpkit {__version__}")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add, _ in commands().values():
        add(_WithParents(sub, [debug]))
    return root


class _WithParents:
    """Hands ``parents`` to every ``add_parser`` call of a subparsers action (the commands need not know)."""

    def __init__(self, sub: Any, parents: list[argparse.ArgumentParser]) -> None:
        self.sub, self.parents = sub, parents

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        return self.sub.add_parser(name, parents=self.parents, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    root = parser()
    try:
        args = root.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error (already printed in one line)
        return done.code if isinstance(done.code, int) else 0
    debug = getattr(args, "debug", False)
    if args.command is None:
        root.print_help()
        return 0
    try:
        commands()[args.command][1](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("lrpkit: interrupted", file=sys.stderr)
        return INTERRUPTED
    except (LrpkitError, OSError, MemoryError) as err:
        if debug:
            raise
        return _fail(str(err) if not isinstance(err, MemoryError) else "out of memory (try a smaller --n)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
