"""Layer-wise Relevance Propagation through any captured model: record the forward once, walk back once.

The model is captured as lrpkit's graph (:mod:`~lrpkit.engine.capture`, cached), canonized
(:mod:`~lrpkit.engine.canonize`), and each node gets its rule (:func:`lrpkit.composites.resolve`). The forward
pass runs under ``torch.inference_mode`` on the model's current weights (no hooks; the model is never changed).
Then relevance walks the nodes in reverse topological order, each node's step turning the relevance at its
output into relevance at its inputs, relevance summed where a value feeds several nodes (as gradients are in
micrograd's walk). Every target shares the one forward; ``"all"`` runs the walk on chunks of classes that fit
in ``memory`` bytes. Memory: the forward keeps only the values the steps read under the chosen rules (each op
says which, :attr:`~lrpkit.engine.ops.Op.reads`), and the walk of the last chunk frees each value once it has
passed its node.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from ..composites import Plan, resolve
from ..errors import InputError, SpecError
from ..rules import Proportional, Rule, Winner, ZBox
from . import extend
from .bounds import carry, one_sample
from .canonize import canonize
from .capture import Captured, capture, output_node
from .extend import opaque_paths
from .graph import SOURCES, WEIGHTED, Graph, Node
from .inputs import check_tensor
from .ops import Op, Step, Trace, everything, registry
from .targets import start_relevance

OPS: dict[str, Op] = registry()
MAXPOOL_MODES = {"winner": Winner(), "proportional": Proportional()}
MEMORY = 2**30
"""Default bytes of relevance per chunk of targets (``target="all"`` splits the classes to fit)."""
LOW_PRECISION = (torch.bfloat16, torch.float16)
"""Model dtypes whose relevance is accumulated in float32."""
BLOW_UP = 1e6
"""A warning names the first layer whose relevance exceeds this many times the readout's largest |relevance|."""


class RelevanceWarning(UserWarning):
    """Relevance became non-finite or grew far beyond the readout's (tiny denominators)."""


@dataclass(frozen=True)
class Prepared:
    """A captured graph made ready to walk: canonized, output chosen, receivers and chain boundaries known."""

    graph: Graph
    receivers: dict[str, tuple[int, ...]]
    boundaries: tuple[str, ...] | None  # chain models: the node whose value enters each layer, then the output
    seconds: float
    nonneg: frozenset[str]  # nodes whose value is known to be >= 0 from the ops alone
    fixed: dict[str, Any] = field(default_factory=dict, compare=False)  # values of Graph.fixed, made once


@dataclass(frozen=True)
class Explained:
    """The result of one call: input relevance ``(K, *x.shape)``, per-node relevance when kept, the graph, and
    the explained output's value (the logits: no second forward pass needed to report them)."""

    input: Tensor
    nodes: dict[str, Tensor]
    every: bool
    prepared: Prepared
    output: Tensor
    tokens: bool = False  # x held token ids: the input relevance is the embeddings', one vector per token

    def heatmap(self, shape: tuple[int, ...]) -> Tensor:
        """The input relevance in the caller's ``shape`` of ``x``, or ``(N, C, *shape[1:])`` for ``"all"``."""
        R = _public(self.input, self.every)
        if self.tokens:
            R = R.sum(-1)  # token ids: each token's relevance is its embedding's, summed over the hidden dimension
        return R.reshape(*R.shape[:2], *shape[1:]) if self.every else R.reshape(shape)


# -- public API --------------------------------------------------------------------------------------------------


def lrp(model: nn.Module, x: Tensor, target: Any, method: Any = "simple", **options: Any) -> Tensor:
    """The input relevance (heatmap) of ``x`` for ``target``: ``x``'s shape, or ``(N, C, *x.shape[1:])`` for
    ``target="all"``. ``method``: a rule, preset, composite mapping or per-layer list (see
    :func:`lrpkit.composites.resolve`); options as in :func:`layerwise_lrp`."""
    result = explain(model, x, target, method, keep=False, **options)
    return result.heatmap(tuple(x.shape))  # the caller's own shape (a Network takes (N, 784) for images)


def layerwise_lrp(model: nn.Module, x: Tensor, target: Any, method: Any = "simple", **options: Any) -> Any:
    """Relevance at every node: for a chain model (an lrpkit Network, an ``nn.Sequential``) a list with the
    relevance entering each layer and, last, the readout relevance (``logits * filter``); for any other model an
    ordered mapping from node name to the relevance at that node's output (the input first, the output last).

    Each tensor is ``(N, *shape)``, or ``(N, C, *shape)`` for ``target="all"``. ``target``: an int class, class
    ids per sample, a float filter ``(C,)`` / ``(N, C)``, ``"pred"``, ``"all"`` or None. Options:

    - ``bounds=(low, high)``: the zB rule's bounds of the model's input (numbers, per channel, per pixel),
      carried through normalisations written in ``forward`` (default: an lrpkit Network's ``[0, 1]``);
    - ``maxpool="winner"`` or ``"proportional"``: max pooling's rule where the method leaves it open;
    - ``args``/``kwargs``: the model's other inputs, held fixed; ``position``: where ``x`` goes among them
      (an index into ``args``, or a keyword name; default 0); ``output``: which output to explain (an index,
      key or attribute, e.g. ``"logits"``; default ``logits`` if present, else the first tensor);
    - ``opaque``: module paths to explain as one node each (see :mod:`lrpkit.engine.extend`);
    - ``memory``: bytes of relevance per chunk of targets (default 1 GiB).
    """
    result = explain(model, x, target, method, keep=True, **options)
    boundaries = result.prepared.boundaries
    if boundaries is not None:
        return [_public(_at(result, name), result.every) for name in boundaries]
    return _per_node(result)


def nodewise_lrp(model: nn.Module, x: Tensor, target: Any, method: Any = "simple", **options: Any) -> dict[str, Tensor]:
    """Relevance at every graph node's output for any model, chain models included: the ordered mapping
    :func:`layerwise_lrp` gives for non-chain models (the input first, the output last); options as there."""
    return _per_node(explain(model, x, target, method, keep=True, **options))


def chain_layers(model: nn.Module) -> tuple[str, ...] | None:
    """The module paths of a chain model's layers (an lrpkit Network names them; a Sequential's are its leaves),
    which per-layer method lists refer to; None for any other model."""
    layers = getattr(model, "lrp_layers", None)
    if layers is None and isinstance(model, nn.Sequential):
        layers = [name for name, m in model.named_modules() if name and not any(True for _ in m.children())]
    return tuple(layers) if layers is not None else None


def input_bounds(model: nn.Module, bounds: Any = None) -> Any:
    """The zB bounds of the model's input: ``bounds`` if given, else the model's own ``lrp_bounds`` (an lrpkit
    Network's ``[0, 1]``), else None."""
    return bounds if bounds is not None else getattr(model, "lrp_bounds", None)


def totals(relevance: Tensor, dims: int = 1) -> Tensor:
    """``Σ relevance`` over all but the first ``dims`` axes, in float64: the one measure behind every
    conservation check (per sample, or per sample and class for ``target="all"``)."""
    return relevance.detach().to(torch.float64).reshape(*relevance.shape[:dims], -1).sum(-1)


def conservation_gap(heatmaps: Tensor, relevance: Tensor) -> Tensor:
    """``|Σ heatmap - Σ R_top|`` per explained map: how much relevance the explanation lost or created.

    ``relevance``: the readout relevance ``(N, C)`` (one gap per sample), ``(N, C, C)`` for ``target="all"`` (one gap
    per sample and class), or the per-sample totals ``(N,)``.
    """
    dims = max(relevance.dim() - 1, 1)
    start = totals(relevance, dims) if relevance.dim() > 1 else relevance.detach().to(torch.float64)
    if tuple(heatmaps.shape[:dims]) != tuple(start.shape):
        raise InputError(f"heatmaps {tuple(heatmaps.shape)} do not start with the relevance's {tuple(start.shape)}")
    return (totals(heatmaps, dims) - start).abs()


# -- one explanation ---------------------------------------------------------------------------------------------


def explain(
    model: nn.Module,
    x: Any,
    target: Any,
    method: Any = "simple",
    *,
    keep: bool = False,
    bounds: tuple[Any, Any] | None = None,
    maxpool: str = "winner",
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    position: int | str = 0,
    output: Any = None,
    opaque: Sequence[str] = (),
    memory: int = MEMORY,
) -> Explained:
    """Captures (cached), resolves ``method``, records the forward and walks relevance back."""
    if maxpool not in MAXPOOL_MODES:
        raise SpecError(f"maxpool must be one of {tuple(MAXPOOL_MODES)}, got {maxpool!r}")
    prepared, call_args, call_kwargs = _prepared_call(model, x, args, kwargs, position, output, opaque)
    plan = resolve(method, prepared.graph.relevant, prepared.graph.first, chain_layers(model), _defaults(maxpool))
    with torch.inference_mode():
        trace = _record(prepared, model, call_args, call_kwargs, plan.rules, _kept(prepared, plan))
        _carry_bounds(prepared.graph, trace, plan, bounds, model)
        output = trace.values[prepared.graph.output]
        R, every = start_relevance(output, target, plan.rectify)
        R = R.float() if R.dtype in LOW_PRECISION else R  # bfloat16/float16 models: relevance in float32
        found = _walk_chunks(prepared, trace, R, keep, memory)
    tokens = isinstance(x, Tensor) and not x.is_floating_point()
    return Explained(found[prepared.graph.input], found, every, prepared, output.clone(), tokens)


def _call_inputs(x: Tensor, args: Sequence[Any], kwargs: dict[str, Any] | None, position: int | str):
    """The model's call with ``x`` in its place, and ``x``'s index among the call's tensors."""
    call_args, call_kwargs = list(args), dict(kwargs or {})
    if isinstance(position, str):
        if position in call_kwargs:
            raise SpecError(f"position={position!r}: kwargs already hold {position!r}")
        call_kwargs[position] = x
    elif isinstance(position, int) and not isinstance(position, bool) and 0 <= position <= len(call_args):
        call_args.insert(position, x)
    else:
        raise SpecError(f"position must be an index 0..{len(call_args)} into args or a keyword name, got {position!r}")
    tensors = [leaf for leaf in pytree.tree_leaves((call_args, call_kwargs)) if isinstance(leaf, Tensor)]
    return tuple(call_args), call_kwargs, next(k for k, t in enumerate(tensors) if t is x)


def _defaults(maxpool: str) -> dict[str, Rule]:
    return {"max_pool": MAXPOOL_MODES[maxpool]}


def _prepare(
    captured: Captured, output: Any, layers: tuple[str, ...] | None, opaque: tuple[str, ...], registered: frozenset
) -> Prepared:
    """The capture made ready to walk, cached on the capture (so it lives as long as the model's capture does)."""
    key = (output, layers, opaque, registered)
    if key not in captured.prepared:
        captured.prepared[key] = _prepared(captured, *key)
    return captured.prepared[key]


def _prepared(
    captured: Captured, output: Any, layers: tuple[str, ...] | None, opaque: tuple[str, ...], registered: frozenset
) -> Prepared:
    graph = captured.graph
    graph = canonize(Graph(graph.nodes, graph.input, output_node(captured, output)), opaque)
    hint = (
        " Explain the module that makes it as one node (lrpkit.lrp(..., opaque=['path']) or "
        "lrpkit.register_module(its class)), or give the op a rule with lrpkit.register_op(op, relevance)."
    )
    supported = [op for op, spec in OPS.items() if spec.relevance is not None]
    graph.refuse_unsupported([*supported, *registered], SpecError, hint)
    receivers = {node.name: graph.receivers(node) for node in graph.relevant}
    boundaries = _boundaries(graph, layers) if layers is not None else None
    return Prepared(graph, receivers, boundaries, captured.seconds, _nonneg(graph))


def _boundaries(graph: Graph, layers: Sequence[str]) -> tuple[str | None, ...]:
    """For each layer of a chain, the node whose value enters it (None: the layer made no node, e.g. a merged
    BatchNorm or a Dropout, so it passes what enters the next one), then the output."""
    entering: list[str] = [graph.output]
    for layer in reversed(layers):
        own = [n for n in graph.nodes if n.module == layer or n.module.startswith(layer + ".")]
        outside = [i for n in own for i in n.inputs if i in graph.signals and graph.by_name[i] not in own]
        entering.append(outside[0] if outside else entering[-1])
    return tuple(reversed(entering))


def _at(result: Explained, name: str) -> Tensor:
    """The relevance at node ``name`` (zeros where none arrived)."""
    if name in result.nodes:
        return result.nodes[name]
    shape = result.prepared.graph.by_name[name].shape
    return result.input.new_zeros((result.input.shape[0], *shape))


def graph_of(model: nn.Module, x: Any, **call: Any) -> tuple[Graph, dict[str, Any]]:
    """lrpkit's graph of ``model`` (captured, canonized) and the value of every node that is not a signal
    (weights, buffers, anything computed from them alone): what the NumPy twin needs. ``call``: ``args``,
    ``kwargs``, ``position``, ``output``, ``opaque`` as in :func:`layerwise_lrp`."""
    graph, values = node_values(model, x, **call)
    return graph, {name: value for name, value in values.items() if name not in graph.signals}


def node_values(model: nn.Module, x: Any, **call: Any) -> tuple[Graph, dict[str, Any]]:
    """lrpkit's graph of ``model`` (captured, canonized) and every node's value for ``x``: the engine's own
    forward pass over that graph, every value kept (an in-place ReLU too leaves its input's). ``call`` as in
    :func:`graph_of`."""
    prepared, call_args, call_kwargs = _prepared_call(model, x, **call)
    graph = prepared.graph
    with torch.inference_mode():
        every = frozenset(node.name for node in graph.nodes)
        return graph, _record(prepared, model, call_args, call_kwargs, {}, every).values


def _prepared_call(
    model: nn.Module,
    x: Any,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    position: int | str = 0,
    output: Any = None,
    opaque: Sequence[str] = (),
) -> tuple[Prepared, tuple, dict[str, Any]]:
    """The checked input placed in the model's call, and the prepared graph of that call (cached)."""
    if not isinstance(model, nn.Module):
        raise SpecError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = model.check_input(x) if hasattr(model, "check_input") else check_tensor(x, model)
    call_args, call_kwargs, explained = _call_inputs(x, args, kwargs, position)
    captured = capture(model, call_args, call_kwargs, explained)
    prepared = _prepare(captured, output, chain_layers(model), opaque_paths(model, opaque), frozenset(extend.OPS))
    return prepared, call_args, call_kwargs


# -- the forward pass ----------------------------------------------------------------------------------------------


def _record(
    prepared: Prepared,
    model: nn.Module,
    args: tuple,
    kwargs: dict,
    rules: dict[str, Rule],
    keep: frozenset[str],
) -> Trace:
    """Every node's value on the model's current weights (constants first, then the ops in order; the values of
    :attr:`Graph.fixed` nodes made on the first call only); with ``keep`` (the values the walk reads), every other
    computed value is dropped once the forward pass is done with it."""
    graph, fixed = prepared.graph, prepared.fixed
    transient = graph.dropped(keep)
    trace = Trace(values={}, rules=rules, nonneg=prepared.nonneg, first=graph.first, model=model, keep=keep)
    tensors = [leaf for leaf in pytree.tree_leaves((args, kwargs)) if isinstance(leaf, Tensor)]
    for node in graph.nodes:
        if node.op in SOURCES:
            trace.values[node.name] = _source(node, tensors, model)
            continue
        if node.name in fixed:
            trace.values[node.name] = fixed[node.name]
        else:
            trace.values[node.name] = _run(node, trace)
            if node.name in graph.fixed:
                fixed[node.name] = trace.values[node.name]
        for name in transient.get(node.name, ()):
            value = trace.values.pop(name)
            if isinstance(value, Tensor):
                trace.shapes[name] = tuple(value.shape)
    return trace


def _run(node: Node, trace: Trace) -> Any:
    """The node's value from its inputs' recorded values."""
    inputs = [trace.values[i] if i is not None else None for i in node.inputs]
    try:
        return OPS[node.op].forward(node, inputs, trace)
    except RuntimeError as err:
        raise InputError(f"{node.describe()} failed: {str(err).splitlines()[0]}") from None


def _kept(prepared: Prepared, plan: Plan) -> frozenset[str]:
    """The values the walk reads: the input, the output and what each node's step reads (:attr:`Op.reads`) under
    its rule; and the constants that zB bounds meet on their way to the first layers (:func:`.bounds.carry`)."""
    graph, rules = prepared.graph, plan.rules
    keep = {graph.input, graph.output}
    if any(isinstance(rules.get(name), ZBox) for name in graph.first):
        keep.update(i for node in graph.bounded for i in node.inputs if i is not None)
    for node in graph.relevant:
        if node.op in SOURCES:
            continue
        reads = everything if node.op == "call" else OPS[node.op].reads
        slots, output = reads(node, rules.get(node.name), prepared.receivers[node.name])
        keep.update(node.inputs[k] for k in slots if node.inputs[k] is not None)
        if output:
            keep.add(node.name)
    return frozenset(keep)


def _source(node: Node, tensors: list[Tensor], model: nn.Module) -> Any:
    p = node.params
    if node.op == "input" or p["source"] == "argument":
        return tensors[p["target"]]
    if p["source"] in ("parameter", "buffer"):  # looked up by path: no walk over every module per call
        return functools.reduce(getattr, p["target"].split("."), model).detach()
    if p["source"] == "value":
        return p["value"]
    try:  # a tensor attribute of the model (not a buffer): its current value, else the one seen at capture
        return functools.reduce(getattr, p["target"].split("."), model)
    except AttributeError:
        return p["value"]


def _nonneg(graph: Graph) -> frozenset[str]:
    """Nodes whose value is known to be ``>= 0`` from the ops alone (after a ReLU, pooling of those, ...)."""
    found: set[str] = set()
    for node in graph.nodes:
        if node.op in SOURCES or node.name not in graph.signals:
            continue
        flags = [i in found for i in node.inputs if i in graph.signals]
        if node.op != "call" and OPS[node.op].sign(node, flags):
            found.add(node.name)
    return frozenset(found)


def _carry_bounds(graph: Graph, trace: Trace, plan: Plan, bounds: Any, model: nn.Module) -> None:
    """zB bounds at the first layers, where a zB rule without bounds of its own needs them."""
    needs = [n for n, r in plan.rules.items() if isinstance(r, ZBox) and (r.low is None or r.high is None)]
    if not any(n in graph.first for n in needs):
        return
    bounds = input_bounds(model, bounds)
    if bounds is None:
        return  # the zB step names the node and asks for bounds
    x = trace.values[graph.input]
    low, high = one_sample(bounds[0], x, "bounds low"), one_sample(bounds[1], x, "bounds high")
    scratch = Trace(values={}, rules={})
    run = lambda node, inputs: OPS[node.op].forward(node, inputs, scratch)  # noqa: E731
    trace.bounds.update(carry(graph, trace.values, low, high, run))


# -- the walk ---------------------------------------------------------------------------------------------------------


def _walk_chunks(prepared: Prepared, trace: Trace, R: Tensor, keep: bool, memory: int) -> dict[str, Tensor]:
    """The walk for chunks of targets that fit in ``memory`` bytes, stitched back together."""
    per_target = 4 * max(math.prod(n.shape) for n in prepared.graph.relevant if n.shape) * R.element_size()
    size = max(1, int(memory // max(per_target, 1)))
    chunks = R.split(size)
    parts = [_walk(prepared, trace, chunk, keep, free=k == len(chunks) - 1) for k, chunk in enumerate(chunks)]
    if len(parts) == 1:
        return parts[0]
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def _walk(prepared: Prepared, trace: Trace, R: Tensor, keep: bool, free: bool) -> dict[str, Tensor]:
    """Relevance from the output back to the input: ``{input: R_in}``, plus every node's when ``keep``."""
    graph = prepared.graph
    pending: dict[str, Tensor] = {graph.output: R}
    found: dict[str, Tensor] = {}
    top = float(R.abs().amax()) if R.numel() else 0.0
    warned = False
    for node in reversed(graph.relevant):
        R_out = pending.pop(node.name, None)
        if R_out is None:
            continue
        if keep or node.name == graph.input:
            found[node.name] = R_out
        if node.op in SOURCES:
            continue
        inputs = [_upcast(trace.values.get(i), R.dtype) if i else None for i in node.inputs]
        step = Step(node, inputs, _upcast(trace.values.get(node.name), R.dtype), R_out, trace,
                    prepared.receivers[node.name])  # fmt: skip
        shares = _relevance_step(node)(step)
        for k in step.receivers:
            if shares[k] is not None:
                name = node.inputs[k]
                pending[name] = shares[k] if name not in pending else pending[name] + shares[k]
        if node.op in WEIGHTED and not warned:
            warned = _warn_blow_up(node, shares[0], top)
        if free:
            trace.values[node.name] = None
            trace.aux.pop(node.name, None)
    if graph.input not in found:
        found[graph.input] = R.new_zeros((R.shape[0], *trace.values[graph.input].shape))
    return {**{k: v for k, v in reversed(found.items())}}


def _upcast(value: Any, dtype: torch.dtype) -> Any:
    """A bfloat16/float16 value in the relevance's float32 (as LXT advises), for the one step that reads it."""
    if isinstance(value, Tensor) and value.dtype in LOW_PRECISION and dtype not in LOW_PRECISION:
        return value.to(dtype)
    return value


def _relevance_step(node: Node) -> Any:
    """The node's relevance step: its op's, or the one registered for the op a ``call`` node runs."""
    if node.op == "call":
        return extend.OPS[node.params["target"]]
    return OPS[node.op].relevance


def _warn_blow_up(node: Node, R: Tensor | None, top: float) -> bool:
    if R is None or R.numel() == 0:
        return False
    low, high = R.aminmax()  # one pass, no |R| temporary
    largest = max(-float(low), float(high))
    if math.isfinite(largest) and largest <= BLOW_UP * max(top, 1e-30):
        return False
    size = (
        "NaN/Inf" if not math.isfinite(largest) else f"{largest:.3g} ({largest / max(top, 1e-30):.3g} x the readout's)"
    )
    warnings.warn(
        f"relevance entering {node.describe()} reaches {size}: a rule divides by tiny denominators there. "
        "Use a larger epsilon (e.g. lrpkit.Epsilon(0.25)), rules with bias=True, or another composite",
        RelevanceWarning,
        stacklevel=4,
    )
    return True


def _per_node(result: Explained) -> dict[str, Tensor]:
    """Each kept node's relevance in the public layout (see :func:`_public`)."""
    return {name: _public(R, result.every) for name, R in result.nodes.items()}


def _public(R: Tensor, every: bool) -> Tensor:
    """``(K, N, ...)`` -> ``(N, ...)`` (one target) or ``(N, K, ...)`` (all classes), as an ordinary tensor."""
    R = R.movedim(0, 1) if every else R[0]
    return R.clone(memory_format=torch.contiguous_format)
