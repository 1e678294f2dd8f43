"""The ``lrpkit`` command line: one module per group of commands, each an ``add_<name>`` + ``run_<name>`` pair."""

from .main import main, parser

__all__ = ["main", "parser"]
