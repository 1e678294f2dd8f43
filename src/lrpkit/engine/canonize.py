"""Canonization: rewrites of lrpkit's graph before explaining (the user's model is never touched).

- **Opaque modules**: the nodes a chosen submodule made become one ``module`` node that calls it.
- **BatchNorm merge**: a BatchNorm whose input is a Linear/conv node that feeds nothing else is folded into it
  (the node gets the BatchNorm's parameters as extra inputs; ``w' = w g / sigma``, ``b' = (b - mu) g / sigma +
  beta``, computed from the current weights at every call). The model's output is unchanged up to rounding.
- **In-place ReLU**: a ReLU that alone reads a biased Linear/conv output overwrites it (one activation less);
  the layer's ``z + b`` is remade if a rule needs it.
- **Held factors** (for CP-LRP): in a product of two signals, the factor a ``Conservative`` rule holds constant
  is marked (``params["held"]``): attention weights (a softmax's output) in a ``matmul``, the activation's output
  (the gate branch of a gated MLP) in an elementwise ``mul``.
"""

from __future__ import annotations

import dataclasses

from ..errors import SpecError
from .graph import Graph, Node

MERGEABLE = frozenset({"linear", "conv"})


def canonize(graph: Graph, opaque: tuple[str, ...] = ()) -> Graph:
    """The graph with opaque modules collapsed, BatchNorms merged and in-place ReLUs marked."""
    for path in opaque:
        graph = _collapse(graph, path)
    return _mark_held(_mark_inplace(_merge_batchnorm(graph)))


def _collapse(graph: Graph, path: str) -> Graph:
    """The nodes module ``path`` made, as one ``module`` node reading the one signal that enters it."""
    own = {n.name for n in graph.nodes if n.module == path or n.module.startswith(path + ".")}
    if not own:
        return graph
    entering = list(
        dict.fromkeys(i for n in graph.nodes if n.name in own for i in n.inputs if i in graph.signals and i not in own)
    )
    leaving = [n for n in own if n == graph.output or any(c not in own for c in graph.consumers[n])]
    if len(entering) != 1 or len(leaving) != 1:
        raise SpecError(
            f"opaque module {path!r} has {len(entering)} signal input(s) and {len(leaving)} output(s) used outside; "
            "an opaque module needs exactly one of each"
        )
    last = graph.by_name[leaving[0]]
    kind = (
        next(n.module_type for n in graph.nodes if n.module == path)
        if any(n.module == path for n in graph.nodes)
        else ""
    )
    node = Node(path, "module", (entering[0],), {"path": path}, path, kind, last.line, last.shape)
    nodes = []
    for n in graph.nodes:
        if n.name == leaving[0]:
            nodes.append(node)
        elif n.name not in own:
            nodes.append(dataclasses.replace(n, inputs=tuple(path if i == leaving[0] else i for i in n.inputs)))
    return Graph(tuple(nodes), graph.input, path if graph.output == leaving[0] else graph.output)


def _merge_batchnorm(graph: Graph) -> Graph:
    merged: dict[str, Node] = {}  # weighted node -> its merged version
    renamed: dict[str, str] = {}  # batch_norm node -> the weighted node that absorbed it
    for node in graph.nodes:
        layer = graph.by_name.get(node.inputs[0]) if node.op == "batch_norm" else None
        if layer is not None and _can_merge(graph, layer, node):
            params = {**layer.params, "batchnorm_eps": node.params["eps"]}
            merged[layer.name] = dataclasses.replace(layer, inputs=layer.inputs + node.inputs[1:], params=params)
            renamed[node.name] = layer.name
    if not merged:
        return graph
    nodes = []  # each merged layer moves to its BatchNorm's place, where all the inputs it now reads exist
    for node in graph.nodes:
        if node.name in merged:
            continue
        node = merged[renamed[node.name]] if node.name in renamed else node
        nodes.append(dataclasses.replace(node, inputs=tuple(renamed.get(i, i) for i in node.inputs)))
    return Graph(tuple(nodes), graph.input, renamed.get(graph.output, graph.output))


def _can_merge(graph: Graph, layer: Node, batchnorm: Node) -> bool:
    """A non-transposed Linear/conv whose value only this BatchNorm reads, normalised along its outputs."""
    if layer.op not in MERGEABLE or layer.params.get("transposed") or "batchnorm_eps" in layer.params:
        return False
    if graph.consumers[layer.name] != [batchnorm.name] or layer.name == graph.output:
        return False
    if any(i in graph.signals for i in batchnorm.inputs[1:]):
        return False
    return layer.op == "conv" or len(layer.shape) == 2  # Linear: (N, features), the BatchNorm1d layout


def _mark_inplace(graph: Graph) -> Graph:
    nodes = []
    for node in graph.nodes:
        source = graph.by_name.get(node.inputs[0]) if node.inputs else None
        relu = node.op == "activation" and node.params.get("fn") == "relu"
        if relu and source is not None and _owns_biased_output(graph, source, node):
            node = dataclasses.replace(node, params={**node.params, "inplace": True})
        nodes.append(node)
    return Graph(tuple(nodes), graph.input, graph.output)


def _owns_biased_output(graph: Graph, layer: Node, relu: Node) -> bool:
    """Whether ``relu`` is the only reader of ``layer``'s value ``z + b`` (a tensor apart from ``z``)."""
    biased = layer.op in MERGEABLE and (layer.inputs[2] is not None or "batchnorm_eps" in layer.params)
    return biased and graph.consumers[layer.name] == [relu.name] and layer.name != graph.output


HELD_ORIGINS = {"matmul": "softmax", "mul": "activation"}


def _mark_held(graph: Graph) -> Graph:
    """Marks the factor CP-LRP holds constant in each product of two signals (see the module docstring)."""
    nodes = []
    for node in graph.nodes:
        origin = HELD_ORIGINS.get(node.op)
        slots = [k for k, i in enumerate(node.inputs) if i in graph.signals]
        if origin is not None and len(slots) == 2 and "held" not in node.params:
            made = [k for k in slots if graph.origin(node.inputs[k]).op == origin]
            if len(made) == 1:
                node = dataclasses.replace(node, params={**node.params, "held": made[0]})
        nodes.append(node)
    return Graph(tuple(nodes), graph.input, graph.output)
