"""The NumPy forward and relevance of the ops attention models add (the reference's own code, no torch).

Definitions (docs/lrp-rules.md, "Transformers"): a product of two signals ``O = A B`` -- ``S = R / stab(O)``,
``R_A = A * (S B^T) / 2``, ``R_B = B * (A^T S) / 2`` (CP-LRP: the held factor gets nothing, the other all);
softmax ``R_in = x * (R - s * sum(R))``, 0 where ``s == 0``; the embedding lookup ends the walk.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SpecError
from ..rules import Conservative, Epsilon
from .rules import stab, sum_to

Array = np.ndarray


def _matmul(node: Any, inputs: list[Any]) -> Array:
    a, b = inputs
    equation = node.params.get("equation")
    return np.einsum(equation, a, b) if equation else np.matmul(a, b)


def _einsum_transpose(equation: str, k: int, S: Array, other: Array, shape: tuple[int, ...]) -> Array:
    """``J_k^T S`` of ``einsum(equation, A, B)``: the einsum that contracts ``S`` with the other operand."""
    operands, out = equation.split("->")
    first, second = operands.split(",")
    mine, theirs = (first, second) if k == 0 else (second, first)
    result = np.einsum(f"{out},{theirs}->{mine}", S, other)
    return np.broadcast_to(result, shape)


def _gradient(node: Any, inputs: list[Any], k: int, S: Array) -> Array:
    a, b = inputs
    equation = node.params.get("equation")
    if equation:
        return _einsum_transpose(equation, k, S, inputs[1 - k], inputs[k].shape)
    if a.ndim < 2 or b.ndim < 2:
        raise SpecError(f"the NumPy reference multiplies operands of 2 or more dimensions, not {node.describe()}")
    if k == 0:
        return sum_to(S @ np.swapaxes(b, -1, -2), a.shape)
    return sum_to(np.swapaxes(a, -1, -2) @ S, b.shape)


def _matmul_relevance(c: Any) -> list[Array | None]:
    """Step 2: ``S = R / stab(O)``; steps 3-4 per receiving factor ``F``: ``F * J_F^T S``, split evenly."""
    receivers, held = c.receivers, c.node.params.get("held")
    if isinstance(c.rule, Conservative) and held in receivers and len(receivers) == 2:
        receivers = tuple(k for k in receivers if k != held)
    epsilon = c.rule.epsilon if isinstance(c.rule, (Epsilon, Conservative)) else 1e-6
    S = c.R / stab(c.output, epsilon)
    return [c.inputs[k] * _gradient(c.node, c.inputs, k, S) / len(receivers) if k in receivers else None
            for k in range(len(c.inputs))]  # fmt: skip


def _softmax(node: Any, inputs: list[Any]) -> Array:
    x, dim = inputs[0], node.params["dim"]
    shifted = np.exp(x - np.max(x, axis=dim, keepdims=True))
    s = shifted / shifted.sum(axis=dim, keepdims=True)
    return np.nan_to_num(s, nan=0.0) if node.params.get("safe") else s


def _softmax_relevance(c: Any) -> list[Array | None]:
    """``R_in_i = x_i (R_i - s_i sum_j R_j)``; masked inputs (``s_i == 0``) get 0."""
    s, x, dim = c.output, c.inputs[0], c.node.params["dim"]
    with np.errstate(invalid="ignore"):
        R = x * (c.R - s * c.R.sum(axis=dim, keepdims=True))
    return c.only(np.where(s == 0, 0.0, R))


POWERS = {
    "rsqrt": lambda x, e: 1.0 / np.sqrt(x),
    "sqrt": lambda x, e: np.sqrt(x),
    "reciprocal": lambda x, e: 1.0 / x,
    "pow": lambda x, e: np.power(x, e),
}


def _power(node: Any, inputs: list[Any]) -> Array:
    return POWERS[node.params["fn"]](inputs[0], node.params["exponent"])


OPS = {
    "matmul": (_matmul, _matmul_relevance),
    "softmax": (_softmax, _softmax_relevance),
    "embedding": (lambda node, inputs: inputs[0][inputs[1]], lambda c: [None, None]),
    "power": (_power, None),
}


def _layer_norm(node: Any, inputs: list[Any]) -> Array:
    x, w, b = inputs
    axes = tuple(range(x.ndim - len(node.params["shape"]), x.ndim))
    centred = x - x.mean(axis=axes, keepdims=True)
    y = centred / np.sqrt((centred**2).mean(axis=axes, keepdims=True) + node.params["eps"])
    return y * (1.0 if w is None else w) + (0.0 if b is None else b)


def _layer_norm_relevance(c: Any) -> list[Array | None]:
    """The epsilon rule of ``y' = (x - mean(x)) w / sigma`` with ``sigma`` fixed, written as its four steps over
    the normalised axes: ``z = y'``, ``s = R / stab(z)``, ``c_i = sum_j w_ij s_j`` with
    ``w_ij = (delta_ij - 1/n) g_j`` (``g = w / sigma``), ``R_i = x_i c_i``. ``Pass``: the identity."""
    if not isinstance(c.rule, Epsilon):
        return c.only(c.R)
    x, w, b = c.inputs
    axes = tuple(range(x.ndim - len(c.node.params["shape"]), x.ndim))
    centred = x - x.mean(axis=axes, keepdims=True)
    g = (1.0 if w is None else w) / np.sqrt((centred**2).mean(axis=axes, keepdims=True) + c.node.params["eps"])
    z = centred * g + (b if (c.rule.bias and b is not None) else 0.0)  # step 1
    s = c.R / stab(z, c.rule.epsilon)  # step 2
    gs = g * s
    grad = gs - gs.mean(axis=axes, keepdims=True)  # step 3: sum_j (delta_ij - 1/n) g_j s_j
    return c.only(x * grad)  # step 4


OPS["layer_norm"] = (_layer_norm, _layer_norm_relevance)
