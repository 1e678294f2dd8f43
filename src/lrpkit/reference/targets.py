"""Targets -> class filters: which output relevance starts from (``R_top = logits * filter``).

A target is an int class; a sequence of class ids, one per sample (integer values); a filter of shape
``(C,)`` or ``(N, C)`` (float values: one-hot or any weights); ``"pred"`` (the predicted class); or
``None`` (no class: zero relevance). ``"all"`` (every class at once) is handled by the network.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import TargetError

Array = np.ndarray


def class_filter(target: Any, output: Array) -> Array:
    """The filter for ``target``, broadcastable against ``output`` (``(N, C)`` logits, or ``(N, C, ...)`` with the
    classes along dimension 1), in its dtype."""
    if output.ndim == 2:
        return _logits_filter(target, output)
    if isinstance(target, np.ndarray) and target.dtype.kind == "f" and target.shape in (output.shape, output.shape[1:]):
        return np.broadcast_to(target.astype(output.dtype), output.shape)
    rows = np.moveaxis(output, 1, -1).reshape(-1, output.shape[1])  # one row of classes per position
    per_row = _logits_filter(_per_row(target, output), rows)
    return np.moveaxis(per_row.reshape(*np.moveaxis(output, 1, -1).shape), -1, 1)


def _per_row(target: Any, output: Array) -> Any:
    """Class ids per sample repeated for every position of its output."""
    if isinstance(target, (list, tuple, np.ndarray)) and np.asarray(target).dtype.kind in "iu":
        return np.repeat(np.asarray(target), int(np.prod(output.shape[2:])))
    return target


def _logits_filter(target: Any, logits: Array) -> Array:
    n, classes = logits.shape
    if target is None:
        return np.zeros_like(logits)
    if isinstance(target, str):
        if target != "pred":
            raise TargetError(f"unknown target {target!r}; use a class index, class ids, a filter, 'pred' or 'all'")
        return one_hot(np.argmax(logits, axis=1), classes, logits.dtype)
    if isinstance(target, (bool, np.bool_)):
        raise TargetError(f"a target must be a class index, class ids or a filter, got the bool {target!r}")
    if isinstance(target, numbers.Integral):
        return one_hot(np.full(n, _check_class(int(target), classes)), classes, logits.dtype)
    return _from_array(np.asarray(target), n, classes, logits.dtype)


def one_hot(ids: Array, classes: int, dtype: Any) -> Array:
    """Rows of the identity matrix: ``one_hot([2], 3) == [[0, 0, 1]]``."""
    return np.eye(classes, dtype=dtype)[ids]


def _check_class(index: int, classes: int) -> int:
    if not 0 <= index < classes:
        raise TargetError(f"target class {index} is out of range for a model with {classes} classes (0..{classes - 1})")
    return index


def _from_array(t: Array, n: int, classes: int, dtype: Any) -> Array:
    if t.dtype.kind in "iu" and t.ndim == 0:
        return one_hot(np.full(n, _check_class(int(t), classes)), classes, dtype)
    if t.dtype.kind in "iu":
        if t.shape != (n,):
            raise TargetError(f"class ids need one per sample, shape ({n},); got shape {t.shape}")
        for index in t:
            _check_class(int(index), classes)
        return one_hot(t.astype(np.int64), classes, dtype)
    if t.dtype.kind != "f":
        raise TargetError(f"a target filter must hold floats (class ids: integers), got dtype {t.dtype}")
    if t.shape not in ((classes,), (n, classes)):
        raise TargetError(f"a target filter must have shape ({classes},) or ({n}, {classes}); got {t.shape}")
    if not np.isfinite(t).all():
        raise TargetError("the target filter contains NaN or Inf values")
    return np.broadcast_to(t.astype(dtype), (n, classes)).copy()
