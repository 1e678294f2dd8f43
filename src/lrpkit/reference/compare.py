"""Layer-by-layer comparison of two lists of arrays (engine vs reference), with a readable report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import LrpkitError

Array = np.ndarray


@dataclass(frozen=True)
class LayerCheck:
    """One layer boundary: the largest absolute difference and the largest reference magnitude."""

    label: str
    shape: tuple[int, ...]
    max_abs_diff: float
    scale: float
    ok: bool


@dataclass(frozen=True)
class Report:
    """Per-layer results of comparing ``what`` (outputs or relevances) within ``atol + rtol * scale``."""

    what: str
    atol: float
    rtol: float
    checks: tuple[LayerCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.checks), default=0.0)

    def failures(self) -> list[LayerCheck]:
        return [c for c in self.checks if not c.ok]

    def __str__(self) -> str:
        rows = [f"{self.what}: atol={self.atol:g}, rtol={self.rtol:g}", f"{'':6}{'layer':<44} {'shape':<20} max|diff|"]
        for c in self.checks:
            rows.append(f"{'ok' if c.ok else 'FAIL':<6}{c.label:<44} {c.shape!s:<20} {c.max_abs_diff:.3g}")
        return "\n".join(rows)


def tolerances(dtype: object, atol: float | None = None, rtol: float | None = None) -> tuple[float, float]:
    """``(atol, rtol)`` that fit ``dtype``: ``rtol = 10 sqrt(eps)`` of the layer's largest magnitude (rounding
    grows through the layers and ill-conditioned rules such as LRP-0 amplify it), ``atol = eps``; float32:
    3.5e-3 and 1.2e-7, float64: 1.5e-7 and 2.2e-16. Values given explicitly win."""
    eps = float(np.finfo(np.dtype(dtype)).eps) if np.issubdtype(np.dtype(dtype), np.floating) else 0.0
    return (eps if atol is None else atol), (10 * eps**0.5 if rtol is None else rtol)


class MismatchError(LrpkitError, AssertionError):
    """The engine and the NumPy reference disagree; ``.report`` holds every layer's result."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


def compare(
    ours: Sequence[Array],
    reference: Sequence[Array],
    labels: Sequence[str],
    what: str,
    atol: float,
    rtol: float = 0.0,
    backward: bool = False,
) -> Report:
    """Compares array ``k`` of ``ours`` with array ``k`` of ``reference``; raises :class:`MismatchError` naming
    the first that differs, in list order or, with ``backward`` (relevances), from the end of the list."""
    checks = tuple(_check(a, b, label, atol, rtol) for a, b, label in zip(ours, reference, labels, strict=True))
    report = Report(what, atol, rtol, checks)
    bad = next((c for c in (checks[::-1] if backward else checks) if not c.ok), None)
    if bad is not None:
        where = "walking back from the logits, first" if backward else "first"
        raise MismatchError(
            f"{what} differ {where} at {bad.label}: max |engine - reference| = {bad.max_abs_diff:.3g} "
            f"> atol {atol:g} + rtol {rtol:g} * {bad.scale:.3g}\n{report}",
            report,
        )
    return report


def _check(a: Array, b: Array, label: str, atol: float, rtol: float) -> LayerCheck:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return LayerCheck(f"{label} (engine shape {a.shape})", b.shape, float("inf"), 0.0, False)
    diff = float(np.max(np.abs(a - b), initial=0.0))
    scale = float(np.max(np.abs(b), initial=0.0))
    ok = bool(np.isfinite(diff)) and diff <= atol + rtol * scale
    return LayerCheck(label, b.shape, diff, scale, ok)
