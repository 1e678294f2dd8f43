"""ATen nodes of an exported program translated into lrpkit's nodes (:class:`~lrpkit.engine.graph.Node`).

Each ATen op lrpkit knows has a translator (:data:`TRANSLATE`) that reads its arguments by schema name and
emits nodes with plain parameters; in-place ops are read as their functional twins (export already points
every later use at the in-place node). Any other op becomes a ``call`` node, which runs in the forward pass
but has no rule: it is refused only if relevance reaches it. Each node keeps the module path and the line of
the model's own ``forward`` that made it, for error messages.
"""

from __future__ import annotations

import itertools
import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

from ..errors import SpecError
from .graph import Graph, Node

ATen = torch.ops.aten


@dataclass(frozen=True)
class Ref:
    """A reference to another node's value inside the argument template of a ``call`` node."""

    name: str


# -- translators -------------------------------------------------------------------------------------


class _Builder:
    """Turns the exported graph into lrpkit nodes, one ATen node at a time."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.tuples: dict[str, Callable[[int, Any], None]] = {}  # name of a tuple-valued node -> its getitem

    def add(self, fx: Any, op: str, inputs: tuple[str | None, ...], name: str | None = None, **params: Any) -> str:
        module, module_type = _module_of(fx)
        shape = tuple(fx.meta["val"].shape) if isinstance(fx.meta.get("val"), Tensor) else ()
        node = Node(name or fx.name, op, inputs, params, module, module_type, _source_line(fx), shape)
        self.nodes.append(node)
        return node.name


def _bind(fx: Any) -> dict[str, Any]:
    """The ATen node's arguments by schema name, defaults filled in, fx nodes replaced by their names."""
    schema = fx.target._schema
    values: dict[str, Any] = {}
    for i, argument in enumerate(schema.arguments):
        if i < len(fx.args):
            values[argument.name] = fx.args[i]
        elif argument.name in fx.kwargs:
            values[argument.name] = fx.kwargs[argument.name]
        elif argument.has_default_value():
            values[argument.name] = argument.default_value
        else:
            values[argument.name] = None
    return {key: _names(value) for key, value in values.items()}


def _names(value: Any) -> Any:
    if isinstance(value, torch.fx.Node):
        return value.name
    if isinstance(value, (list, tuple)):
        return type(value)(_names(v) for v in value)
    return value


def _tuple(value: Any, dims: int) -> tuple[int, ...]:
    """An int or a list of ints as a tuple of ``dims`` ints (``[3]`` for a 2-d op means ``(3, 3)``)."""
    items = [value] if isinstance(value, int) else list(value)
    return tuple(int(v) for v in (items * dims if len(items) == 1 else items))


def _conv(b: _Builder, fx: Any, a: dict[str, Any], transposed: bool = False) -> None:
    dims = fx.args[1].meta["val"].dim() - 2
    padding = a["padding"]
    if isinstance(padding, str):  # conv2d.padding: "valid" or "same"
        padding = _same_padding(b, fx, a, dims) if padding == "same" else (0,) * dims
    b.add(
        fx,
        "conv",
        (a["input"], a["weight"], a["bias"]),
        stride=_tuple(a["stride"], dims),
        padding=_tuple(padding, dims),
        dilation=_tuple(a.get("dilation", 1), dims),
        groups=int(a["groups"]),
        transposed=bool(a.get("transposed", transposed)),
        output_padding=_tuple(a.get("output_padding", 0), dims),
    )


def _same_padding(b: _Builder, fx: Any, a: dict[str, Any], dims: int) -> tuple[int, ...]:
    """Symmetric padding for ``padding="same"``; an uneven total goes into a pad node first (as torch does)."""
    kernel = fx.args[1].meta["val"].shape[2:]
    dilation = _tuple(a["dilation"], dims)
    totals = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
    if all(t % 2 == 0 for t in totals):
        return tuple(t // 2 for t in totals)
    extra = [p for t in reversed(totals) for p in (t // 2, t - t // 2)]  # F.pad order: last dim first
    a["input"] = b.add(fx, "pad", (a["input"],), name=f"{fx.name}_pad", pad=tuple(extra), value=0.0)
    return (0,) * dims


def _pool(op: str, *names: str) -> Callable[[_Builder, Any, dict[str, Any]], None]:
    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        dims = len(fx.meta["val"].shape) - 2 if isinstance(fx.meta.get("val"), Tensor) else len(a["kernel_size"])
        params = {name: a.get(name) for name in names}
        for key in ("kernel_size", "stride", "padding", "dilation", "output_size"):
            if key in params:
                value = params[key] if params[key] not in ([], None) else a["kernel_size"]
                params[key] = _tuple(value, dims)
        b.add(fx, op, (a["self"],), **params)

    return translate


def _pool_pair(op: str, *names: str) -> Callable[[_Builder, Any, dict[str, Any]], None]:
    """Pooling ops that return ``(output, indices)``: the output is the node, the indices a ``call``."""
    single = _pool(op, *names)

    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        def item(k: int, getitem: Any) -> None:
            if k == 0:
                getitem.meta.setdefault("nn_module_stack", fx.meta.get("nn_module_stack", {}))
                single(b, _Renamed(getitem, fx), a)
            else:
                _other_item(b, fx, getitem)

        b.tuples[fx.name] = item

    return translate


class _Renamed:
    """An fx node seen under another node's target and arguments (a getitem standing for its tuple op)."""

    def __init__(self, node: Any, source: Any, target: Any = None) -> None:
        self.name, self.meta, self.args, self.kwargs = node.name, node.meta, source.args, source.kwargs
        self.target = target or source.target
        self.all_input_nodes = source.all_input_nodes


def _add(b: _Builder, fx: Any, a: dict[str, Any], sign: float = 1.0) -> None:
    """``self + alpha * other`` (``sub``: ``alpha = -alpha``) as an ``add`` with per-input scales."""
    alpha = float(a.get("alpha", 1))
    if isinstance(a["other"], str):
        b.add(fx, "add", (a["self"], a["other"]), scales=(1.0, sign * alpha), other=0.0)
    else:
        b.add(fx, "add", (a["self"],), scales=(1.0,), other=sign * alpha * float(a["other"]))


def _rsub(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    """``other - alpha * self``."""
    alpha = float(a.get("alpha", 1))
    if isinstance(a["other"], str):
        b.add(fx, "add", (a["self"], a["other"]), scales=(-alpha, 1.0), other=0.0)
    else:
        b.add(fx, "add", (a["self"],), scales=(-alpha,), other=float(a["other"]))


def _product(op: str) -> Callable[[_Builder, Any, dict[str, Any]], None]:
    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        if a.get("rounding_mode") is not None:
            return _call(b, fx)
        if isinstance(a["other"], str):
            return b.add(fx, op, (a["self"], a["other"]), other=None)
        b.add(fx, op, (a["self"],), other=float(a["other"]))

    return translate


def _activation(fn: str, *names: str) -> Callable[[_Builder, Any, dict[str, Any]], None]:
    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        b.add(fx, "activation", (a["self"],), fn=fn, **{name: a[name] for name in names})

    return translate


def _identity(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    source = a.get("self", a.get("input"))
    if a.get("train"):
        return _call(b, fx)  # dropout in training mode (never in an exported eval graph)
    b.add(fx, "identity", (source,))


def _cast(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    """A change of dtype (``.float()``, ``.to(torch.bfloat16)``): relevance passes, in the relevance's dtype."""
    value = fx.meta.get("val")
    dtype = str(value.dtype).removeprefix("torch.") if isinstance(value, Tensor) else None
    b.add(fx, "cast", (a["self"],), dtype=dtype)


def _reshape(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    b.add(fx, "reshape", (a.get("self", a.get("input")),), shape=tuple(fx.meta["val"].shape))


def _permute(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    rank = fx.args[0].meta["val"].dim()
    if fx.target == ATen.permute.default:
        dims = [d % rank for d in a["dims"]]
    else:
        d0, d1 = (0, 1) if fx.target == ATen.t.default else (a["dim0"] % rank, a["dim1"] % rank)
        dims = list(range(rank))
        dims[d0], dims[d1] = dims[d1], dims[d0]
    b.add(fx, "permute", (a["self"],), dims=tuple(dims))


def _expand(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    b.add(fx, "expand", (a["self"],), shape=tuple(fx.meta["val"].shape))


def _cat(op: str) -> Callable[[_Builder, Any, dict[str, Any]], None]:
    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        rank = fx.meta["val"].dim()
        b.add(fx, op, tuple(a["tensors"]), dim=int(a["dim"]) % rank)

    return translate


def _slice(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    size = fx.args[0].meta["val"].shape
    dim = int(a["dim"]) % len(size)
    start, stop, step = slice(a["start"], a["end"], a["step"]).indices(size[dim])
    b.add(fx, "slice", (a["self"],), dim=dim, start=start, stop=stop, step=step)


def _narrow(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    size = fx.args[0].meta["val"].shape
    dim, start = int(a["dim"]) % len(size), int(a["start"]) % size[int(a["dim"])]
    b.add(fx, "slice", (a["self"],), dim=dim, start=start, stop=start + int(a["length"]), step=1)


def _select(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    size = fx.args[0].meta["val"].shape
    dim = int(a["dim"]) % len(size)
    b.add(fx, "select", (a["self"],), dim=dim, index=int(a["index"]) % size[dim])


def _split(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    """split/chunk/unbind: each ``getitem`` becomes a ``slice`` (or ``select``) of the input."""
    size = fx.args[0].meta["val"].shape
    dim = int(a.get("dim", 0)) % len(size)
    parts = [v.shape[dim] if fx.target != ATen.unbind.int else 1 for v in fx.meta["val"]]
    starts = [0, *itertools.accumulate(parts)]

    def item(k: int, getitem: Any) -> None:
        if fx.target == ATen.unbind.int:
            b.add(getitem, "select", (a["self"],), dim=dim, index=k)
        else:
            b.add(getitem, "slice", (a["self"],), dim=dim, start=starts[k], stop=starts[k + 1], step=1)

    b.tuples[fx.name] = item


def _pad(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    if a.get("mode", "constant") != "constant":
        return _call(b, fx, f"mode={a['mode']!r}")
    b.add(fx, "pad", (a["self"],), pad=tuple(int(p) for p in a["pad"]), value=float(a.get("value") or 0.0))


def _reduce(op: str) -> Callable[[_Builder, Any, dict[str, Any]], None]:
    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        rank = fx.args[0].meta["val"].dim()
        dims = a.get("dim")
        dims = tuple(range(rank)) if dims in (None, []) else tuple(sorted(d % rank for d in dims))
        b.add(fx, op, (a["self"],), dims=dims, keepdim=bool(a.get("keepdim", False)))

    return translate


def _batch_norm(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    if a.get("training") or a.get("running_mean") is None:
        module, kind = _module_of(fx)
        raise SpecError(
            f"{kind or 'BatchNorm'} {module!r} has no running statistics (track_running_stats=False): it normalises "
            "each batch by its own statistics, which lrpkit does not explain; use running statistics"
        )
    inputs = (a["input"], a["weight"], a["bias"], a["running_mean"], a["running_var"])

    def item(k: int, getitem: Any) -> None:
        if k == 0:
            b.add(getitem, "batch_norm", inputs, eps=float(a["eps"]))
        else:
            _other_item(b, fx, getitem)

    if isinstance(fx.meta.get("val"), Tensor):  # batch_norm.default returns one tensor
        b.add(fx, "batch_norm", inputs, eps=float(a["eps"]))
    else:
        b.tuples[fx.name] = item


def _layer_norm(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    inputs = (a["input"], a["weight"], a["bias"])
    params = {"shape": tuple(int(s) for s in a["normalized_shape"]), "eps": float(a["eps"])}
    if isinstance(fx.meta.get("val"), Tensor):
        b.add(fx, "layer_norm", inputs, **params)
    else:
        b.tuples[fx.name] = lambda k, g: b.add(g, "layer_norm", inputs, **params) if k == 0 else _other_item(b, fx, g)


def _group_norm(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    inputs = (a["input"], a["weight"], a["bias"])
    params = {"groups": int(a.get("num_groups", a.get("group", 1))), "eps": float(a["eps"])}
    if isinstance(fx.meta.get("val"), Tensor):
        b.add(fx, "group_norm", inputs, **params)
    else:
        b.tuples[fx.name] = lambda k, g: b.add(g, "group_norm", inputs, **params) if k == 0 else _other_item(b, fx, g)


def _matrix_with_constant(b: _Builder, fx: Any, a: dict[str, Any], signals: frozenset[str]) -> None:
    """``x @ W`` or ``addmm(b, x, W)`` with a constant ``W``: a ``linear`` node with weight ``W^T``."""
    x, w = (a["mat1"], a["mat2"]) if "mat1" in a else (a["self"], a.get("other", a.get("mat2")))
    bias = a.get("self") if "mat1" in a else None
    shape = fx.args[2 if "mat1" in a else 1].meta["val"].shape
    if w in signals or x not in signals or len(shape) != 2 or float(a.get("alpha", 1)) != 1 or a.get("beta", 1) != 1:
        from .translate_attention import matmul  # a product of two signals, or of a constant and a signal

        return matmul(b, fx, a)
    weight = b.add(fx, "permute", (w,), name=f"{fx.name}_weight", dims=(1, 0))
    b.add(fx, "linear", (x, weight, bias))


def _upsample(op: str) -> Callable[[_Builder, Any, dict[str, Any]], None]:
    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        if op == "upsample_bilinear" and a.get("align_corners"):
            return b.add(fx, op, (a["input"],), size=tuple(fx.meta["val"].shape[2:]), align_corners=True)
        b.add(fx, op, (a["input"],), size=tuple(fx.meta["val"].shape[2:]), align_corners=False)

    return translate


def _other_item(b: _Builder, source: Any, getitem: Any) -> None:
    """Another output of a tuple op whose first output became a node (pooling indices, saved statistics): the
    op runs once more as a ``call`` node, and the item is taken from it."""
    if not any(n.name == source.name for n in b.nodes):
        _call(b, source)
    _call(b, getitem)


def _call(b: _Builder, fx: Any, detail: str = "") -> None:
    """Any other op: run as it is in the forward pass; it needs a rule only if relevance reaches it."""
    args, kwargs = pytree.tree_map_only(torch.fx.Node, lambda n: Ref(n.name), (fx.args, fx.kwargs))
    inputs = tuple(n.name for n in fx.all_input_nodes)
    b.add(fx, "call", inputs, target=fx.target, args=args, kwargs=kwargs, detail=detail)


Translator = Callable[[_Builder, Any, dict[str, Any]], None]
TRANSLATE: dict[Any, Translator] = {
    **dict.fromkeys([ATen.conv1d.default, ATen.conv2d.default, ATen.conv3d.default], _conv),
    **dict.fromkeys([ATen.conv1d.padding, ATen.conv2d.padding, ATen.conv3d.padding], _conv),
    ATen.convolution.default: _conv,
    **dict.fromkeys(
        [ATen.conv_transpose1d.default, ATen.conv_transpose2d.input, ATen.conv_transpose3d.input],
        lambda b, fx, a: _conv(b, fx, a, transposed=True),
    ),
    ATen.linear.default: lambda b, fx, a: b.add(fx, "linear", (a["input"], a["weight"], a["bias"])),
    **dict.fromkeys(
        [ATen.max_pool1d.default, ATen.max_pool2d.default, ATen.max_pool3d.default],
        _pool("max_pool", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    ),
    **dict.fromkeys(
        [ATen.max_pool2d_with_indices.default, ATen.max_pool3d_with_indices.default],
        _pool_pair("max_pool", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    ),
    **dict.fromkeys(
        [ATen.avg_pool1d.default, ATen.avg_pool2d.default, ATen.avg_pool3d.default],
        _pool("avg_pool", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    ),
    **dict.fromkeys(
        [
            ATen.adaptive_avg_pool1d.default,
            ATen.adaptive_avg_pool2d.default,
            ATen._adaptive_avg_pool2d.default,
            ATen.adaptive_avg_pool3d.default,
            ATen._adaptive_avg_pool3d.default,
        ],
        _pool("adaptive_avg_pool", "output_size"),
    ),
    **dict.fromkeys(
        [ATen.adaptive_max_pool1d.default, ATen.adaptive_max_pool2d.default, ATen.adaptive_max_pool3d.default],
        _pool_pair("adaptive_max_pool", "output_size"),
    ),
    **dict.fromkeys([ATen.add.Tensor, ATen.add.Scalar], _add),
    **dict.fromkeys([ATen.sub.Tensor, ATen.sub.Scalar], lambda b, fx, a: _add(b, fx, a, -1.0)),
    **dict.fromkeys([ATen.rsub.Scalar, ATen.rsub.Tensor], _rsub),
    ATen.neg.default: lambda b, fx, a: b.add(fx, "add", (a["self"],), scales=(-1.0,), other=0.0),
    **dict.fromkeys([ATen.mul.Tensor, ATen.mul.Scalar], _product("mul")),
    **dict.fromkeys([ATen.div.Tensor, ATen.div.Scalar, ATen.div.Tensor_mode], _product("div")),
    ATen.relu.default: _activation("relu"),
    ATen.relu6.default: _activation("relu6"),
    ATen.hardtanh.default: _activation("hardtanh", "min_val", "max_val"),
    ATen.leaky_relu.default: _activation("leaky_relu", "negative_slope"),
    ATen.elu.default: _activation("elu", "alpha", "scale", "input_scale"),
    ATen.gelu.default: _activation("gelu", "approximate"),
    ATen.silu.default: _activation("silu"),
    ATen.hardswish.default: _activation("hardswish"),
    ATen.hardsigmoid.default: _activation("hardsigmoid"),
    ATen.sigmoid.default: _activation("sigmoid"),
    ATen.tanh.default: _activation("tanh"),
    ATen.erf.default: _activation("erf"),
    ATen.softplus.default: _activation("softplus", "beta", "threshold"),
    ATen.mish.default: _activation("mish"),
    ATen.clamp.default: _activation("clamp", "min", "max"),
    ATen.clamp_min.default: lambda b, fx, a: b.add(fx, "activation", (a["self"],), fn="clamp", min=a["min"], max=None),
    ATen.clamp_max.default: lambda b, fx, a: b.add(fx, "activation", (a["self"],), fn="clamp", min=None, max=a["max"]),
    **dict.fromkeys(
        [
            ATen.clone.default,
            ATen.alias.default,
            ATen.detach.default,
            ATen.contiguous.default,
            ATen.lift_fresh_copy.default,
            ATen.dropout.default,
            ATen.alpha_dropout.default,
            ATen.feature_dropout.default,
            ATen.feature_alpha_dropout.default,
        ],
        _identity,
    ),
    **dict.fromkeys(
        [ATen._to_copy.default, ATen.to.dtype, ATen.to.dtype_layout, ATen.to.device, ATen.type_as.default], _cast
    ),
    **dict.fromkeys(
        [
            ATen.view.default,
            ATen._unsafe_view.default,
            ATen.reshape.default,
            ATen.flatten.using_ints,
            ATen.unflatten.int,
            ATen.squeeze.default,
            ATen.squeeze.dim,
            ATen.squeeze.dims,
            ATen.unsqueeze.default,
            ATen.view_as.default,
            ATen.reshape_as.default,
        ],
        _reshape,
    ),
    **dict.fromkeys([ATen.permute.default, ATen.transpose.int, ATen.t.default], _permute),
    **dict.fromkeys([ATen.expand.default, ATen.expand_as.default, ATen.broadcast_to.default], _expand),
    ATen.repeat.default: lambda b, fx, a: b.add(fx, "repeat", (a["self"],), repeats=tuple(a["repeats"])),
    **dict.fromkeys([ATen.cat.default, ATen.concat.default], _cat("cat")),
    ATen.stack.default: _cat("stack"),
    ATen.slice.Tensor: _slice,
    ATen.narrow.default: _narrow,
    ATen.select.int: _select,
    **dict.fromkeys(
        [ATen.split.Tensor, ATen.split_with_sizes.default, ATen.chunk.default, ATen.unbind.int, ATen.split.sizes],
        _split,
    ),
    **dict.fromkeys([ATen.constant_pad_nd.default, ATen.pad.default], _pad),
    **dict.fromkeys([ATen.mean.dim, ATen.mean.default], _reduce("mean")),
    **dict.fromkeys([ATen.sum.dim_IntList, ATen.sum.default], _reduce("sum")),
    **dict.fromkeys(
        [
            ATen._native_batch_norm_legit_no_training.default,
            ATen.batch_norm.default,
            ATen.native_batch_norm.default,
            ATen._native_batch_norm_legit.default,
            ATen._native_batch_norm_legit.no_stats,
        ],
        _batch_norm,
    ),
    **dict.fromkeys([ATen.layer_norm.default, ATen.native_layer_norm.default], _layer_norm),
    **dict.fromkeys([ATen.group_norm.default, ATen.native_group_norm.default], _group_norm),
    **dict.fromkeys(
        [ATen.upsample_nearest1d.vec, ATen.upsample_nearest2d.vec, ATen.upsample_nearest3d.vec],
        _upsample("upsample_nearest"),
    ),
    **dict.fromkeys(
        [ATen.upsample_nearest1d.default, ATen.upsample_nearest2d.default, ATen.upsample_nearest3d.default],
        _upsample("upsample_nearest"),
    ),
    **dict.fromkeys([ATen.upsample_bilinear2d.vec, ATen.upsample_bilinear2d.default], _upsample("upsample_bilinear")),
    ATen.roll.default: lambda b, fx, a: b.add(
        fx, "roll", (a["self"],), shifts=tuple(a["shifts"]), dims=tuple(a["dims"])
    ),
    ATen.flip.default: lambda b, fx, a: b.add(fx, "flip", (a["self"],), dims=tuple(a["dims"])),
}
MATRIX_WITH_CONSTANT = {ATen.addmm.default, ATen.mm.default, ATen.matmul.default}


def translate(exported: Any, explained: int) -> tuple[Graph, tuple[str | None, ...]]:
    """lrpkit's graph of an exported program and the node of each output leaf; ``explained``: which user input."""
    b = _Builder()
    _placeholders(b, exported, explained)
    signals: set[str] = {n.name for n in b.nodes if n.op == "input"}
    returned: tuple[str | None, ...] = ()
    for fx in exported.graph.nodes:
        if fx.op == "output":
            returned = tuple(v.name if isinstance(v, torch.fx.Node) else None for v in pytree.tree_leaves(fx.args[0]))
        elif fx.op == "call_function":
            before = len(b.nodes)
            _translate_node(b, fx, frozenset(signals))
            signals.update(n.name for n in b.nodes[before:] if any(i in signals for i in n.inputs))
    explained_node = _explained(b, exported)
    first = next((name for name in returned if name is not None), explained_node)
    return Graph(tuple(b.nodes), explained_node, first), returned


def _explained(b: _Builder, exported: Any) -> str:
    """The explained node: the input itself, or for token ids (an integer input) the embedding lookup reading
    them, whose output is the signal relevance flows back to."""
    name = next(n.name for n in b.nodes if n.op == "input")
    value = next((fx.meta.get("val") for fx in exported.graph.nodes if fx.name == name), None)
    if not isinstance(value, Tensor) or value.is_floating_point():
        return name
    moved = {name}  # the ids, and the ids reshaped, sliced, cast (GPT-2 looks up input_ids.view(-1, L))
    for node in b.nodes:
        if (
            node.op in ("reshape", "permute", "slice", "select", "expand", "identity", "cast")
            and node.inputs[0] in moved
        ):
            moved.add(node.name)
    lookups = [n.name for n in b.nodes if n.op == "embedding" and n.inputs[1] in moved]
    if not lookups:
        raise SpecError(
            f"x is a tensor of {value.dtype}; integer inputs are token ids, explained at the embedding lookup that "
            "reads them, but no embedding reads x. Pass floating point inputs (e.g. inputs_embeds) instead"
        )
    return lookups[0]


def _functional(target: Any) -> Any:
    """``aten.relu_.default`` -> ``aten.relu.default``: export already points every later use at the in-place
    node, so its functional twin computes the same values (aliasing views are decomposed away first)."""
    packet = getattr(target, "overloadpacket", None)
    name = getattr(packet, "__name__", "")
    if not (name.endswith("_") and not name.startswith("_") and target._schema.is_mutable):
        return target
    functional = getattr(getattr(ATen, name[:-1], None), target._overloadname, None)
    return functional if functional in TRANSLATE else target


def _translate_node(b: _Builder, fx: Any, signals: frozenset[str]) -> None:
    if fx.target is operator.getitem and fx.args[0].name in b.tuples:
        return b.tuples[fx.args[0].name](int(fx.args[1]), fx)
    functional = _functional(fx.target)
    if functional is not fx.target:
        fx = _Renamed(fx, fx, target=functional)
    if fx.target in MATRIX_WITH_CONSTANT:
        return _matrix_with_constant(b, fx, _bind(fx), signals)
    translate = TRANSLATE.get(fx.target)
    if translate is None or not hasattr(fx.target, "_schema"):
        return _call(b, fx)
    translate(b, fx, _bind(fx))


def _placeholders(b: _Builder, exported: Any, explained: int) -> None:
    """Parameters, buffers and lifted constants become ``constant`` nodes; tensor user inputs ``input`` (the
    explained one) or ``constant`` (held fixed); other user inputs (numbers) constants with their value."""
    user = 0
    for spec in exported.graph_signature.input_specs:
        name, kind = spec.arg.name, spec.kind.name
        if kind == "USER_INPUT" and not hasattr(spec.arg, "value"):
            op = "input" if user == explained else "constant"
            b.nodes.append(Node(name, op, params={"source": "argument", "target": user}))
            user += 1
        elif kind == "USER_INPUT":
            b.nodes.append(Node(name, "constant", params={"source": "value", "value": spec.arg.value}))
        else:
            source = {"PARAMETER": "parameter", "BUFFER": "buffer"}.get(kind, "tensor")
            value = exported.constants.get(spec.target) if source == "tensor" else None
            b.nodes.append(Node(name, "constant", params={"source": source, "target": spec.target, "value": value}))


# -- where a node came from ----------------------------------------------------------------------------------------

_TORCH_DIR = os.path.dirname(torch.__file__)
_LRPKIT_DIR = os.path.dirname(os.path.dirname(__file__))
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')


def _source_line(fx: Any) -> str:
    """``file.py:12 (forward): y = self.conv(x) + x`` -- the last frame of the model's own code."""
    frames = _FRAME.findall(fx.meta.get("stack_trace") or "")
    own = [f for f in frames if not f[0].startswith((_TORCH_DIR, _LRPKIT_DIR))]
    if not own:  # torch's own modules all the way (an nn.Sequential): the module path says where
        return ""
    file, line, function, code = own[-1]
    return f"{os.path.basename(file)}:{line} ({function}): {code.strip()}"


def _module_of(fx: Any) -> tuple[str, str]:
    stack = fx.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, kind = list(stack.values())[-1]
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return _clean_path(path), kind.rpartition(".")[2]


def _clean_path(path: str) -> str:
    """``L['self'].layer1[0].conv1`` (strict mode) or ``layer1.0.conv1`` -> ``layer1.0.conv1``."""
    path = re.sub(r"^L\['self'\]\.?", "", path)
    return re.sub(r"\[(\d+)\]", r".\1", path).strip(".")


def _register_attention() -> None:
    """The translators of attention models' ops (:mod:`~lrpkit.engine.translate_attention`)."""
    from .translate_attention import TRANSLATE_ATTENTION

    TRANSLATE.update(TRANSLATE_ATTENTION)


_register_attention()
