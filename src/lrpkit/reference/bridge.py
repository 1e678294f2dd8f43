"""From torch models to their NumPy twins, and the engine-vs-reference checks behind ``Network.test``.

A ``Network`` is rebuilt from its spec by the reference's own code (:func:`from_network`); any other model is
captured by the engine and its node list and constants handed over (:func:`from_model`). Torch-free at import:
tensors are read through their own ``detach().cpu().numpy()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import TargetError
from .compare import Report, compare, tolerances
from .interpreter import ReferenceGraph
from .network import ReferenceNetwork

Array = np.ndarray


def to_array(value: Any) -> Any:
    """A torch tensor (any device) as a NumPy array; anything else unchanged."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value


def from_network(net: Any) -> ReferenceNetwork:
    """The NumPy twin of a ``lrpkit.Network``: same layers, a copy of its weights (in the network's dtype)."""
    weights = {name: np.array(to_array(value)) for name, value in net.state_dict().items()}
    return ReferenceNetwork.from_spec(net.spec(), weights)


def check_network(
    net: Any,
    x: Any,
    method: Any = None,
    target: Any = "pred",
    atol: float | None = None,
    rtol: float | None = None,
    **options: Any,
) -> Report:
    """Compares torch and NumPy layer by layer: outputs (``method=None``) or ``net.layerwise_lrp`` relevances.

    A layer passes when ``max |ours - twin| <= atol + rtol * max |twin|``; tolerances left out fit the input's
    dtype of the engine's values (:func:`lrpkit.reference.compare.tolerances`).

    Returns the :class:`Report`; raises :class:`MismatchError` naming the first layer that differs (for
    relevances: the first walking back from the logits, where a wrong rule shows up first).
    ``options`` (``bounds``, ``maxpool``) go to both sides.
    """
    x = net.check_input(x)
    twin, xn = from_network(net), to_array(x)
    if method is None:
        ours, theirs = net.activations(x), twin.activations(xn)
        labels = ["input", *(f"output of layer {i}: {layer!r}" for i, layer in enumerate(twin.layers))]
        what, backward = "layer outputs", False
    else:
        ours = net.layerwise_lrp(x, target, method, **options)
        theirs = twin.layerwise_lrp(xn, to_array(target), method, **_numpy_options(options))
        labels = [f"R[{i}] into layer {i}: {layer!r}" for i, layer in enumerate(twin.layers)]
        labels.append(f"R[{len(twin.layers)}] start (logits * filter)")
        what, backward = f"relevances of method {method!r}", True
    ours = [to_array(t) for t in ours]
    atol, rtol = tolerances(ours[-1].dtype, atol, rtol)  # the engine's dtype (token ids are integers)
    return compare(ours, theirs, labels, what, atol, rtol, backward)


def from_model(model: Any, x: Any, **call: Any) -> ReferenceGraph:
    """The NumPy twin of any model the engine captures: its (canonized) node list and every constant's value.

    ``call``: the engine's ``args``/``kwargs``/``position``/``output`` options."""
    from ..engine.walk import graph_of

    graph, constants = graph_of(model, x, **call)
    return ReferenceGraph(graph, {name: to_array(value) for name, value in constants.items()})


def check_model(
    model: Any,
    x: Any,
    method: Any = "simple",
    target: Any = "pred",
    atol: float | None = None,
    rtol: float | None = None,
    **options: Any,
) -> Report:
    """Engine vs NumPy twin on any model, an lrpkit Network too, node by node of the engine's graph: every node's
    output (``method=None``) or the relevance at every node (:func:`lrpkit.engine.nodewise_lrp`), within
    ``atol + rtol * max |twin|`` per node (defaults that fit the engine's dtype, as :func:`check_network`).

    ``options`` (``bounds``, ``maxpool``) go to both sides; the twin also gets a chain model's layers (for
    per-layer method lists) and the model's own zB bounds where ``bounds`` is left out, as the engine does.
    Raises :class:`MismatchError` naming the first node that differs (relevances: walking back from the output).
    """
    x = model.check_input(x) if hasattr(model, "check_input") else x
    twin = from_model(model, x)
    if method is None:
        return _check_outputs(model, x, twin, atol, rtol)
    return _check_relevances(model, x, twin, method, target, atol, rtol, options)


def _check_outputs(model: Any, x: Any, twin: ReferenceGraph, atol: float | None, rtol: float | None) -> Report:
    """Every signal node's value: the engine's forward pass against the twin's."""
    from ..engine.walk import node_values

    graph, values = node_values(model, x)
    theirs = twin.values(to_array(x))
    names = [node.name for node in graph.nodes if node.name in graph.signals]
    ours = [to_array(values[n]) for n in names]
    atol, rtol = tolerances(ours[-1].dtype, atol, rtol)
    labels = [f"output of {graph.by_name[n].describe()}" for n in names]
    return compare(ours, [theirs[n] for n in names], labels, "node outputs", atol, rtol)


def _check_relevances(
    model: Any,
    x: Any,
    twin: ReferenceGraph,
    method: Any,
    target: Any,
    atol: float | None,
    rtol: float | None,
    options: dict[str, Any],
) -> Report:
    """The relevance at every node the twin reaches: the engine's walk against the twin's."""
    from ..engine.walk import chain_layers, input_bounds, nodewise_lrp

    ours = nodewise_lrp(model, x, target, method, **options)
    atol, rtol = tolerances(to_array(next(iter(ours.values()))).dtype, atol, rtol)  # the engine's dtype
    numpy = _numpy_options({**options, "bounds": input_bounds(model, options.get("bounds"))})
    theirs = twin.layerwise_lrp(to_array(x), to_array(target), method, layers=chain_layers(model), **numpy)
    names = list(theirs)
    missing = [name for name in names if name not in ours]
    if missing:
        raise KeyError(f"the engine has no relevance at {missing}")
    labels = [f"R at {twin.graph.by_name[name].describe()}" for name in names]
    what = f"relevances of method {method!r}"
    return compare([to_array(ours[n]) for n in names], [theirs[n] for n in names], labels, what, atol, rtol, True)


def _numpy_options(options: dict[str, Any]) -> dict[str, Any]:
    bounds = options.get("bounds")
    if bounds is None:
        return options
    return {**options, "bounds": tuple(to_array(b) for b in bounds)}


def deeptaylor(net: Any, x: Any, target: Any) -> tuple[Array, Array]:
    """``(heatmaps, R)``: deep-Taylor input relevance from the NumPy twin, and ``R = logits * filter``.

    The heatmaps have the shape of ``x``; each sums to the sample's ``relu(R)`` total (deep Taylor starts
    from the rectified logits).
    """
    if isinstance(target, str) and target == "all":
        raise TargetError("get_numpy_deeptaylor explains one filter per call; use lrp(x, 'all', 'deeptaylor')")
    from .targets import class_filter

    twin, xn = from_network(net), np.asarray(to_array(x))
    logits = twin.forward(xn)
    R = logits * class_filter(to_array(target), logits)
    return twin.lrp(xn, to_array(target), "deeptaylor"), R
