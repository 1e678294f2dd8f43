"""The LRP rules for Linear and Conv layers, each written as the four steps of Montavon et al. (2019, 10.2.2).

1. ``z_j = sum_i a_i rho(w_ij)``, stabilised — a forward pass with modified inputs/weights;
2. ``s_j = R_j / z_j``;
3. ``c_i = sum_j rho(w_ij) s_j`` — the transposed (backward) pass;
4. ``R_i = a_i c_i``.

A weighted layer provides the two passes: ``layer.forward_with(a, w, b=None)`` (step 1) and
``layer.backward_with(s, w)`` (step 3); for Linear they are ``a @ w.T`` and ``s @ w``, for Conv a
convolution and its transpose. Definitions: ``docs/lrp-rules.md`` (Bach et al. 2015; Montavon et al. 2017).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ..errors import SpecError
from ..rules import STABILIZER, AlphaBeta, Epsilon, Flat, Gamma, Rule, Simple, WSquare, ZBox

Array = np.ndarray


class Weighted(Protocol):
    """What a rule needs of a Linear or Conv layer (inputs already in the layer's own input shape)."""

    weight: Array
    bias: Array

    def forward_with(self, a: Array, w: Array, b: Array | None = None) -> Array: ...

    def backward_with(self, s: Array, w: Array) -> Array: ...

    def spread(self, b: Array, z: Array) -> Array: ...


def stab(d: Array, eps: float = STABILIZER) -> Array:
    """``d + eps * sign(d)`` with ``sign(0) = +1``: moves the denominator away from zero."""
    return d + eps * np.where(d >= 0, 1.0, -1.0).astype(d.dtype)


def sum_to(R: Array, shape: tuple[int, ...]) -> Array:
    """``R`` summed over the dimensions a broadcast operand of ``shape`` was copied along."""
    lead = R.ndim - len(shape)
    R = R.sum(axis=tuple(range(lead))) if lead else R
    axes = tuple(d for d, n in enumerate(shape) if n == 1 and R.shape[d] != 1)
    return (R.sum(axis=axes, keepdims=True) if axes else R).reshape(shape)


def pos(v: Array) -> Array:
    """``v+ = max(v, 0)``."""
    return np.maximum(v, 0)


def neg(v: Array) -> Array:
    """``v- = min(v, 0)``."""
    return np.minimum(v, 0)


def simple(layer: Weighted, a: Array, R: Array, rule: Simple) -> Array:
    """LRP-0: ``R_i = sum_j a_i w_ij / (z_j + 1e-12) R_j``."""
    w, b = layer.weight, layer.bias if rule.bias else None
    z = layer.forward_with(a, w, b) + rule.stabilizer  # step 1: z = a w (+ b) + 1e-12, whatever the sign
    s = R / z  # step 2: s = R / z
    c = layer.backward_with(s, w)  # step 3: c = w^T s
    return a * c  # step 4: R = a * c


def epsilon(layer: Weighted, a: Array, R: Array, rule: Epsilon) -> Array:
    """LRP-epsilon: ``R_i = sum_j a_i w_ij / stab(z_j) R_j``, stabilised with ``rule.epsilon``."""
    w, b = layer.weight, layer.bias if rule.bias else None
    z = stab(layer.forward_with(a, w, b), rule.epsilon)  # step 1: z = stab(a w (+ b))
    s = R / z  # step 2: s = R / z
    c = layer.backward_with(s, w)  # step 3: c = w^T s
    return a * c  # step 4: R = a * c


def alpha_beta(layer: Weighted, a: Array, R: Array, rule: AlphaBeta) -> Array:
    """LRP-alpha-beta for inputs of either sign; ``p = a+ w+ + a- w-`` and ``n = a+ w- + a- w+``.

    ``R_i = sum_j (alpha p_ij / stab(sum_i p_ij) - beta n_ij / stab(sum_i n_ij)) R_j``; ZPlus is (1, 0).
    """
    w, b = layer.weight, layer.bias
    ap, an, wp, wn = pos(a), neg(a), pos(w), neg(w)
    # step 1: z+ = sum_i p_ij (+ b+) and z- = sum_i n_ij (+ b-)
    zp = layer.forward_with(ap, wp) + layer.forward_with(an, wn)
    zn = layer.forward_with(ap, wn) + layer.forward_with(an, wp)
    if rule.bias:
        zp, zn = zp + layer.spread(pos(b), zp), zn + layer.spread(neg(b), zn)
    # step 2: s+ = alpha R / z+,  s- = beta R / z-
    sp, sn = rule.alpha * R / stab(zp), rule.beta * R / stab(zn)
    # step 3: c = (w+ s+ - w- s-) for a+ and (w- s+ - w+ s-) for a-
    cp = layer.backward_with(sp, wp) - layer.backward_with(sn, wn)
    cn = layer.backward_with(sp, wn) - layer.backward_with(sn, wp)
    return ap * cp + an * cn  # step 4: R = a+ c+ + a- c-


def zbox(layer: Weighted, a: Array, R: Array, rule: ZBox, low: Array, high: Array) -> Array:
    """LRP-zB for ``low <= a <= high``: ``q_ij = a_i w_ij - l_i w+_ij - h_i w-_ij``,
    ``R_i = sum_j q_ij / stab(sum_i q_ij) R_j``.

    Written as ``q_ij = (a_i - l_i) w+_ij + (a_i - h_i) w-_ij``: both terms are >= 0, so an output whose
    ``q`` are all zero (e.g. a window of padding at the low bound) passes exactly nothing on.
    """
    wp, wn = pos(layer.weight), neg(layer.weight)
    # step 1: z = (a - l) w+ + (a - h) w-  (= a w - l w+ - h w-) (+ b)
    z = layer.forward_with(a - low, wp) + layer.forward_with(a - high, wn)
    if rule.bias:
        z = z + layer.spread(layer.bias, z)
    s = R / stab(z)  # step 2: s = R / z
    cp, cn = layer.backward_with(s, wp), layer.backward_with(s, wn)  # step 3: c+ = w+^T s, c- = w-^T s
    return (a - low) * cp + (a - high) * cn  # step 4: R = (a - l) c+ + (a - h) c-


def wsquare(layer: Weighted, a: Array, R: Array, rule: WSquare) -> Array:
    """LRP-w²: ``R_i = sum_j w_ij² / stab(sum_i w_ij²) R_j`` (inputs replaced by ones; bias ignored)."""
    ones, w2 = np.ones_like(a), layer.weight**2
    z = stab(layer.forward_with(ones, w2))  # step 1: z = sum_i 1 * w²
    s = R / z  # step 2: s = R / z
    c = layer.backward_with(s, w2)  # step 3: c = w²^T s
    return ones * c  # step 4: R = 1 * c


def flat(layer: Weighted, a: Array, R: Array, rule: Flat) -> Array:
    """LRP-flat: ``R_i = sum_j R_j / stab(n_j)`` (inputs and weights replaced by ones; bias ignored)."""
    ones, w1 = np.ones_like(a), np.ones_like(layer.weight)
    z = stab(layer.forward_with(ones, w1))  # step 1: z = n_j, the size of the receptive field
    s = R / z  # step 2: s = R / z
    c = layer.backward_with(s, w1)  # step 3: c = 1^T s
    return ones * c  # step 4: R = 1 * c


def gamma(layer: Weighted, a: Array, R: Array, rule: Gamma) -> Array:
    """LRP-gamma for inputs of either sign: ``u`` (``w + g w+`` on a+, ``w + g w-`` on a-) for outputs > 0,
    ``v`` (``w + g w-`` on a+, ``w + g w+`` on a-) for outputs < 0."""
    w, b, g = layer.weight, layer.bias, rule.gamma
    ap, an = pos(a), neg(a)
    w_up, w_dn = w + g * pos(w), w + g * neg(w)  # "up" favours positive contributions, "dn" negative ones
    # step 1: z_u = sum_i u_ij (+ b + g b+), z_v = sum_i v_ij (+ b + g b-); the sign of the real output picks
    zu = layer.forward_with(ap, w_up) + layer.forward_with(an, w_dn)
    zv = layer.forward_with(ap, w_dn) + layer.forward_with(an, w_up)
    if rule.bias:
        zu, zv = zu + layer.spread(b + g * pos(b), zu), zv + layer.spread(b + g * neg(b), zv)
    out = layer.forward_with(a, w, b)
    # step 2: s_u = R / z_u where out > 0, s_v = R / z_v where out < 0
    su = np.where(out > 0, R, 0) / stab(zu)
    sv = np.where(out < 0, R, 0) / stab(zv)
    # step 3: c+ for a+ and c- for a-
    cp = layer.backward_with(su, w_up) + layer.backward_with(sv, w_dn)
    cn = layer.backward_with(su, w_dn) + layer.backward_with(sv, w_up)
    return ap * cp + an * cn  # step 4: R = a+ c+ + a- c-


_DISPATCH: tuple[tuple[type[Rule], Callable[..., Array]], ...] = (
    (Simple, simple),
    (Epsilon, epsilon),
    (AlphaBeta, alpha_beta),  # ZPlus is AlphaBeta(1, 0)
    (WSquare, wsquare),
    (Flat, flat),
    (Gamma, gamma),
)


def apply(layer: Weighted, a: Array, R: Array, rule: Rule, bounds: tuple[Any, Any]) -> Array:
    """Propagates ``R`` through a weighted layer with ``rule``; ``bounds`` are the zB defaults."""
    if isinstance(rule, ZBox):
        low, high = (bounds[0] if rule.low is None else rule.low), (bounds[1] if rule.high is None else rule.high)
        low, high = _bound(low, a, "low"), _bound(high, a, "high")
        if not (low <= high).all():
            raise SpecError("ZBox needs low <= high everywhere")
        return zbox(layer, a, R, rule, low, high)
    for kind, fn in _DISPATCH:
        if isinstance(rule, kind):
            return fn(layer, a, R, rule)
    raise SpecError(f"the NumPy reference has no implementation of rule {rule!r}")


def _bound(value: Any, a: Array, name: str) -> Array:
    """A zB bound broadcast to the layer input ``a``: a number, an array of one sample's input shape (or
    broadcastable to it), or for images a vector with one bound per channel."""
    try:
        v = np.asarray(value, dtype=a.dtype)
    except (TypeError, ValueError):
        raise SpecError(f"ZBox {name} must be a number or an array, got {value!r}") from None
    if v.ndim == 1 and a.ndim == 4 and len(v) == a.shape[1]:
        v = v.reshape(-1, 1, 1)  # one bound per channel
    try:
        v = np.broadcast_to(v, a.shape[1:])
    except ValueError:
        raise SpecError(
            f"ZBox {name} has shape {v.shape}, which does not broadcast to the layer input of shape {a.shape[1:]}"
        ) from None
    if not np.isfinite(v).all():
        raise SpecError(f"ZBox {name} contains NaN or Inf")
    return np.broadcast_to(v, a.shape)
