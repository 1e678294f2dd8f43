"""lrpkit's own graph of a model: the nodes an explanation walks, as plain data (no torch).

The capture (:mod:`lrpkit.engine.capture`) translates a traced forward pass into these nodes; the engine and the
NumPy reference each interpret them with their own implementation of every op. A node's ``inputs`` name the
nodes whose values it reads, by position (``None`` for an absent optional input such as a bias); its ``params``
hold plain Python values (ints, floats, tuples, strings).

Which tensors carry relevance is decided here, once per graph (``docs/lrp-rules.md``, "Graphs"):

- a *signal* depends on the explained input; everything else (weights, buffers, other inputs held fixed,
  anything computed from those alone) is a *constant*. Relevance flows only along signals.
- a *gate* is a signal squashed by sigmoid/hardsigmoid/tanh/erf, possibly followed by constant affine maps, or a
  product of gates; a product of a signal and a gate gives all relevance to the signal.
- a *normaliser* is a factor computed from a signal by a reduction and then ``rsqrt``/``reciprocal`` (RMSNorm or
  LayerNorm written out in ops), possibly followed by constant affine maps; a product with a normaliser gives all
  relevance to the other factor (the normaliser is held constant, as ``sigma`` is in LayerNorm).
- the *first* Linear-type layers are those the input reaches without passing another Linear-type layer.
- for token ids (an integer input), the explained input is the output of the embedding lookup that reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

SOURCES = frozenset({"input", "constant"})
WEIGHTED = frozenset({"linear", "conv"})
GATE_FUNCTIONS = frozenset({"sigmoid", "hardsigmoid", "tanh", "erf"})
AFFINE = frozenset({"add", "mul", "div"})  # with constants: maps a gate to a gate
REDUCTIONS = frozenset({"sum", "mean"})
CARRIES = AFFINE | {"power", "cast", "identity", "expand", "reshape"}  # keep "computed from a reduction"
MOVES = frozenset({"reshape", "permute", "expand", "cast", "identity", "slice", "select", "contiguous"})

KINDS = {
    "linear": "linear",
    "conv": "conv",
    "max_pool": "max_pool",
    "adaptive_max_pool": "max_pool",
    "avg_pool": "avg_pool",
    "adaptive_avg_pool": "avg_pool",
    "add": "sum",
    "sum": "sum",
    "mean": "sum",
    "mul": "product",
    "batch_norm": "norm",
    "layer_norm": "norm",
    "group_norm": "norm",
    "module": "opaque",
    "matmul": "matmul",
}
"""The kind of each op whose rule a composite may choose (``{"conv": "gamma", "max_pool": "proportional"}``)."""


@dataclass(frozen=True)
class Node:
    """One operation: ``op`` applied to the values of ``inputs`` with ``params``.

    ``module`` is the path of the innermost module whose forward made the node (``"layer1.0.conv1"``, ``""`` for
    the model's own forward), ``module_type`` its class name, ``line`` the source line that made it, ``shape``
    the output shape seen at capture.
    """

    name: str
    op: str
    inputs: tuple[str | None, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    module: str = ""
    module_type: str = ""
    line: str = ""
    shape: tuple[int, ...] = ()

    @property
    def kind(self) -> str | None:
        """The composite kind (``"conv"``, ``"sum"``, ...), or None for ops with one fixed rule."""
        return KINDS.get(self.op)

    def describe(self) -> str:
        """``node 'add_3' (add) of module 'layer1.0' (BasicBlock), made by model.py:42: out += identity``."""
        text = f"node {self.name!r} ({self.op}"
        if self.op == "call":
            detail = self.params.get("detail")
            text += f" {self.params.get('target')}" + (f" with {detail}" if detail else "")
        text += ")"
        if self.module:
            text += f" in module {self.module!r} ({self.module_type})"
        return text + (f", made by {self.line}" if self.line else "")


def _literal(params: Mapping[str, Any]) -> bool:
    """A constant given in the call as a number, or a tensor that ``forward`` made (torch.export lifts it and
    names it ``lifted_tensor_<k>``; other tensor attributes may change between calls)."""
    target = str(params.get("target", ""))
    return params.get("source") == "value" or (params.get("source") == "tensor" and "lifted_tensor" in target)


def _random(node: Node) -> bool:
    """A captured op whose value changes from call to call (torch tags them ``nondeterministic_seeded``)."""
    tags = getattr(node.params.get("target"), "tags", ()) if node.op == "call" else ()
    return any(getattr(tag, "name", "") == "nondeterministic_seeded" for tag in tags)


def _mutates(node: Node) -> bool:
    """A captured op that writes into one of its inputs (``masked_fill_``, ``copy_``, ...)."""
    schema = getattr(node.params.get("target"), "_schema", None) if node.op == "call" else None
    return bool(getattr(schema, "is_mutable", False))


@dataclass(frozen=True)
class Graph:
    """Nodes in topological order; ``input`` is the explained input node, ``output`` the explained output."""

    nodes: tuple[Node, ...]
    input: str
    output: str

    @cached_property
    def by_name(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes}

    @cached_property
    def consumers(self) -> dict[str, list[str]]:
        """Node name -> the names of the nodes that read its value (each once)."""
        found: dict[str, list[str]] = {node.name: [] for node in self.nodes}
        for node in self.nodes:
            for name in dict.fromkeys(i for i in node.inputs if i is not None):
                found[name].append(node.name)
        return found

    @cached_property
    def signals(self) -> frozenset[str]:
        """The nodes whose value depends on the explained input (not ``independent`` ones such as
        ``x.new_zeros(...)``, which read only its dtype, device or shape)."""
        found = {self.input}
        for node in self.nodes:
            if any(i in found for i in node.inputs) and not node.params.get("independent"):
                found.add(node.name)
        return frozenset(found)

    @cached_property
    def gates(self) -> frozenset[str]:
        """Signals squashed into gates (see the module docstring)."""
        found: set[str] = set()
        for node in self.nodes:
            signal_inputs = [i for i in node.inputs if i in self.signals]
            if not signal_inputs:
                continue
            squash = node.op == "activation" and node.params.get("fn") in GATE_FUNCTIONS
            if squash or (node.op in AFFINE and all(i in found for i in signal_inputs)):
                found.add(node.name)
        return frozenset(found)

    @cached_property
    def normalisers(self) -> frozenset[str]:
        """Factors computed from a signal by a reduction, then ``rsqrt``/``reciprocal`` (see the module docstring)."""
        reduced: set[str] = set()
        found: set[str] = set()
        for node in self.nodes:
            signal_inputs = [i for i in node.inputs if i in self.signals]
            if not signal_inputs:
                continue
            if node.op in REDUCTIONS or (node.op in CARRIES and all(i in reduced for i in signal_inputs)):
                reduced.add(node.name)
            inverse = node.op == "power" and node.params.get("exponent", 1) < 0
            if (inverse and all(i in reduced for i in signal_inputs)) or (
                node.op in CARRIES and all(i in found for i in signal_inputs)
            ):
                found.add(node.name)
        return frozenset(found)

    def origin(self, name: str) -> Node:
        """The node that made the values ``name`` holds: followed back through moves and casts."""
        node = self.by_name[name]
        while node.op in MOVES and node.inputs and node.inputs[0] in self.by_name:
            node = self.by_name[node.inputs[0]]
        return node

    def receivers(self, node: Node) -> tuple[int, ...]:
        """The input positions of ``node`` that receive relevance (signals; in a product, a normaliser or a gate
        factor is held constant: constant > normaliser > gate > signal)."""
        slots = [k for k, i in enumerate(node.inputs) if i in self.signals]
        if node.op in WEIGHTED or node.op.endswith("_norm") or node.op == "div" or node.op == "embedding":
            return tuple(k for k in slots if k == 0 and node.op != "embedding")
        if node.op == "mul" and len(slots) > 1:
            for held in (self.normalisers, self.gates):
                kept = [k for k in slots if node.inputs[k] not in held]
                if kept and len(kept) < len(slots):
                    return tuple(kept)
        return tuple(slots)

    @cached_property
    def relevant(self) -> tuple[Node, ...]:
        """The nodes relevance reaches from the output, in topological order."""
        reached = {self.output}
        for node in reversed(self.nodes):
            if node.name in reached and node.op not in SOURCES:
                reached.update(node.inputs[k] for k in self.receivers(node))
        return tuple(node for node in self.nodes if node.name in reached)

    @cached_property
    def fixed(self) -> frozenset[str]:
        """The computed nodes whose value is the same at every call: made from literal constants alone (numbers,
        tensors made in ``forward``; no input, parameter, buffer or attribute) by deterministic ops -- masks and
        positions built from ``arange`` -- and never written to in place by a later op."""
        written = {self.origin(i).name for n in self.nodes if _mutates(n) for i in n.inputs if i is not None}
        found: set[str] = set()
        for node in self.nodes:
            if node.op in SOURCES:
                if node.op == "constant" and _literal(node.params):
                    found.add(node.name)
                continue
            if _random(node) or _mutates(node) or self.origin(node.name).name in written:
                continue
            if all(i is None or i in found for i in node.inputs):
                found.add(node.name)
        return frozenset(n.name for n in self.nodes if n.name in found and n.op not in SOURCES)

    def dropped(self, keep: frozenset[str]) -> dict[str, tuple[str, ...]]:
        """The computed values (not sources) outside ``keep``, keyed by the node after which the forward pass no
        longer needs them (the last node that reads them, or the node itself when none does), so that they can
        be dropped there rather than held until the walk: gates, masks, a written-out GELU's inner terms, the
        values of moves and activations whose relevance steps read only shapes."""
        last: dict[str, str] = {}
        for node in self.nodes:
            if node.op not in SOURCES and node.name not in keep:
                last[node.name] = node.name
            for name in node.inputs:
                if name in last:
                    last[name] = node.name
        found: dict[str, list[str]] = {}
        for name, at in last.items():
            found.setdefault(at, []).append(name)
        return {at: tuple(names) for at, names in found.items()}

    @cached_property
    def first(self) -> frozenset[str]:
        """The Linear-type nodes the input reaches without passing another Linear-type node (their input slot 0)."""
        found, frontier, seen = set(), [self.input], {self.input}
        while frontier:
            name = frontier.pop()
            for consumer in self.consumers[name]:
                node = self.by_name[consumer]
                if node.op in WEIGHTED:
                    if node.inputs[0] == name:
                        found.add(consumer)
                elif consumer not in seen:
                    seen.add(consumer)
                    frontier.append(consumer)
        return frozenset(found)

    @cached_property
    def bounded(self) -> tuple[Node, ...]:
        """The nodes that zB bounds pass on their way from the input to the first Linear-type layers: every
        non-Linear-type node whose signal inputs are all the input or such nodes, in topological order."""
        reached, path = {self.input}, []
        for node in self.nodes:
            signal = [i for i in node.inputs if i in self.signals]
            if signal and all(i in reached for i in signal) and node.op not in WEIGHTED:
                reached.add(node.name)
                path.append(node)
        return tuple(path)

    def refuse_unsupported(self, supported: Iterable[str], error: type[Exception], extra: str = "") -> None:
        """Raises ``error`` naming the first node on the relevance path whose op has no rule in ``supported``
        (which may also name the targets of ``call`` nodes)."""
        known = set(supported)
        for node in self.relevant:
            target = node.params.get("target") if node.op == "call" else None
            if node.op not in known and node.op not in SOURCES and target not in known:
                ops = ", ".join(sorted(k for k in known if isinstance(k, str)))
                raise error(
                    f"{node.describe()} is on the relevance path, but lrpkit has no rule for it. Supported "
                    f"operations: {ops}.{extra}"
                )
