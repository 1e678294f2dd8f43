"""Argument checks shared by every part of lrpkit: one helper per kind of value.

Each returns the value in its plain Python type or raises :class:`SpecError` saying which argument, what it
must be and what came. Booleans are never numbers here (``True`` is not a count). Pure Python: no torch, no NumPy
(their integer and float scalars are accepted through ``__index__`` / ``__float__``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

from .errors import LrpkitError, SpecError

SEED_LIMIT = 2**63
"""Seeds are integers in ``0 .. 2**63 - 1`` (what torch and NumPy generators take)."""


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in {minimum}..{maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""


def integer(
    value: Any,
    name: str,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[LrpkitError] = SpecError,
) -> int:
    """``value`` as an ``int`` within ``minimum..maximum`` (either may be None); no bools, no floats."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise error(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    return number


def positive_int(value: Any, name: str, error: type[LrpkitError] = SpecError) -> int:
    """``value`` as an ``int >= 1``."""
    try:
        return integer(value, name, minimum=1, error=error)
    except LrpkitError:
        raise error(f"{name} must be a positive integer, got {value!r}") from None


def seed(value: Any, name: str = "seed") -> int:
    """A random seed: an integer in ``0 .. 2**63 - 1``."""
    return integer(value, name, minimum=0, maximum=SEED_LIMIT - 1)


def number(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> float:
    """``value`` as a finite ``float``; ``minimum``/``maximum`` are inclusive bounds, ``above``/``below`` strict."""
    try:
        result = None if isinstance(value, (bool, str, bytes)) else float(value)
    except (TypeError, ValueError, OverflowError):
        result = None
    bad = result is None or not math.isfinite(result)
    bad = bad or (minimum is not None and result < minimum) or (maximum is not None and result > maximum)
    bad = bad or (above is not None and result <= above) or (below is not None and result >= below)
    if bad:
        bounds = zip((">=", "<=", ">", "<"), (minimum, maximum, above, below), strict=True)
        limits = " and ".join(f"{sign} {limit}" for sign, limit in bounds if limit is not None)
        raise SpecError(f"{name} must be a finite number{' ' + limits if limits else ''}, got {value!r}")
    return result  # type: ignore[return-value]


def flag(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise SpecError(f"{name} must be True or False, got {value!r}")
    return value


def choice(value: Any, name: str, options: Iterable[str]) -> str:
    """``value`` if it is one of the strings ``options``."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise SpecError(f"{name} must be one of {', '.join(options)}; got {value!r}")
    return value


def mapping(value: Any, name: str, error: type[LrpkitError] = SpecError) -> dict[str, Any]:
    """``value`` if it is a dict with string keys (a JSON object)."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise error(f"{name} must be a mapping of names to values (a JSON object), got {type(value).__name__}")
    return value
