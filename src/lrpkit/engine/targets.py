"""Targets: which outputs an explanation starts from, turned into the starting relevance ``(K, N, C)``.

``R_top = logits * filter`` (``relu(logits) * filter`` for rectified presets such as ``"deeptaylor"``).
The leading dimension ``K`` is 1, or ``C`` for ``"all"`` (every class explained in one pass).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import TargetError

KEYWORDS = ("pred", "all")
HELP = (
    "a target is an int class, a sequence/tensor of class ids (one per sample), a float filter of shape (C,) "
    "or (N, C), 'pred', 'all', or None"
)


def start_relevance(logits: Tensor, target: Any, rectify: bool = False) -> tuple[Tensor, bool]:
    """The relevance ``(K, N, C)`` at the readout, and whether ``K`` runs over every class (``"all"``)."""
    if logits.dim() != 2:
        raise TargetError(f"the model outputs shape {tuple(logits.shape)}; expected (N, classes) logits")
    every = isinstance(target, str) and target == "all"
    top = logits.clamp(min=0) if rectify else logits
    return top * class_filter(target, logits), every


def class_filter(target: Any, logits: Tensor) -> Tensor:
    """The filter ``(K, N or 1, C)`` that ``target`` selects; see :data:`HELP`."""
    n, classes = logits.shape
    if target is None:
        return logits.new_zeros((1, 1, classes))
    if isinstance(target, str):
        return _keyword(target, logits)
    if isinstance(target, bool):
        raise TargetError(f"target must not be a bool, got {target!r}; {HELP}")
    values = _as_tensor(target).to(logits.device)
    if values.dtype == torch.bool or values.is_complex():
        raise TargetError(f"target has dtype {values.dtype}; {HELP}")
    if values.is_floating_point():
        return _filter(values.to(logits.dtype), n, classes)
    return _one_hot(_class_ids(values, n, classes), classes, logits)[None]


def _keyword(target: str, logits: Tensor) -> Tensor:
    classes = logits.shape[1]
    if target == "pred":
        return _one_hot(logits.argmax(1), classes, logits)[None]
    if target == "all":
        return torch.eye(classes, dtype=logits.dtype, device=logits.device)[:, None, :]
    raise TargetError(f"unknown target {target!r}; keywords: {', '.join(map(repr, KEYWORDS))}; {HELP}")


def _as_tensor(target: Any) -> Tensor:
    if isinstance(target, Tensor):
        return target.detach()
    try:
        return torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError):
        raise TargetError(f"cannot read target {target!r}; {HELP}") from None


def _filter(values: Tensor, n: int, classes: int) -> Tensor:
    if values.shape not in ((classes,), (n, classes)):
        raise TargetError(f"a class filter must have shape ({classes},) or ({n}, {classes}), got {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise TargetError("the class filter contains NaN or Inf")
    return values.reshape(1, -1, classes)


def _class_ids(values: Tensor, n: int, classes: int) -> Tensor:
    if values.dim() == 0:
        values = values.expand(n)
    if values.shape != (n,):
        raise TargetError(f"class ids must be one int or one per sample, shape ({n},); got shape {tuple(values.shape)}")
    bad = (values < 0) | (values >= classes)
    if bool(bad.any()):
        raise TargetError(
            f"class id {int(values[bad][0])} is out of range: the model has {classes} classes (0..{classes - 1})"
        )
    return values


def _one_hot(ids: Tensor, classes: int, like: Tensor) -> Tensor:
    """``(N, C)`` rows with a 1 at each id."""
    return torch.nn.functional.one_hot(ids.long(), classes).to(like.dtype)
