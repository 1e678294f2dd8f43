"""The torch math of every LRP rule on a Linear-type layer (definitions: docs/lrp-rules.md).

Every rule is the four steps of Montavon et al. 2019 (sec. 10.2.2) on one shared abstraction,
:class:`~lrpkit.engine.weighted.WeightedLayer`, which offers the layer's bias-free op and its transpose:

1. ``z_j = stab(sum_i a_i rho(w_ij))``   -- ``layer.forward(a, rho(w))`` (or free: recorded in the forward pass)
2. ``s_j = R_j / z_j``                    -- per neuron, computed once for the batch, broadcast over targets
3. ``c_i = sum_j rho(w_ij) s_j``          -- ``layer.backward(s, rho(w), a.shape)``
4. ``R_i = a_i c_i``

Relevance carries a leading target dimension: ``R`` has shape ``(K, *output.shape)`` (K = 1 for one target,
K = C for every class at once) while the recorded activations have their own shape; the returned input
relevance is ``(K, *a.shape)``. Modified weights (``w+``, ``w-``, ``w^2``, ones, ``w + gamma w+-``) are
computed lazily, once per explanation. Known non-negative inputs (after a ReLU) skip every ``a-`` term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import SpecError
from ..rules import STABILIZER, AlphaBeta, Epsilon, Flat, Gamma, Rule, Simple, WSquare, ZBox
from .weighted import WeightedLayer, stab


@dataclass(frozen=True)
class Recorded:
    """What the forward pass recorded at one weighted layer.

    ``a``: the input; ``z``: the bias-free output ``sum_i a_i w_ij``; ``nonneg``: ``a >= 0``
    everywhere (so every ``a-`` term vanishes); ``output``: the layer's real output ``z + b`` if it was kept
    (a ReLU right after may overwrite it; :meth:`WeightedLayer.output` then recomputes it).
    """

    a: Tensor
    z: Tensor | None  # None where the rule divides by the real output alone (LRP-0/epsilon with bias=True)
    nonneg: bool
    output: Tensor | None = None


# -- the rules --------------------------------------------------------------------------------------
# Temporaries the size of a layer's output are the main cost after the conv/matmul ops, so each helper
# writes into buffers it has just created (never into recorded activations or the relevance it was given).


def ratio(R: Tensor, denominator: Tensor, scale: float = 1.0, drop: Tensor | None = None) -> Tensor:
    """Step 2: ``s = scale * R / denominator`` (0 where ``drop``); ``denominator`` must be a fresh tensor."""
    d = denominator.reciprocal_()
    if scale != 1.0:
        d.mul_(scale)
    if drop is not None:
        d.masked_fill_(drop, 0.0)
    if R.shape[0] == 1 and R.shape[1:] == d.shape:
        return d.mul_(R[0]).unsqueeze(0)
    return R * d


def simple(rule: Simple, layer: WeightedLayer, rec: Recorded, R: Tensor) -> Tensor:
    """LRP-0: ``R_i = a_i sum_j w_ij R_j / (z_j + 1e-12)`` -- 1 transposed op."""
    z = layer.output(rec.z, rec.output) if rule.bias else rec.z  # step 1: free, recorded
    s = ratio(R, z + rule.stabilizer)
    return layer.backward(s, layer.weight, rec.a.shape).mul_(rec.a)  # steps 3-4


def epsilon(rule: Epsilon, layer: WeightedLayer, rec: Recorded, R: Tensor) -> Tensor:
    """LRP-epsilon: ``R_i = a_i sum_j w_ij R_j / stab(z_j)`` -- 1 transposed op."""
    z = layer.output(rec.z, rec.output) if rule.bias else rec.z
    s = ratio(R, stab(z, rule.epsilon))
    return layer.backward(s, layer.weight, rec.a.shape).mul_(rec.a)


def _signed_forward(
    layer: WeightedLayer, rec: Recorded, w_plus: Tensor, w_minus: Tensor | None, cache: bool = True
) -> Tensor:
    """``sum_i (a+_i w_plus_ij + a-_i w_minus_ij)``: 1 forward op (on ``[a+, a-]`` stacked by channel).

    ``w_minus`` may be None when the inputs are known non-negative (it is not needed then)."""
    if rec.nonneg:
        return layer.forward(rec.a, w_plus)
    a_pos, a_neg = rec.a.clamp(min=0), rec.a.clamp(max=0)
    if not layer.stackable:
        return layer.forward(a_pos, w_plus).add_(layer.forward(a_neg, w_minus))
    stacked = layer.stacked(w_plus, w_minus) if cache else torch.cat([w_plus, w_minus], 1)
    return layer.forward(layer.stack_inputs(a_pos, a_neg), stacked)


def _split(layer: WeightedLayer, rec: Recorded, s: Tensor, w_plus: Tensor, w_minus: Tensor | None) -> Tensor:
    """Steps 3-4 for split inputs: ``a+_i sum_j w_plus_ij s_j + a-_i sum_j w_minus_ij s_j`` (1 transposed op)."""
    a, in_shape = rec.a, rec.a.shape
    if rec.nonneg:
        return layer.backward(s, w_plus, in_shape).mul_(a)
    if not layer.stackable:
        c_plus, c_minus = layer.backward(s, w_plus, in_shape), layer.backward(s, w_minus, in_shape)
    else:
        c_plus, c_minus = layer.backward_stacked(s, layer.stacked(w_plus, w_minus), in_shape)
    return c_plus.mul_(a.clamp(min=0)).addcmul_(c_minus, a.clamp(max=0))


def _negative_sum(layer: WeightedLayer, rec: Recorded, P: Tensor) -> Tensor:
    """``N = sum_i n_ij = z - P``, free; recomputed by forward ops where rounding may have swallowed it.

    Where ``|z - P| <= 64 eps P`` the difference is rounding noise of the order of ``N`` itself: those
    outputs (whole channels of a conv) get ``N`` from a forward op on their weights only.
    """
    N = rec.z - P
    noise = N.abs().sub_(P, alpha=64 * torch.finfo(N.dtype).eps)
    doubtful = (noise <= 0) & (P > 0)
    if not bool(doubtful.any()):
        return N
    if not layer.stackable:
        return _signed_forward(layer, rec, layer.negative, layer.positive)
    index = layer.outputs_where(doubtful).nonzero().squeeze(1)
    exact = _signed_forward(layer, rec, layer.negative[index], layer.positive[index], cache=False)
    return N.index_copy_(layer.output_dim(N), index, exact)


def alpha_beta(rule: AlphaBeta, layer: WeightedLayer, rec: Recorded, R: Tensor) -> Tensor:
    """LRP-alpha-beta: ``R_i = sum_j (alpha p_ij / stab(P_j) - beta n_ij / stab(N_j)) R_j``.

    ``P = sum_i p_ij`` takes one ``w+`` forward op; ``N = z - P`` is free. A sum whose terms are all zero
    shares nothing (its factor is 0 rather than ``1 / eps``). Non-negative inputs: 2 transposed ops
    (``w+``, ``w-``), 1 for z+; inputs of either sign: the same count on channel-stacked ``[a+, a-]``.
    """
    w_minus = None if rec.nonneg else layer.negative  # z+ on non-negative inputs never needs w-
    P = _signed_forward(layer, rec, layer.positive, w_minus)  # step 1
    P_total = layer.with_bias(P, layer.bias_part(+1)) if rule.bias else P
    s_pos = ratio(R, stab(P_total, STABILIZER), rule.alpha, drop=P_total == 0)  # step 2
    R_in = _split(layer, rec, s_pos, layer.positive, w_minus)  # steps 3-4
    if not rule.beta:
        return R_in
    N = _negative_sum(layer, rec, P)
    N_total = layer.with_bias(N, layer.bias_part(-1)) if rule.bias else N
    s_neg = ratio(R, stab(N_total, STABILIZER), rule.beta, drop=N_total == 0)
    return R_in.sub_(_split(layer, rec, s_neg, layer.negative, layer.positive))


def zbox(rule: ZBox, layer: WeightedLayer, rec: Recorded, R: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """LRP-zB: ``q_ij = a_i w_ij - l_i w+_ij - h_i w-_ij``, ``R_i = sum_j q_ij / stab(sum_i q_ij) R_j``.

    ``low``/``high`` have one sample's shape ``(1, ...)``, so their forward ops run on one sample. With
    ``q_ij = (a_i - l_i) w+_ij + (a_i - h_i) w-_ij`` the result is ``(a - l) w+^T s + (a - h) w-^T s``:
    2 transposed ops (1 on stacked weights), and exact zeros wherever every ``q_ij`` of an output is 0.
    """
    q = rec.z - (layer.forward(low, layer.positive) + layer.forward(high, layer.negative))  # step 1
    if rule.bias:
        q = layer.with_bias(q, layer.bias)
    s = ratio(R, stab(q, STABILIZER))  # step 2
    in_shape = rec.a.shape
    if not layer.stackable:  # step 3
        c_plus, c_minus = layer.backward(s, layer.positive, in_shape), layer.backward(s, layer.negative, in_shape)
    else:
        c_plus, c_minus = layer.backward_stacked(s, layer.stacked(layer.positive, layer.negative), in_shape)
    return c_plus.mul_(rec.a - low).addcmul_(c_minus, rec.a - high)  # step 4


def wsquare(rule: WSquare, layer: WeightedLayer, rec: Recorded, R: Tensor) -> Tensor:
    """LRP-w^2: ``R_i = sum_j w_ij^2 / stab(sum_i w_ij^2) R_j`` (input-independent; bias ignored)."""
    return _uniform(layer, rec, R, layer.squared)


def flat(rule: Flat, layer: WeightedLayer, rec: Recorded, R: Tensor) -> Tensor:
    """LRP-flat: ``R_i = sum_j R_j / stab(n_j)``, ``n_j`` = inputs in the receptive field of ``j`` (no padding)."""
    return _uniform(layer, rec, R, layer.ones)


def _uniform(layer: WeightedLayer, rec: Recorded, R: Tensor, w: Tensor) -> Tensor:
    total = layer.ones_forward(w, rec.a)  # step 1 on an all-ones input, (1, *out_shape)
    return layer.backward(ratio(R, stab(total, STABILIZER)), w, rec.a.shape)  # steps 2-3; no step 4


def gamma(rule: Gamma, layer: WeightedLayer, rec: Recorded, R: Tensor) -> Tensor:
    """LRP-gamma (generalised): ``u_ij`` for outputs > 0, ``v_ij`` for outputs < 0 (see ``lrpkit.Gamma``).

    With ``P = sum_i p_ij`` (one ``w+`` forward op): ``sum_i u_ij = z + gamma P`` and
    ``sum_i v_ij = (1 + gamma) z - gamma P``. 2 transposed ops (``w + gamma w+``, ``w + gamma w-``),
    on channel-stacked ``[a+, a-]`` for inputs of either sign.
    """
    g = rule.gamma
    P = _signed_forward(layer, rec, layer.positive, None if rec.nonneg else layer.negative)  # step 1
    U, V = torch.add(rec.z, P, alpha=g), torch.mul(rec.z, 1.0 + g).sub_(P, alpha=g)
    if rule.bias and layer.bias is not None:
        U = layer.with_bias(U, layer.bias + g * layer.bias_part(+1))
        V = layer.with_bias(V, layer.bias + g * layer.bias_part(-1))
    out = layer.output(rec.z, rec.output)
    s_u = ratio(R, stab(U, STABILIZER), drop=out <= 0)  # step 2, by the sign of the real output
    s_v = ratio(R, stab(V, STABILIZER), drop=out >= 0)
    w_up, w_down = layer.gamma_weights(g)
    layer.release("positive")  # only w + gamma w+ and w + gamma w- are needed from here on
    return _split(layer, rec, s_u, w_up, w_down).add_(_split(layer, rec, s_v, w_down, w_up))  # steps 3-4


RuleStep = Callable[..., Tensor]
STEPS: dict[type[Rule], RuleStep] = {
    Simple: simple,
    Epsilon: epsilon,
    AlphaBeta: alpha_beta,
    ZBox: zbox,
    WSquare: wsquare,
    Flat: flat,
    Gamma: gamma,
}


def propagate(
    rule: Rule, layer: WeightedLayer, rec: Recorded, R: Tensor, bounds: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """The input relevance ``(K, *a.shape)`` of one weighted layer under ``rule``; ``bounds`` for zB."""
    step = next((fn for cls, fn in STEPS.items() if isinstance(rule, cls)), None)
    if step is None:
        raise SpecError(f"no torch implementation for rule {rule!r}; known: {', '.join(c.__name__ for c in STEPS)}")
    if isinstance(rule, ZBox):
        if bounds is None:
            raise SpecError("ZBox needs bounds (low, high)")
        return step(rule, layer, rec, R, *bounds)
    return step(rule, layer, rec, R)
