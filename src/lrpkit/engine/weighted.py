"""The torch math of every LRP rule on a Linear or Conv2d layer (definitions: docs/lrp-rules.md).

Every rule is the four steps of Montavon et al. 2019 (sec. 10.2.2) on one shared abstraction,
:class:`WeightedLayer`, which offers the layer's bias-free op and its transpose:

1. ``z_j = stab(sum_i a_i rho(w_ij))``   -- ``layer.forward(a, rho(w))`` (or free: recorded in the forward pass)
2. ``s_j = R_j / z_j``                    -- per neuron, computed once for the batch, broadcast over targets
3. ``c_i = sum_j rho(w_ij) s_j``          -- ``layer.backward(s, rho(w), in_shape)``
4. ``R_i = a_i c_i``

Relevance carries a leading target dimension: ``R`` has shape ``(K, N, *out_shape)`` (K = 1 for one target,
K = C for every class at once) while the recorded activations are ``(N, ...)``; the returned input relevance
is ``(K, N, *in_shape)``. Modified weights (``w+``, ``w-``, ``w^2``, ones, ``w + gamma w+-``) are computed
lazily, once per explanation. Known non-negative inputs (after a ReLU) skip every ``a-`` term.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import SpecError
from ..rules import STABILIZER, AlphaBeta, Epsilon, Flat, Gamma, Rule, Simple, WSquare, ZBox

Pair = tuple[int, int]
FOLD_MAX_COLUMNS = 64
"""Transposed convs whose kernel covers at most this many inputs (C * kh * kw) use matmul + fold on CPU."""


def stab(d: Tensor, epsilon: float) -> Tensor:
    """``d + epsilon * sign(d)`` with ``sign(+0) = +1``: moves denominators away from zero, keeping their sign.

    (IEEE ``-0`` counts as negative; a sum is ``-0`` only when all its terms are zero, so its numerators
    are zero too and the sign cannot change any relevance.)
    """
    return torch.copysign(d.new_full((), epsilon), d).add_(d)


@dataclass(frozen=True)
class Recorded:
    """What the forward pass recorded at one weighted layer.

    ``a``: the input ``(N, *in_shape)``; ``z``: the bias-free output ``sum_i a_i w_ij``; ``nonneg``: ``a >= 0``
    everywhere (so every ``a-`` term vanishes); ``output``: the layer's real output ``z + b`` if it was kept
    (a ReLU right after may overwrite it; :meth:`WeightedLayer.output` then recomputes it).
    """

    a: Tensor
    z: Tensor
    nonneg: bool
    output: Tensor | None = None


@dataclass(frozen=True, eq=False)
class WeightedLayer:
    """A Linear or Conv2d layer (a following BatchNorm merged in) as the two ops every rule is built from.

    ``forward(x, w)`` is the layer's op without bias (``F.linear`` on ``x`` flattened to ``(N, features)``,
    or ``F.conv2d`` with the layer's stride, padding, dilation and groups); ``backward(s, w, in_shape)`` its
    transpose (``s @ w``, ``F.conv_transpose2d``, or matmul + ``F.fold`` for few input channels on CPU).
    Modified weights are cached on first use; a WeightedLayer lives for one explanation.
    """

    weight: Tensor
    bias: Tensor | None = None
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    groups: int = 1
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_module(cls, module: nn.Module, batchnorm: nn.Module | None = None) -> WeightedLayer:
        """Reads an ``nn.Linear`` / ``nn.Conv2d`` (never modifying it); ``batchnorm`` (eval statistics) is merged."""
        weight = module.weight.detach()
        bias = None if module.bias is None else module.bias.detach()
        if batchnorm is not None:
            weight, bias = _merge_batchnorm(weight, bias, batchnorm)
        if isinstance(module, nn.Linear):
            return cls(weight, bias)
        return cls(weight, bias, module.stride, _conv_padding(module), module.dilation, module.groups)

    @property
    def conv(self) -> bool:
        return self.weight.dim() == 4

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``sum_i x_i w_ij`` for each output ``j`` (no bias); ``x`` is ``(N, *in_shape)``."""
        if self.conv:
            return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups)
        return F.linear(x.flatten(1), w)

    def backward(self, s: Tensor, w: Tensor, in_shape: tuple[int, ...]) -> Tensor:
        """``c_i = sum_j w_ij s_j``: ``s`` is ``(K, N, *out_shape)``, the result ``(K, N, *in_shape)``."""
        flat = s.flatten(0, 1)
        if not self.conv:
            c = flat @ w
        elif flat.device.type == "cpu" and self.groups == 1 and w[0].numel() <= FOLD_MAX_COLUMNS:
            c = self._fold(flat, w, in_shape)
        else:
            extra = self._output_padding(flat, in_shape)
            c = F.conv_transpose2d(flat, w, None, self.stride, self.padding, extra, self.groups, self.dilation)
        return c.reshape(*s.shape[:2], *in_shape)

    def _fold(self, s: Tensor, w: Tensor, in_shape: tuple[int, ...]) -> Tensor:
        """The transposed conv as one matmul and ``F.fold`` (col2im): 3-4x faster on CPU for few input channels."""
        columns = w.flatten(1).T @ s.flatten(2)  # (batch, C * kh * kw, out_h * out_w)
        return F.fold(columns, in_shape[1:], w.shape[2:], self.dilation, self.padding, self.stride)

    def backward_stacked(self, s: Tensor, stacked: Tensor, in_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """``backward`` with two weights stacked along the input dimension (:meth:`stacked`): one op, 2 results."""
        doubled = (2 * in_shape[0], *in_shape[1:]) if self.conv else (2 * math.prod(in_shape),)
        both = self.backward(s, stacked, doubled).view(*s.shape[:2], 2, *in_shape)
        return both[:, :, 0], both[:, :, 1]

    def stacked(self, first: Tensor, second: Tensor) -> Tensor:
        """``[first, second]`` along the input dimension (cached): one op then serves ``[x1, x2]`` inputs."""
        key = (id(first), id(second))
        if key not in self._cache:  # the entry keeps first/second alive, so their ids stay theirs
            self._cache[key] = (first, second, torch.cat([first, second], 1))
        return self._cache[key][2]

    def _output_padding(self, s: Tensor, in_shape: tuple[int, ...]) -> Pair:
        """The rows/columns the strided forward op ignored at the bottom/right of its input."""
        sizes = []
        for d in range(2):
            span = (s.shape[2 + d] - 1) * self.stride[d] - 2 * self.padding[d]
            sizes.append(in_shape[1 + d] - span - self.dilation[d] * (self.weight.shape[2 + d] - 1) - 1)
        return (sizes[0], sizes[1])

    def output(self, rec: Recorded) -> Tensor:
        """The layer's real output ``z + b`` (bias included)."""
        return rec.output if rec.output is not None else self.with_bias(rec.z, self.bias)

    def with_bias(self, z: Tensor, bias: Tensor | None) -> Tensor:
        """``z + b`` with ``b`` broadcast over the batch (and the spatial dimensions of a conv)."""
        if bias is None:
            return z
        return z + (bias.view(-1, 1, 1) if self.conv else bias)

    @cached_property
    def positive(self) -> Tensor:
        return self.weight.clamp(min=0)

    @cached_property
    def negative(self) -> Tensor:
        return self.weight.clamp(max=0)

    @cached_property
    def squared(self) -> Tensor:
        return self.weight * self.weight

    @cached_property
    def ones(self) -> Tensor:
        return torch.ones_like(self.weight)

    def gamma_weights(self, gamma: float) -> tuple[Tensor, Tensor]:
        """``(w + gamma w+, w + gamma w-)``, cached per gamma."""
        if gamma not in self._cache:
            w_plus = self.positive  # w + gamma w- = (1 + gamma) w - gamma w+: no w- needed
            self._cache[gamma] = (self.weight + gamma * w_plus, (1.0 + gamma) * self.weight - gamma * w_plus)
        return self._cache[gamma]

    def release(self, *names: str) -> None:
        """Drops cached modified weights (the named ones, or all) once they are no longer needed."""
        for name in names or ("positive", "negative", "squared", "ones"):
            self.__dict__.pop(name, None)
        if not names:
            self._cache.clear()

    def bias_part(self, sign: int) -> Tensor | None:
        """``b+`` (sign > 0) or ``b-`` (sign < 0); None without bias."""
        if self.bias is None:
            return None
        return self.bias.clamp(min=0) if sign > 0 else self.bias.clamp(max=0)

    def ones_forward(self, w: Tensor, like: Tensor) -> Tensor:
        """``sum_i 1 * w_ij`` over each receptive field, as ``(1, *out_shape)`` (padding counts nothing)."""
        return self.forward(like.new_ones((1, *like.shape[1:])), w)

    def __repr__(self) -> str:
        kind = "Conv2d" if self.conv else "Linear"
        extra = f", stride={self.stride}, padding={self.padding}, dilation={self.dilation}" if self.conv else ""
        return f"WeightedLayer({kind}, weight={tuple(self.weight.shape)}, bias={self.bias is not None}{extra})"


def _conv_padding(module: nn.Conv2d) -> Pair:
    if module.padding_mode != "zeros":
        raise SpecError(f"Conv2d with padding_mode={module.padding_mode!r} is not supported (only 'zeros')")
    if module.padding == "valid":
        return (0, 0)
    if module.padding == "same":
        total = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size, strict=True)]
        if any(t % 2 for t in total):
            raise SpecError("Conv2d with padding='same' and an even (dilated) kernel pads unevenly; not supported")
        return (total[0] // 2, total[1] // 2)
    return tuple(module.padding)  # type: ignore[return-value]


def _merge_batchnorm(weight: Tensor, bias: Tensor | None, bn: nn.Module) -> tuple[Tensor, Tensor]:
    """``w' = w g / sigma``, ``b' = (b - mu) g / sigma + beta`` with ``sigma = sqrt(var + eps)`` (new tensors)."""
    if bn.running_mean is None or bn.running_var is None:
        raise SpecError(f"{type(bn).__name__} without running statistics (track_running_stats=False) cannot be merged")
    if bn.num_features != weight.shape[0]:
        raise SpecError(f"{type(bn).__name__}({bn.num_features}) follows a layer with {weight.shape[0]} outputs")
    scale = (bn.running_var + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.detach()
    shift = bn.bias.detach() if bn.bias is not None else torch.zeros_like(scale)
    bias = torch.zeros_like(scale) if bias is None else bias
    new_weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
    return new_weight, (bias - bn.running_mean) * scale + shift


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
    z = layer.output(rec) if rule.bias else rec.z  # step 1: free, recorded
    s = ratio(R, z + rule.stabilizer)
    return layer.backward(s, layer.weight, rec.a.shape[1:]).mul_(rec.a)  # steps 3-4


def epsilon(rule: Epsilon, layer: WeightedLayer, rec: Recorded, R: Tensor) -> Tensor:
    """LRP-epsilon: ``R_i = a_i sum_j w_ij R_j / stab(z_j)`` -- 1 transposed op."""
    z = layer.output(rec) if rule.bias else rec.z
    s = ratio(R, stab(z, rule.epsilon))
    return layer.backward(s, layer.weight, rec.a.shape[1:]).mul_(rec.a)


def _signed_forward(
    layer: WeightedLayer, rec: Recorded, w_plus: Tensor, w_minus: Tensor | None, cache: bool = True
) -> Tensor:
    """``sum_i (a+_i w_plus_ij + a-_i w_minus_ij)``: 1 forward op (on ``[a+, a-]`` stacked by channel).

    ``w_minus`` may be None when the inputs are known non-negative (it is not needed then)."""
    if rec.nonneg:
        return layer.forward(rec.a, w_plus)
    a_pos, a_neg = rec.a.clamp(min=0), rec.a.clamp(max=0)
    if layer.groups > 1:
        return layer.forward(a_pos, w_plus).add_(layer.forward(a_neg, w_minus))
    stacked = layer.stacked(w_plus, w_minus) if cache else torch.cat([w_plus, w_minus], 1)
    return layer.forward(torch.cat([a_pos, a_neg], 1), stacked)


def _split(layer: WeightedLayer, rec: Recorded, s: Tensor, w_plus: Tensor, w_minus: Tensor | None) -> Tensor:
    """Steps 3-4 for split inputs: ``a+_i sum_j w_plus_ij s_j + a-_i sum_j w_minus_ij s_j`` (1 transposed op)."""
    a, in_shape = rec.a, rec.a.shape[1:]
    if rec.nonneg:
        return layer.backward(s, w_plus, in_shape).mul_(a)
    if layer.groups > 1:
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
    if layer.groups > 1:
        return _signed_forward(layer, rec, layer.negative, layer.positive)
    rows = doubtful.flatten(2).any(2).any(0) if layer.conv else doubtful.any(0)
    index = rows.nonzero().squeeze(1)
    exact = _signed_forward(layer, rec, layer.negative[index], layer.positive[index], cache=False)
    return N.index_copy_(1, index, exact)


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

    ``low``/``high`` are ``(1, *in_shape)``, so their forward ops run on one sample. With
    ``q_ij = (a_i - l_i) w+_ij + (a_i - h_i) w-_ij`` the result is ``(a - l) w+^T s + (a - h) w-^T s``:
    2 transposed ops (1 on stacked weights), and exact zeros wherever every ``q_ij`` of an output is 0.
    """
    q = rec.z - (layer.forward(low, layer.positive) + layer.forward(high, layer.negative))  # step 1
    if rule.bias:
        q = layer.with_bias(q, layer.bias)
    s = ratio(R, stab(q, STABILIZER))  # step 2
    in_shape = rec.a.shape[1:]
    if layer.groups > 1:  # step 3
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
    return layer.backward(ratio(R, stab(total, STABILIZER)), w, rec.a.shape[1:])  # steps 2-3; no step 4


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
    out = layer.output(rec)
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
    """The input relevance ``(K, N, *in_shape)`` of one weighted layer under ``rule``; ``bounds`` for zB."""
    step = next((fn for cls, fn in STEPS.items() if isinstance(rule, cls)), None)
    if step is None:
        raise SpecError(f"no torch implementation for rule {rule!r}; known: {', '.join(c.__name__ for c in STEPS)}")
    if isinstance(rule, ZBox):
        if bounds is None:
            raise SpecError("ZBox needs bounds (low, high)")
        return step(rule, layer, rec, R, *bounds)
    return step(rule, layer, rec, R)
