"""Capture a model's forward pass as lrpkit's graph, with ``torch.export`` (the one front end).

``torch.export`` traces the forward for the given inputs (static shapes) into ATen operations, keeping ops such
as ``conv2d`` and ``linear`` whole; where an in-place op writes a tensor that a view also reads, torch's own
functionalization (``run_decompositions({})``) runs first. The ATen nodes are then translated into lrpkit's
nodes (:mod:`~lrpkit.engine.translate`). Captures are cached per model and input signature; the model's
current weights are read at every call, not at capture.
"""

from __future__ import annotations

import contextlib
import operator
import time
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from ..errors import InputError, SpecError
from .graph import Graph
from .translate import translate

ATen = torch.ops.aten


@dataclass(frozen=True, eq=False)
class Captured:
    """A captured forward: lrpkit's graph, where each constant comes from, and how to pick the output."""

    graph: Graph
    outputs: Any  # the pytree spec of the output
    output_names: tuple[str | None, ...]  # node name of each output leaf (None: not a tensor)
    seconds: float
    prepared: dict[Any, Any] = field(default_factory=dict, repr=False)  # the walk's preparations of it, by options


# -- capturing and the cache --------------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode for the duration; each one's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _signature(value: Any) -> Any:
    """What a capture depends on: tensor shapes, dtypes and devices; other values themselves."""
    if isinstance(value, Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device.type, value.device.index)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *map(_signature, value))
    if isinstance(value, dict):
        return ("dict", *((k, _signature(v)) for k, v in value.items()))
    return value if isinstance(value, (int, float, str, bool, type(None))) else ("object", id(value))


def _structure(model: nn.Module) -> tuple:
    """The modules and parameter shapes: a capture is stale once these change."""
    found = []  # one walk over the modules (named_parameters would walk them again)
    for name, m in model.named_modules():
        found.append((name, type(m), id(m)))
        found.extend((key, tuple(p.shape), p.dtype) for key, p in m._parameters.items() if p is not None)
    return tuple(found)


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[Any, Captured]] = weakref.WeakKeyDictionary()
CACHE_SIZE = 8
"""Captures kept per model (one per input signature)."""


def capture(model: nn.Module, args: tuple, kwargs: dict[str, Any], explained: int) -> Captured:
    """The model's graph for inputs like ``args``/``kwargs``; ``explained``: the position of the explained tensor
    among the tensors in ``(args, kwargs)`` (flattened). Cached; the model is never changed."""
    key = (_structure(model), _signature(args), _signature(kwargs), explained)
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        if len(per_model) >= CACHE_SIZE:
            per_model.pop(next(iter(per_model)))
        per_model[key] = _capture(model, args, kwargs, explained)
    return per_model[key]


def _capture(model: nn.Module, args: tuple, kwargs: dict[str, Any], explained: int) -> Captured:
    start = time.perf_counter()
    _try_forward(model, args, kwargs)
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations inside export
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            exported = torch.export.export(model, args, kwargs)
            if _mutates_aliases(exported.graph):
                exported = exported.run_decompositions({})  # functionalize: views of mutated tensors
        except Exception as err:  # torch raises many types here; the user needs the first line and a hint
            first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
            raise SpecError(
                f"could not capture {type(model).__name__}.forward with torch.export ({type(err).__name__}: "
                f"{first[:300]}); lrpkit explains models whose forward torch.export can trace (no data-dependent "
                "Python control flow on tensor values)"
            ) from err
    graph, names = translate(exported, explained)
    return Captured(graph, exported.call_spec.out_spec, names, time.perf_counter() - start)


def _mutates_aliases(graph: Any) -> bool:
    """Whether an in-place op writes a tensor that a view also reads (or a non-ATen op such as a higher-order
    wrapper appears): then the graph is functionalized by torch rather than read op by op."""
    for fx in graph.nodes:
        if fx.op != "call_function" or fx.target is operator.getitem:
            continue
        schema = getattr(fx.target, "_schema", None)
        if schema is None:
            return True
        if schema.is_mutable and fx.args and isinstance(fx.args[0], torch.fx.Node):
            readers = [u for u in fx.args[0].users if u is not fx]
            if any(_is_view(u) for u in readers) or _is_view(fx.args[0]) or fx.args[0].op == "placeholder":
                return True
    return False


def _is_view(fx: Any) -> bool:
    schema = getattr(fx.target, "_schema", None)
    return schema is not None and bool(schema.returns) and schema.returns[0].alias_info is not None


def _try_forward(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
    """One plain forward first: inputs the model cannot take get an error in the user's terms, not export's."""
    with eval_mode(model), torch.no_grad():
        try:
            model(*args, **kwargs)
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            shapes = ", ".join(str(tuple(t.shape)) for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, Tensor))
            first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
            raise InputError(f"{type(model).__name__} cannot take an input of shape {shapes}: {first}") from None


def output_node(captured: Captured, select: Any) -> str:
    """The node of the output to explain: ``select`` (an index, key or attribute name of the output) or, by
    default, ``logits`` where the output has it, else its first tensor."""
    positions = pytree.tree_unflatten(list(range(len(captured.output_names))), captured.outputs)
    if select is None:
        select = "logits" if _has(positions, "logits") else None
    if select is None:
        picked: Any = next((k for k, name in enumerate(captured.output_names) if name is not None), None)
    else:
        try:
            picked = positions[select] if isinstance(positions, (list, tuple, dict)) else getattr(positions, select)
        except (KeyError, IndexError, TypeError, AttributeError):
            raise SpecError(
                f"output={select!r} does not name one of the model's outputs ({_describe(positions)})"
            ) from None
    if not isinstance(picked, int) or captured.output_names[picked] is None:
        raise SpecError(f"output={select!r} is not one tensor of the model's outputs ({_describe(positions)})")
    return captured.output_names[picked]


def _has(positions: Any, key: str) -> bool:
    return (isinstance(positions, dict) and key in positions) or hasattr(positions, key)


def _describe(positions: Any) -> str:
    if isinstance(positions, dict):
        return "keys: " + ", ".join(map(repr, positions))
    if isinstance(positions, (list, tuple)):
        return f"a {type(positions).__name__} of {len(positions)}"
    return type(positions).__name__
