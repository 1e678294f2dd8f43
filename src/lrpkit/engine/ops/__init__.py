"""One small module per family of node ops; each op is a forward function and a relevance step.

``forward(node, inputs, trace)`` computes the node's value from its inputs' values (and may record what its
relevance step needs in ``trace.aux``); ``relevance(step)`` turns the relevance at the node's output,
``step.R`` of shape ``(K, *output.shape)``, into relevance at each input position (None where none goes).
Only the positions the graph marks as receivers (signals) are read. ``reads(node, rule, receivers)`` says which
recorded values the step reads (input positions, and whether its own output); every other value is dropped once
the forward pass is done with it, and the step sees None there (``step.shape(k)`` still gives its shape).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ...rules import Rule
from ..graph import Node


@dataclass
class Trace:
    """One recorded forward pass: every node's value, what ops recorded besides it, and the per-call settings."""

    values: dict[str, Any]
    rules: Mapping[str, Rule]
    nonneg: frozenset[str] = frozenset()
    first: frozenset[str] = frozenset()
    model: Any = None
    aux: dict[str, Any] = field(default_factory=dict)
    bounds: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()  # the values the walk reads (every other one is dropped after the forward)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # of the values dropped after the forward


@dataclass(frozen=True)
class Step:
    """What a relevance step sees: the node, its inputs' and its own recorded values, and ``R`` at its output."""

    node: Node
    inputs: list[Any]
    output: Any
    R: Tensor
    trace: Trace
    receivers: tuple[int, ...]

    @property
    def rule(self) -> Rule | None:
        return self.trace.rules.get(self.node.name)

    def shape(self, slot: int) -> tuple[int, ...]:
        """The shape of input ``slot``, also where its value was dropped (shape-only steps read this)."""
        x = self.inputs[slot]
        return tuple(x.shape) if x is not None else self.trace.shapes[self.node.inputs[slot]]

    def only(self, relevance: Tensor | None, slot: int = 0) -> list[Tensor | None]:
        """``relevance`` at input position ``slot``, nothing elsewhere."""
        return [relevance if k == slot else None for k in range(len(self.node.inputs))]


Forward = Callable[[Node, list[Any], Trace], Any]
Relevance = Callable[[Step], Sequence[Tensor | None]]
Reads = Callable[[Node, "Rule | None", tuple[int, ...]], tuple[tuple[int, ...], bool]]


def everything(node: Node, rule: Rule | None, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """The step reads every input's value and its own output."""
    return tuple(range(len(node.inputs))), True


def shapes_only(node: Node, rule: Rule | None, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """The step reads no value, at most the inputs' shapes (moves, activations, products' uniform split)."""
    return (), False


def inputs_only(node: Node, rule: Rule | None, receivers: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """The step reads its inputs' values, not its output."""
    return tuple(range(len(node.inputs))), False


@dataclass(frozen=True)
class Op:
    """An op: its forward; its relevance step (None: forward only, refused on the relevance path); whether its
    value is known to be ``>= 0`` given which signal inputs are (``sign``); which values its step ``reads``."""

    forward: Forward
    relevance: Relevance | None = None
    sign: Callable[[Node, list[bool]], bool] = lambda node, flags: False
    reads: Reads = everything


def keeps_sign(node: Node, flags: list[bool]) -> bool:
    """Non-negative when every input is (moves, pooling, concatenation, sums of non-negative values)."""
    return bool(flags) and all(flags)


def transpose(fn: Callable[[Tensor], Tensor], x: Tensor, s: Tensor) -> Tensor:
    """``J^T s`` for the linear op ``fn`` at ``x``, for every target: ``s`` is ``(K, *fn(x).shape)``."""
    _, vjp = torch.func.vjp(fn, x)
    if s.shape[0] == 1:
        return vjp(s[0].contiguous())[0].unsqueeze(0)
    return torch.vmap(vjp)(s)[0]


def proportional(fn: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, R: Tensor, epsilon: float) -> Tensor:
    """The share of each input in a linear op with non-negative weights: ``x * J^T (R / stab(fn(x)))``."""
    from ..weighted import stab

    return transpose(fn, x, R / stab(y, epsilon)).mul_(x)


def sum_to(R: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``R`` of shape ``(K, *broadcast shape)`` summed back to ``(K, *shape)`` over the broadcast dimensions."""
    if tuple(R.shape[1:]) == tuple(shape):
        return R
    padded = (R.shape[0], *([1] * (R.dim() - 1 - len(shape))), *shape)
    return R.sum_to_size(padded).reshape(R.shape[0], *shape)


def registry() -> dict[str, Op]:
    """Every op lrpkit knows, by name."""
    from . import attention, elementwise, linear, moves, norms, opaque, pooling

    ops: dict[str, Op] = {}
    for module in (linear, pooling, moves, elementwise, norms, opaque, attention):
        ops.update(module.OPS)
    return ops
