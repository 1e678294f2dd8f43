"""Targets: which outputs an explanation starts from, turned into the starting relevance ``(K, N, C)``.

``R_top = logits * filter`` (``relu(logits) * filter`` for rectified presets such as ``"deeptaylor"``).
The leading dimension ``K`` is 1, or ``C`` for ``"all"`` (every class explained in one pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import TargetError

KEYWORDS = ("pred", "all")


@dataclass(frozen=True)
class Logit:
    """A target for sequence outputs and contrastive explanations.

    ``target``: a class (token) id, one per sample, or ``"pred"``; ``position``: for outputs ``(N, L, C)`` such as
    a causal LM's next-token logits, the sequence position explained (an int, negative from the end, or one per
    sample for padded batches); ``contrastive``: explain the target's logit minus the mean of the others
    (filter ``+1`` at the target, ``-1 / (C - 1)`` elsewhere).
    """

    target: Any = "pred"
    position: Any = None
    contrastive: bool = False

    def filter(self, output: Tensor) -> Tensor:
        """The float filter of ``output``'s shape this target stands for."""
        logits = output if self.position is None else _at_position(output, self.position)
        if isinstance(self.target, str) and self.target != "pred":
            raise TargetError(f"Logit target must be a class id, ids per sample or 'pred', got {self.target!r}")
        classes = logits.shape[1]
        ids = (
            logits.argmax(1)
            if isinstance(self.target, str)
            else _class_ids(_as_tensor(self.target), len(logits), classes)
        )
        rows = _one_hot(ids.to(output.device), classes, output)
        if self.contrastive:
            rows = rows - (1 - rows) / max(classes - 1, 1)
        if self.position is None:
            return rows
        full = output.new_zeros(output.shape)
        full[torch.arange(len(output)), _positions(self.position, output)] = rows
        return full


def _positions(position: Any, output: Tensor) -> Tensor:
    n, length = output.shape[:2]
    values = _as_tensor(position).to(output.device).long()
    values = values.expand(n) if values.dim() == 0 else values
    if values.shape != (n,) or bool(((values < -length) | (values >= length)).any()):
        raise TargetError(f"position must be an int or one per sample in -{length}..{length - 1}, got {position!r}")
    return values % length


def _at_position(output: Tensor, position: Any) -> Tensor:
    if output.dim() != 3:
        raise TargetError(f"a position selects along dimension 1 of an (N, L, C) output, got {tuple(output.shape)}")
    return output[torch.arange(len(output)), _positions(position, output)]


HELP = (
    "a target is an int class, a sequence/tensor of class ids (one per sample), a float filter of shape (C,) "
    "or (N, C), 'pred', 'all', lrpkit.Logit(target, position, contrastive), or None"
)


def start_relevance(output: Tensor, target: Any, rectify: bool = False) -> tuple[Tensor, bool]:
    """The relevance ``(K, *output.shape)`` at the readout, and whether ``K`` runs over every class (``"all"``).

    ``output`` is ``(N, C)`` logits or any ``(N, C, ...)`` output (e.g. a segmentation map): class ids select along
    dimension 1 and a float filter may also have the shape of one sample's output or of the whole output.
    """
    if output.dim() < 2:
        raise TargetError(f"the model outputs shape {tuple(output.shape)}; expected (N, classes) logits")
    every = isinstance(target, str) and target == "all"
    top = output.clamp(min=0) if rectify else output
    return top * class_filter(target, output), every


def class_filter(target: Any, output: Tensor) -> Tensor:
    """The filter ``(K, N or 1, C, ...)`` that ``target`` selects, broadcastable against ``output`` (:data:`HELP`)."""
    n, classes = output.shape[:2]
    rest = (1,) * (output.dim() - 2)
    if target is None:
        return output.new_zeros((1, 1, classes, *rest))
    if isinstance(target, str):
        return _keyword(target, output)
    if isinstance(target, Logit):
        return target.filter(output).unsqueeze(0)
    if isinstance(target, bool):
        raise TargetError(f"target must not be a bool, got {target!r}; {HELP}")
    values = _as_tensor(target).to(output.device)
    if values.dtype == torch.bool or values.is_complex():
        raise TargetError(f"target has dtype {values.dtype}; {HELP}")
    if values.is_floating_point():
        return _filter(values.to(output.dtype), output)
    return _one_hot(_class_ids(values, n, classes), classes, output).view(1, n, classes, *rest)


def _keyword(target: str, output: Tensor) -> Tensor:
    classes, rest = output.shape[1], (1,) * (output.dim() - 2)
    if target == "pred":
        return _one_hot(output.argmax(1), classes, output).movedim(-1, 1)[None]
    if target == "all":
        return torch.eye(classes, dtype=output.dtype, device=output.device).view(classes, 1, classes, *rest)
    raise TargetError(f"unknown target {target!r}; keywords: {', '.join(map(repr, KEYWORDS))}; {HELP}")


def _as_tensor(target: Any) -> Tensor:
    if isinstance(target, Tensor):
        return target.detach()
    try:
        return torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError):
        raise TargetError(f"cannot read target {target!r}; {HELP}") from None


def _filter(values: Tensor, output: Tensor) -> Tensor:
    (n, classes), rest = output.shape[:2], tuple(output.shape[2:])
    shapes = {(classes,): (1, 1, classes), (n, classes): (1, n, classes)}
    if rest:
        shapes.update({(classes, *rest): (1, 1, classes, *rest), (n, classes, *rest): (1, n, classes, *rest)})
    if tuple(values.shape) not in shapes:
        allowed = " or ".join(str(s) for s in shapes)
        raise TargetError(f"a class filter must have shape {allowed}, got {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise TargetError("the class filter contains NaN or Inf")
    target = shapes[tuple(values.shape)]
    return values.reshape(*target, *[1] * (output.dim() + 1 - len(target)))


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
    """One-hot rows ``(..., C)`` with a 1 at each id."""
    rows = like.new_zeros((*ids.shape, classes))  # in like's dtype at once (one_hot makes int64 rows first)
    return rows.scatter_(-1, ids.long().unsqueeze(-1), 1.0)
