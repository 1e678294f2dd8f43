"""A plain NumPy interpreter over lrpkit's node list: forward, zB bounds, and the relevance walk.

It shares with the engine only what says *where* things go (the graph's signals, gates, first layers and
receivers; the composites), never the math: every op has its own NumPy forward and relevance in :mod:`.ops`.
One target at a time; ``"all"`` stacks the classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..composites import resolve
from ..engine.canonize import canonize
from ..engine.graph import SOURCES, Graph
from ..errors import InputError, SpecError
from ..rules import Proportional, Rule, Winner, ZBox
from .ops import OPS, Context
from .rules import _bound
from .targets import class_filter, one_hot

Array = np.ndarray
MAXPOOL_MODES = {"winner": Winner(), "proportional": Proportional()}


@dataclass(frozen=True, eq=False)
class ReferenceGraph:
    """A graph with the values of its constants (NumPy arrays by node name).

    Relevance runs on the canonical graph (BatchNorms merged where the engine merges them: which node merges is
    shared with the engine, the merging itself is this package's own NumPy code)."""

    graph: Graph
    constants: Mapping[str, Any]

    @cached_property
    def canonical(self) -> Graph:
        return canonize(self.graph)

    def values(self, x: Array, graph: Graph | None = None) -> dict[str, Array]:
        """Every node's value for input ``x`` (in ``x``'s dtype), on ``graph`` (default: the graph as given)."""
        values: dict[str, Any] = {}
        for node in (graph or self.graph).nodes:
            if node.op == "input":
                values[node.name] = x
            elif node.op == "constant" or node.name not in self.graph.signals:
                values[node.name] = _in_dtype(self.constants.get(node.name), x.dtype)
            else:
                values[node.name] = self._forward(node, values)
        return values

    def _forward(self, node: Any, values: dict[str, Any]) -> Array:
        op = OPS.get(node.op)
        if node.op == "call" and not self.graph.consumers.get(node.name):
            return None  # a call whose value nothing reads (an assertion such as _assert_tensor_metadata)
        if op is None:
            raise SpecError(f"the NumPy reference has no op {node.op!r} ({node.describe()})")
        return op[0](node, [values[i] if i is not None else None for i in node.inputs])

    def layerwise_lrp(
        self,
        x: Array,
        target: Any,
        method: Any = "simple",
        bounds: Any = None,
        maxpool: str = "winner",
        layers: Sequence[str] | None = None,
    ) -> dict[str, Array]:
        """Relevance at the output of every node it reaches (the input first); ``"all"``: ``(N, C, ...)``."""
        if maxpool not in MAXPOOL_MODES:
            raise SpecError(f"maxpool must be one of {tuple(MAXPOOL_MODES)}, got {maxpool!r}")
        graph = self.canonical
        plan = resolve(method, graph.relevant, graph.first, layers, {"max_pool": MAXPOOL_MODES[maxpool]})
        values = self.values(x, graph)
        output = values[graph.output]
        top = np.maximum(output, 0) if plan.rectify else output
        carried = self._carry(values, bounds) if bounds is not None else {}
        if isinstance(target, str) and target == "all":
            classes = output.shape[1]
            runs = [self._walk(values, top * one_hot(np.full(len(top), c), classes, top.dtype), plan.rules, carried)
                    for c in range(classes)]  # fmt: skip
            return self._merged_names({name: np.stack([run[name] for run in runs], axis=1) for name in runs[0]})
        return self._merged_names(self._walk(values, top * class_filter(target, output), plan.rules, carried))

    def _merged_names(self, found: dict[str, Array]) -> dict[str, Array]:
        """Relevance also under the names of merged BatchNorms (the layer they were merged into)."""
        for node in self.graph.nodes:
            if node.op == "batch_norm" and node.name not in self.canonical.by_name and node.inputs[0] in found:
                found[node.name] = found[node.inputs[0]]
        return found

    def _walk(self, values: dict, R_top: Array, rules: Mapping[str, Rule], carried: dict) -> dict[str, Array]:
        graph = self.canonical
        pending, found = {graph.output: R_top}, {}
        for node in reversed(graph.relevant):
            R = pending.pop(node.name, None)
            if R is None:
                continue
            found[node.name] = R
            if node.op in SOURCES:
                continue
            inputs = [values[i] if i is not None else None for i in node.inputs]
            rule = rules.get(node.name)
            context = Context(node, inputs, values[node.name], R, rule, graph.receivers(node), carried.get(node.name))
            if isinstance(rule, ZBox) and (rule.low is None or rule.high is None) and context.bounds is None:
                raise SpecError(f"{node.describe()}: the zB rule needs bounds of this layer's input")
            shares = OPS[node.op][1](context)
            for k in context.receivers:
                if shares[k] is not None:
                    name = node.inputs[k]
                    pending[name] = pending[name] + shares[k] if name in pending else shares[k]
        found.setdefault(graph.input, np.zeros_like(values[graph.input]))
        return dict(reversed(found.items()))

    def _carry(self, values: dict, bounds: Any) -> dict[str, tuple[Array, Array]]:
        """The input's bounds mapped node by node (forward on both, sorted) up to each first Linear-type node."""
        graph, x = self.canonical, values[self.canonical.input]
        reach = {graph.input: (_bound(bounds[0], x, "low"), _bound(bounds[1], x, "high"))}
        for node in graph.bounded:
            reach[node.name] = self._map_bounds(node, values, reach)
        first = (graph.by_name[name] for name in graph.first)  # one sample's bounds at each first layer
        return {node.name: tuple(b[0] for b in reach[node.inputs[0]]) for node in first if node.inputs[0] in reach}

    def _map_bounds(self, node: Any, values: dict, reach: dict) -> tuple[Array, Array]:
        if node.op == "pad":  # the border takes the bounds of its nearest input value
            widths = [(0, 0)] * values[node.name].ndim
            pad = node.params["pad"]
            for k in range(len(pad) // 2):
                widths[len(widths) - 1 - k] = (pad[2 * k], pad[2 * k + 1])
            return tuple(np.pad(b, widths, mode="edge") for b in reach[node.inputs[0]])  # type: ignore[return-value]
        if node.op == "add":
            low = high = node.params["other"]
            for name, scale in zip(node.inputs, node.params["scales"], strict=True):
                a, b = reach[name] if name in reach else (values[name], values[name])
                low, high = low + np.minimum(a * scale, b * scale), high + np.maximum(a * scale, b * scale)
            return low, high
        ends = [self._forward(node, {**values, **{i: reach[i][k] for i in node.inputs if i in reach}}) for k in (0, 1)]
        return np.minimum(*ends), np.maximum(*ends)


def _in_dtype(value: Any, dtype: Any) -> Any:
    """A float constant in the input's float dtype (token ids leave the constants as they are)."""
    if (
        isinstance(value, np.ndarray)
        and value.dtype.kind == "f"
        and np.dtype(dtype).kind == "f"
        and value.dtype != dtype
    ):
        return value.astype(dtype)
    return value


def check_array(x: Any) -> Array:
    """``x`` as a float NumPy array ``(N, ...)``, or :class:`InputError` naming the problem."""
    if not isinstance(x, np.ndarray):
        raise InputError(f"x must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise InputError(f"x must be float32 or float64, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise InputError("x contains NaN or Inf values")
    return x
