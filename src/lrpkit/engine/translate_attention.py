"""Translators for the ATen ops attention models add: products of two signals, softmax, fused attention,
embedding lookups and the powers written-out normalisers are made of.

- ``matmul``/``mm``/``bmm``/``einsum`` of two operands (``addmm``/``baddbmm`` add their constant term after) become
  one ``matmul`` node (its rule: :mod:`lrpkit.engine.ops.attention`);
- ``scaled_dot_product_attention`` is explained as its parts: ``softmax(q k^T * scale + mask) v`` -- a ``permute``
  of ``k``, a ``matmul``, a ``mul`` by the scale, an ``add`` of the constant mask (an ``attention_bias`` node), a
  ``softmax`` and a ``matmul`` with ``v`` (grouped-query attention repeats ``k`` and ``v`` with moves first);
- ``rsqrt``/``sqrt``/``reciprocal``/``pow`` become ``power`` nodes, so that a written-out normaliser is recognised
  (:attr:`lrpkit.engine.graph.Graph.normalisers`); they have no rule of their own.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from .graph import Node
from .translate import ATen, _Builder, _call, _module_of, _source_line


def _node(b: _Builder, fx: Any, op: str, inputs: tuple, name: str, size: tuple[int, ...], **params: Any) -> str:
    """A node made by ``fx`` under its own ``name`` and output ``size`` (one of several parts of one ATen op)."""
    module, module_type = _module_of(fx)
    b.nodes.append(Node(name, op, inputs, params, module, module_type, _source_line(fx), tuple(size)))
    return name


def _shape(fx: Any, k: int) -> tuple[int, ...]:
    value = fx.args[k].meta.get("val") if isinstance(fx.args[k], torch.fx.Node) else None
    return tuple(value.shape) if isinstance(value, Tensor) else ()


def _out_shape(fx: Any) -> tuple[int, ...]:
    value = fx.meta.get("val")
    return tuple(value.shape) if isinstance(value, Tensor) else ()


# -- products of two operands -----------------------------------------------------------------------------------


def matmul(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    """``mm``/``matmul``/``bmm`` (``addmm``/``baddbmm``: then ``+ beta * self``) as a ``matmul`` node."""
    if "mat1" in a or "batch1" in a:
        first, second = (a["mat1"], a["mat2"]) if "mat1" in a else (a["batch1"], a["batch2"])
        alpha, beta = float(a.get("alpha", 1)), float(a.get("beta", 1))
        if not (isinstance(first, str) and isinstance(second, str)) or alpha != 1:
            return _call(b, fx, "scaled products")
        product = _node(b, fx, "matmul", (first, second), f"{fx.name}_product", _out_shape(fx), equation=None)
        if beta == 0:
            return b.add(fx, "identity", (product,))
        b.add(fx, "add", (product, a["self"]), scales=(1.0, beta), other=0.0)
        return None
    first, second = a["self"], a.get("other", a.get("mat2"))
    if not (isinstance(first, str) and isinstance(second, str)):
        return _call(b, fx)
    b.add(fx, "matmul", (first, second), equation=None)
    return None


def _einsum(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    operands = a["tensors"]
    if len(operands) != 2 or not all(isinstance(t, str) for t in operands):
        return _call(b, fx, f"{len(operands)} operands (lrpkit explains einsum of two)")
    b.add(fx, "matmul", tuple(operands), equation=str(a["equation"]).replace(" ", ""))
    return None


# -- softmax and fused attention ----------------------------------------------------------------------------------


def _softmax(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    rank = len(_shape(fx, 0)) or 1
    dtype = a.get("dtype")
    if a.get("half_to_float"):
        dtype = torch.float32
    name = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else None
    safe = hasattr(ATen, "_safe_softmax") and fx.target == ATen._safe_softmax.default
    b.add(fx, "softmax", (a["self"],), dim=int(a["dim"]) % rank, dtype=name, safe=safe)


def _attention(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    """``scaled_dot_product_attention`` as its parts (see the module docstring)."""
    if float(a.get("dropout_p") or 0.0) != 0.0:
        return _call(b, fx, "dropout_p > 0 (attention dropout in training)")
    q, k, v = a["query"], a["key"], a["value"]
    q_shape, k_shape, v_shape = _shape(fx, 0), _shape(fx, 1), _shape(fx, 2)
    if len(q_shape) < 2 or len(k_shape) < 2:
        return _call(b, fx, "query/key of fewer than 2 dimensions")
    if len(q_shape) >= 3 and len(k_shape) >= 3 and q_shape[-3] != k_shape[-3]:
        k, k_shape = _repeat_heads(b, fx, k, k_shape, q_shape[-3], "key")
        v, v_shape = _repeat_heads(b, fx, v, v_shape, q_shape[-3], "value")
    rank = len(k_shape)
    dims = (*range(rank - 2), rank - 1, rank - 2)
    key_t = _node(b, fx, "permute", (k,), f"{fx.name}_key_t", (*k_shape[:-2], k_shape[-1], k_shape[-2]), dims=dims)
    scores_shape = (*torch.broadcast_shapes(q_shape[:-2], k_shape[:-2]), q_shape[-2], k_shape[-2])
    scores = _node(b, fx, "matmul", (q, key_t), f"{fx.name}_scores", scores_shape, equation=None)
    scale = a.get("scale")
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(q_shape[-1])
    scaled = _node(b, fx, "mul", (scores,), f"{fx.name}_scaled", scores_shape, other=scale)
    mask, causal = a.get("attn_mask"), bool(a.get("is_causal"))
    if mask is not None or causal:
        dtype = str(fx.args[0].meta["val"].dtype).removeprefix("torch.")
        bias = _node(b, fx, "attention_bias", (mask,) if mask is not None else (), f"{fx.name}_mask",
                     scores_shape[-2:], causal=causal, dtype=dtype)  # fmt: skip
        scaled = _node(b, fx, "add", (scaled, bias), f"{fx.name}_masked", scores_shape, scales=(1.0, 1.0), other=0.0)
    weights = _node(b, fx, "softmax", (scaled,), f"{fx.name}_weights", scores_shape, dim=len(scores_shape) - 1,
                    dtype=None, safe=True)  # fmt: skip
    b.add(fx, "matmul", (weights, v), equation=None)
    return None


def _repeat_heads(b: _Builder, fx: Any, x: str, shape: tuple[int, ...], heads: int, what: str) -> tuple[str, tuple]:
    """Grouped-query attention: each of ``shape[-3]`` key/value heads repeated for ``heads`` query heads."""
    lead, groups, rest = shape[:-3], shape[-3], shape[-2:]
    repeat = heads // groups
    one = _node(b, fx, "reshape", (x,), f"{fx.name}_{what}_groups", (*lead, groups, 1, *rest),
                shape=(*lead, groups, 1, *rest))  # fmt: skip
    wide = _node(b, fx, "expand", (one,), f"{fx.name}_{what}_repeat", (*lead, groups, repeat, *rest),
                 shape=(*lead, groups, repeat, *rest))  # fmt: skip
    out = (*lead, heads, *rest)
    return _node(b, fx, "reshape", (wide,), f"{fx.name}_{what}_heads", out, shape=out), out


def _repeat_interleave(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    """``x.repeat_interleave(r, dim)`` with an int ``r`` as moves: a new axis, expanded ``r`` times, merged."""
    shape, repeats, dim = _shape(fx, 0), a.get("repeats"), a.get("dim")
    if not isinstance(repeats, int) or dim is None or not shape:
        return _call(b, fx)
    d = int(dim) % len(shape)
    one = (*shape[: d + 1], 1, *shape[d + 1 :])
    wide = (*shape[: d + 1], repeats, *shape[d + 1 :])
    x = _node(b, fx, "reshape", (a["self"],), f"{fx.name}_axis", one, shape=one)
    x = _node(b, fx, "expand", (x,), f"{fx.name}_copies", wide, shape=wide)
    b.add(fx, "reshape", (x,), shape=_out_shape(fx))
    return None


# -- lookups and powers ----------------------------------------------------------------------------------------------


def _embedding(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    b.add(fx, "embedding", (a["weight"], a["indices"]))


def _power(fn: str, exponent: float | None = None) -> Any:
    def translate(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
        value = exponent if exponent is not None else a.get("exponent")
        if isinstance(value, torch.fx.Node) or not isinstance(value, (int, float)):
            return _call(b, fx)
        b.add(fx, "power", (a["self"],), fn=fn, exponent=float(value))
        return None

    return translate


def _independent(b: _Builder, fx: Any, a: dict[str, Any]) -> None:
    """``x.new_zeros(...)``, ``torch.zeros_like(x)``...: values that never depend on ``x``'s (Swin's masks)."""
    _call(b, fx)
    b.nodes[-1] = dataclasses.replace(b.nodes[-1], params={**b.nodes[-1].params, "independent": True})


INDEPENDENT = [
    getattr(getattr(ATen, name), overload)
    for name, overload in [("new_zeros", "default"), ("new_ones", "default"), ("new_full", "default"),
                           ("new_empty", "default"), ("zeros_like", "default"), ("ones_like", "default"),
                           ("full_like", "default"), ("empty_like", "default")]
]  # fmt: skip

TRANSLATE_ATTENTION: dict[Any, Any] = {
    **dict.fromkeys(INDEPENDENT, _independent),
    ATen.bmm.default: matmul,
    ATen.baddbmm.default: matmul,
    ATen.einsum.default: _einsum,
    **dict.fromkeys([ATen.softmax.int, ATen._softmax.default], _softmax),
    ATen.scaled_dot_product_attention.default: _attention,
    ATen.embedding.default: _embedding,
    ATen.repeat_interleave.self_int: _repeat_interleave,
    ATen.rsqrt.default: _power("rsqrt", -0.5),
    ATen.sqrt.default: _power("sqrt", 0.5),
    ATen.reciprocal.default: _power("reciprocal", -1.0),
    ATen.pow.Tensor_Scalar: _power("pow"),
}
if hasattr(ATen, "_safe_softmax"):
    TRANSLATE_ATTENTION[ATen._safe_softmax.default] = _softmax
