"""The NumPy forward and relevance of every node op the reference knows (its own code, apart from the engine's).

``forward(node, inputs)`` computes a node's value; ``relevance(node, inputs, output, R, rule, receivers)``
returns the relevance of each input position (None where none goes); ``R`` has the output's shape (one target
at a time). Pooling loops over the window offsets like the convolution in :mod:`.layers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from ..rules import Conservative, Epsilon, Proportional, Rule, Winner
from . import rules
from .layers import Conv, Linear
from .rules import stab, sum_to

Array = np.ndarray
_erf = np.vectorize(math.erf, otypes=[float])


@dataclass(frozen=True)
class Context:
    """What a relevance step sees: the node's inputs' and own values, ``R`` at its output, its rule."""

    node: Any
    inputs: list[Any]
    output: Array
    R: Array
    rule: Rule | None
    receivers: tuple[int, ...]
    bounds: tuple[Any, Any] | None = None

    def only(self, R: Array | None, slot: int = 0) -> list[Array | None]:
        return [R if k == slot else None for k in range(len(self.node.inputs))]


# -- Linear-type layers ----------------------------------------------------------------------------------------------


def weighted_layer(node: Any, inputs: list[Any]) -> Linear | Conv:
    """The layer of a ``linear``/``conv`` node (a merged BatchNorm folded in here, by the reference's own code)."""
    w, b = inputs[1], inputs[2] if inputs[2] is not None else np.zeros(inputs[1].shape[0], inputs[1].dtype)
    if "batchnorm_eps" in node.params:
        g, beta, mean, var = inputs[3:7]
        scale = (1.0 if g is None else g) / np.sqrt(var + node.params["batchnorm_eps"])
        w = w * scale.reshape(-1, *[1] * (w.ndim - 1))
        b = (b - mean) * scale + (0.0 if beta is None else beta)
    if node.op == "linear":
        return Linear(w, b)
    p = node.params
    if len(p["stride"]) != 2 or p["transposed"]:
        raise SpecError(f"the NumPy reference has 2-d convolutions only, not {node.describe()}")
    return Conv(w, b, p["stride"], p["padding"], tuple(inputs[0].shape[2:]), p["dilation"], p["groups"])


def _weighted(node: Any, inputs: list[Any]) -> Array:
    return weighted_layer(node, inputs).forward(inputs[0])


def _weighted_relevance(c: Context) -> list[Array | None]:
    layer = weighted_layer(c.node, c.inputs)
    return c.only(rules.apply(layer, c.inputs[0], c.R, c.rule, c.bounds or (None, None)))


# -- pooling (2-d) ------------------------------------------------------------------------------------


def _windows(node: Any, x: Array) -> tuple[list[tuple[slice, ...]], tuple[int, int], Array]:
    """The index of every kernel offset's inputs in the padded input (each the output's shape, offsets in
    row-major order), the kernel, and the padded input (max pooling pads with -inf, average pooling with 0)."""
    p = node.params
    if node.op == "adaptive_avg_pool":
        (oh, ow), (h, w) = p["output_size"], x.shape[2:]
        if h % oh or w % ow:
            raise SpecError(f"the NumPy reference pools adaptively only by whole windows, not {node.describe()}")
        kernel, stride, padding = (h // oh, w // ow), (h // oh, w // ow), (0, 0)
    else:
        kernel, stride, padding = p["kernel_size"], p["stride"], p["padding"]
        if p.get("ceil_mode") or any(d != 1 for d in p.get("dilation", (1, 1))):
            raise SpecError(f"the NumPy reference pools without ceil mode or dilation, not {node.describe()}")
    fill = -np.inf if node.op == "max_pool" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), *((q, q) for q in padding)), constant_values=fill)
    rows, cols = [(padded.shape[2 + d] - kernel[d]) // stride[d] + 1 for d in range(2)]
    index = [
        (slice(None), slice(None), slice(i, i + stride[0] * (rows - 1) + 1, stride[0]),
         slice(j, j + stride[1] * (cols - 1) + 1, stride[1]))
        for i in range(kernel[0]) for j in range(kernel[1])
    ]  # fmt: skip
    return index, kernel, padded


def _divisor(node: Any, kernel: tuple[int, int], x: Array) -> Any:
    """Per window: what its sum is divided by (average pooling) or 1 (proportional max pooling)."""
    if node.op == "max_pool":
        return 1.0  # proportional max pooling: the plain sum over each window
    override = node.params.get("divisor_override")
    if override:
        return float(override)
    if node.params.get("count_include_pad", True):
        return float(kernel[0] * kernel[1])
    index, _, ones = _windows(node, np.ones_like(x[:1, :1]))
    return sum(ones[i] for i in index)  # the inputs (not padding) in each window


def _crop(node: Any, padded: Array) -> Array:
    padding = node.params.get("padding", (0, 0))
    return padded[:, :, padding[0] : padded.shape[2] - padding[0], padding[1] : padded.shape[3] - padding[1]]


def _avg_pool(node: Any, inputs: list[Any]) -> Array:
    index, kernel, padded = _windows(node, inputs[0])
    return sum(padded[i] for i in index) / _divisor(node, kernel, inputs[0])


def _max_pool(node: Any, inputs: list[Any]) -> Array:
    index, _, padded = _windows(node, inputs[0])
    return np.max(np.stack([padded[i] for i in index]), axis=0)


def _proportional(c: Context) -> list[Array | None]:
    """``R_i = a_i * sum_j [i in window j] / divisor_j * R_j / stab(z_j)`` with ``z`` the window sum / divisor."""
    x = c.inputs[0]
    index, kernel, _ = _windows(c.node, x)
    padded = np.pad(x, ((0, 0), (0, 0), *((q, q) for q in c.node.params.get("padding", (0, 0)))))
    divisor = _divisor(c.node, kernel, x)
    epsilon = c.rule.epsilon if isinstance(c.rule, Proportional) else 1e-9
    z = stab(sum(padded[i] for i in index) / divisor, epsilon)  # step 1: z = pool(a)
    s = c.R / z  # step 2
    grad = np.zeros_like(padded)
    for i in index:  # step 3: c_i = sum over the windows j that hold i of s_j / divisor_j
        grad[i] += s / divisor
    return c.only(x * _crop(c.node, grad))  # step 4


def _max_relevance(c: Context) -> list[Array | None]:
    if not isinstance(c.rule, Winner):
        return _proportional(c)
    index, _, padded = _windows(c.node, c.inputs[0])
    winner = np.argmax(np.stack([padded[i] for i in index]), axis=0)  # the first maximum wins
    R = np.zeros_like(padded)
    for k, i in enumerate(index):
        R[i] += np.where(winner == k, c.R, 0)
    return c.only(_crop(c.node, R))


# -- elementwise ------------------------------------------------------------------------------------------------


def _sigmoid(x: Array) -> Array:
    return 1 / (1 + np.exp(-x))


ACTIVATIONS: dict[str, Callable[[Array, dict], Array]] = {
    "relu": lambda x, p: np.maximum(x, 0),
    "relu6": lambda x, p: np.clip(x, 0, 6),
    "hardtanh": lambda x, p: np.clip(x, p["min_val"], p["max_val"]),
    "leaky_relu": lambda x, p: np.where(x > 0, x, x * p["negative_slope"]),
    "sigmoid": lambda x, p: _sigmoid(x),
    "hardsigmoid": lambda x, p: np.clip(x / 6 + 0.5, 0, 1),
    "tanh": lambda x, p: np.tanh(x),
    "erf": lambda x, p: _erf(x).astype(x.dtype),
    "silu": lambda x, p: x * _sigmoid(x),
    "hardswish": lambda x, p: x * np.clip(x / 6 + 0.5, 0, 1),
    "gelu": lambda x, p: (
        0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        if p["approximate"] == "tanh"
        else 0.5 * x * (1 + _erf(x / math.sqrt(2)))
    ).astype(x.dtype),
    "clamp": lambda x, p: np.clip(x, p["min"], p["max"]),
}


def _activation(node: Any, inputs: list[Any]) -> Array:
    fn = ACTIVATIONS.get(node.params["fn"])
    if fn is None:
        raise SpecError(f"the NumPy reference has no activation {node.params['fn']!r} ({node.describe()})")
    return fn(inputs[0], node.params)


def _add(node: Any, inputs: list[Any]) -> Array:
    return sum(s * x for s, x in zip(node.params["scales"], inputs, strict=True)) + node.params["other"]


def _add_relevance(c: Context) -> list[Array | None]:
    """Each signal's share ``s_k x_k / stab(S) R``; a lone signal gets all of ``R`` (bias left out)."""
    bias = isinstance(c.rule, Proportional) and c.rule.bias
    if len(c.receivers) == 1 and not bias:
        return c.only(sum_to(c.R, c.inputs[c.receivers[0]].shape), c.receivers[0])
    terms = [s * x for s, x in zip(c.node.params["scales"], c.inputs, strict=True)]
    total = c.output if bias else sum(terms[k] for k in c.receivers)
    shares: list[Array | None] = [None] * len(c.node.inputs)
    for k in c.receivers:
        shares[k] = sum_to(terms[k] / stab(total, c.rule.epsilon) * c.R, c.inputs[k].shape)
    return shares


def _product(node: Any, inputs: list[Any]) -> Array:
    other = inputs[1] if len(inputs) > 1 else node.params["other"]
    return inputs[0] / other if node.op == "div" else inputs[0] * other


def _product_relevance(c: Context) -> list[Array | None]:
    """All of ``R`` to the one receiving factor, ``R / k`` to each of ``k`` signal factors (CP-LRP: all of ``R``
    to the factor that is not the held gate branch)."""
    receivers, held = c.receivers, c.node.params.get("held")
    if isinstance(c.rule, Conservative) and held in receivers and len(receivers) == 2:
        receivers = tuple(k for k in receivers if k != held)
    return [sum_to(c.R / len(receivers), c.inputs[k].shape) if k in receivers else None for k in range(len(c.inputs))]


def _reduce(node: Any, inputs: list[Any]) -> Array:
    fn = np.mean if node.op == "mean" else np.sum
    return fn(inputs[0], axis=node.params["dims"], keepdims=node.params["keepdim"])


def _reduce_relevance(c: Context) -> list[Array | None]:
    x, dims = c.inputs[0], c.node.params["dims"]
    total = stab(x.sum(axis=dims, keepdims=True), c.rule.epsilon if isinstance(c.rule, Proportional) else 1e-9)
    R = c.R if c.node.params["keepdim"] else np.expand_dims(c.R, dims)
    return c.only(x / total * R)


def _batch_norm(node: Any, inputs: list[Any]) -> Array:
    x, w, b, mean, var = inputs
    shape = (-1, *[1] * (x.ndim - 2))
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + node.params["eps"])
    return y * (1 if w is None else w.reshape(shape)) + (0 if b is None else b.reshape(shape))


def _batch_norm_relevance(c: Context) -> list[Array | None]:
    if not (isinstance(c.rule, Epsilon) and c.rule.bias):
        return c.only(c.R)
    x, w, _, _, var = c.inputs
    shape = (-1, *[1] * (x.ndim - 2))
    linear = x / np.sqrt(var.reshape(shape) + c.node.params["eps"]) * (1 if w is None else w.reshape(shape))
    return c.only(linear / stab(c.output, c.rule.epsilon) * c.R)


def _norm_groups(node: Any, x: Array) -> tuple[Array, Any]:
    """``x`` with each normalised group as one row of the last axis, and how ``w``/``b`` broadcast against x."""
    if node.op == "layer_norm":
        count = len(node.params["shape"])
        return x.reshape(*x.shape[: x.ndim - count], -1), tuple(node.params["shape"])
    return x.reshape(x.shape[0], node.params["groups"], -1), (-1, *[1] * (x.ndim - 2))


def _norm(node: Any, inputs: list[Any]) -> Array:
    x, w, b = inputs
    rows, shape = _norm_groups(node, x)
    centred = rows - rows.mean(-1, keepdims=True)
    y = (centred / np.sqrt((centred**2).mean(-1, keepdims=True) + node.params["eps"])).reshape(x.shape)
    return y * (1 if w is None else w.reshape(shape)) + (0 if b is None else b.reshape(shape))


def _norm_relevance(c: Context) -> list[Array | None]:
    """sigma held constant: the epsilon rule of ``y' = (x - mean(x)) w / sigma`` written out as a matrix per group,
    ``R_i = sum_j x_i J_ji R_j / stab(y'_j)`` with ``J_ji = (delta_ij - 1/n) g_j``."""
    if not isinstance(c.rule, Epsilon):
        return c.only(c.R)
    x, w, b = c.inputs
    rows, shape = _norm_groups(c.node, x)
    n = rows.shape[-1]
    sigma = np.sqrt(((rows - rows.mean(-1, keepdims=True)) ** 2).mean(-1, keepdims=True) + c.node.params["eps"])
    g = np.broadcast_to(1 / sigma, rows.shape).reshape(x.shape) * (1 if w is None else w.reshape(shape))
    y = (rows - rows.mean(-1, keepdims=True)).reshape(x.shape) * g
    if c.rule.bias and b is not None:
        y = y + b.reshape(shape)
    s = (c.R / stab(y, c.rule.epsilon) * g).reshape(rows.shape)
    J = np.eye(n) - 1.0 / n  # (i, j): d y'_j / d x_i without the g_j (folded into s)
    return c.only((rows * (s @ J.T)).reshape(x.shape))


# -- moves ------------------------------------------------------------------------------------------------------


def _pad(node: Any, inputs: list[Any]) -> Array:
    x, pad = inputs[0], node.params["pad"]
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return np.pad(x, widths, constant_values=node.params["value"])


def _pad_relevance(c: Context) -> list[Array | None]:
    pad, R = c.node.params["pad"], c.R
    index = [slice(None)] * R.ndim
    for k in range(len(pad) // 2):
        d = R.ndim - 1 - k
        index[d] = slice(pad[2 * k], R.shape[d] - pad[2 * k + 1])
    return c.only(R[tuple(index)])


def _slice_index(node: Any) -> tuple:
    p = node.params
    return (*[slice(None)] * p["dim"], slice(p["start"], p["stop"], p["step"]))


def _scatter(c: Context, index: tuple) -> list[Array | None]:
    R = np.zeros_like(c.inputs[0])
    R[index] = c.R
    return c.only(R)


def _cat_relevance(c: Context) -> list[Array | None]:
    dim = c.node.params["dim"]
    edges = np.cumsum([x.shape[dim] for x in c.inputs])[:-1]
    return list(np.split(c.R, edges, axis=dim))


Forward = Callable[[Any, list[Any]], Array]
RelevanceStep = Callable[[Context], list[Array | None]]
OPS: dict[str, tuple[Forward, RelevanceStep]] = {
    "linear": (_weighted, _weighted_relevance),
    "conv": (_weighted, _weighted_relevance),
    "avg_pool": (_avg_pool, _proportional),
    "adaptive_avg_pool": (_avg_pool, _proportional),
    "max_pool": (_max_pool, _max_relevance),
    "activation": (_activation, lambda c: c.only(c.R)),
    "identity": (lambda node, inputs: inputs[0], lambda c: c.only(c.R)),
    "cast": (lambda node, inputs: inputs[0].astype(node.params["dtype"]), lambda c: c.only(c.R)),
    "add": (_add, _add_relevance),
    "mul": (_product, _product_relevance),
    "div": (_product, lambda c: c.only(sum_to(c.R, c.inputs[0].shape))),
    "sum": (_reduce, _reduce_relevance),
    "mean": (_reduce, _reduce_relevance),
    "batch_norm": (_batch_norm, _batch_norm_relevance),
    "layer_norm": (_norm, _norm_relevance),
    "group_norm": (_norm, _norm_relevance),
    "reshape": (
        lambda node, inputs: inputs[0].reshape(node.params["shape"]),
        lambda c: c.only(c.R.reshape(c.inputs[0].shape)),
    ),
    "permute": (
        lambda node, inputs: inputs[0].transpose(node.params["dims"]),
        lambda c: c.only(c.R.transpose(np.argsort(c.node.params["dims"]))),
    ),
    "expand": (
        lambda node, inputs: np.broadcast_to(inputs[0], node.params["shape"]),
        lambda c: c.only(sum_to(c.R, c.inputs[0].shape)),
    ),
    "cat": (lambda node, inputs: np.concatenate(inputs, axis=node.params["dim"]), _cat_relevance),
    "slice": (lambda node, inputs: inputs[0][_slice_index(node)], lambda c: _scatter(c, _slice_index(c.node))),
    "select": (
        lambda node, inputs: np.take(inputs[0], node.params["index"], axis=node.params["dim"]),
        lambda c: _scatter(c, (*[slice(None)] * c.node.params["dim"], c.node.params["index"])),
    ),
    "pad": (_pad, _pad_relevance),
}


def _attention_ops() -> None:
    from .attention import OPS as ATTENTION

    OPS.update(ATTENTION)


_attention_ops()
