"""Progress bars for long work: shown on a terminal and in Jupyter notebooks, silent in pipes and logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def wanted(progress: bool | None) -> bool:
    """``progress`` if given; by default True when stderr is a terminal or the code runs in a Jupyter kernel."""
    if progress is not None:
        return bool(progress)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


def bar(iterable: Iterable[Any], description: str, progress: bool | None = None, **options: Any) -> Any:
    """``iterable`` wrapped in a tqdm bar (a notebook widget in Jupyter) when :func:`wanted`, else a silent one."""
    show = wanted(progress)
    if show and "ipykernel" in sys.modules:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, desc=description, disable=not show, **options)
