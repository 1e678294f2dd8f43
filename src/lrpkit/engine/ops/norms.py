"""Normalisations: BatchNorm (eval statistics), LayerNorm and GroupNorm.

A BatchNorm that a Linear/conv alone feeds is merged into it by canonization; any other one is a per-channel
affine map whose bias-free epsilon rule is the identity. LayerNorm/GroupNorm ``y = (x - mu) / sigma * w + b``
hold ``sigma`` constant and apply the epsilon rule to the linear map ``y' = (x - mu(x)) g`` with
``g = w / sigma``:  ``R_i = x_i (g_i s_i - mean_j(g_j s_j))``, ``s = R / stab(y' [+ b])``, which conserves
``sum_i R_i = sum_j y'_j s_j``. The rule ``Pass`` makes them the identity instead.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ...rules import Epsilon
from ..graph import Node
from ..weighted import stab
from . import Op, Step, Trace, everything, inputs_only, shapes_only


def _batch_norm(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    x, w, b, mean, var = inputs
    return F.batch_norm(x, mean, var, w, b, False, 0.0, node.params["eps"])


def _batch_norm_relevance(step: Step) -> list[Tensor | None]:
    rule = step.rule
    if not (isinstance(rule, Epsilon) and rule.bias):
        return step.only(step.R)
    x, w, _, _, var = step.inputs
    shape = (-1, *[1] * (x.dim() - 2))
    scale = (var + step.node.params["eps"]).rsqrt() * (1.0 if w is None else w)
    linear = x * scale.view(shape)  # the bias-free part of y; -mean * scale + b is its bias
    return step.only(step.R / stab(step.output, rule.epsilon) * linear)


def _norm(node: Node, inputs: list[Any], trace: Trace) -> Tensor:
    x, w, b = inputs
    if node.op == "layer_norm":
        return F.layer_norm(x, node.params["shape"], w, b, node.params["eps"])
    return F.group_norm(x, node.params["groups"], w, b, node.params["eps"])


def _groups(node: Node, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``x`` viewed so that each normalised group is one row of the last dimension, and the view's shape."""
    if node.op == "layer_norm":
        count = len(node.params["shape"])
        return x.reshape(*x.shape[: x.dim() - count], -1), tuple(x.shape)
    return x.reshape(x.shape[0], node.params["groups"], -1), tuple(x.shape)


def _scale_shape(node: Node, x: Tensor) -> tuple[int, ...]:
    """The shape the per-element weight ``w`` broadcasts in against ``x``."""
    if node.op == "layer_norm":
        return tuple(node.params["shape"])
    return (-1, *[1] * (x.dim() - 2))


def _norm_relevance(step: Step) -> list[Tensor | None]:
    """``R_i = x_i (g_i s_i - mean(g s))`` over each normalised group, ``sigma`` held constant."""
    rule, node = step.rule, step.node
    if not isinstance(rule, Epsilon):
        return step.only(step.R)
    x, w, b = step.inputs
    rows, shape = _groups(node, x)
    centred = rows - rows.mean(-1, keepdim=True)
    g = (centred.square().mean(-1, keepdim=True) + node.params["eps"]).rsqrt_().expand_as(rows).reshape(shape)
    if w is not None:  # g = w / sigma, per element
        g = g * w.view(_scale_shape(node, x))
    total = centred.reshape(shape).mul_(g)  # y' = (x - mu) g
    if b is not None and rule.bias:
        total.add_(b.view(_scale_shape(node, x)))
    gs = (step.R / stab(total, rule.epsilon)).mul_(g)
    grouped = gs.reshape(gs.shape[0], *rows.shape)  # R may arrive permuted: no view
    return step.only(grouped.sub_(grouped.mean(-1, keepdim=True)).reshape(gs.shape).mul_(x))


def _batch_norm_reads(node: Node, rule: Any, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    return (everything if isinstance(rule, Epsilon) and rule.bias else shapes_only)(node, rule, receivers)


def _norm_reads(node: Node, rule: Any, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    return (inputs_only if isinstance(rule, Epsilon) else shapes_only)(node, rule, receivers)


OPS = {
    "batch_norm": Op(_batch_norm, _batch_norm_relevance, reads=_batch_norm_reads),
    "layer_norm": Op(_norm, _norm_relevance, reads=_norm_reads),
    "group_norm": Op(_norm, _norm_relevance, reads=_norm_reads),
}
