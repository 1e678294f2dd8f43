"""A Linear-type layer as the two ops every LRP rule is built from: its bias-free forward and its transpose.

Linear on the last dimension of any-rank input, and convolutions and transposed convolutions in 1, 2 and 3
dimensions with any stride, padding, dilation and groups (so depthwise convs too). A BatchNorm that only
this layer feeds is merged in (``w' = w g / sigma``, ``b' = (b - mu) g / sigma + beta``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

LIVE_ROWS = 0.25
"""A Linear layer's transpose multiplies only the rows that carry relevance when at most this share of them do
(one target, at least ``LIVE_MIN_ROWS`` rows); finding them costs one pass, and on a GPU one device sync."""
LIVE_MIN_ROWS = 16
FOLD_MAX_COLUMNS = 64
"""Transposed 2-d convs whose kernel covers at most this many inputs (C * kh * kw) use matmul + fold on CPU."""

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def stab(d: Tensor, epsilon: float) -> Tensor:
    """``d + epsilon * sign(d)`` with ``sign(+0) = +1``: moves denominators away from zero, keeping their sign.

    (IEEE ``-0`` counts as negative; a sum is ``-0`` only when all its terms are zero, so its numerators
    are zero too and the sign cannot change any relevance.)
    """
    return torch.copysign(d.new_full((), epsilon), d).add_(d)


@dataclass(frozen=True)
class Conv:
    """The geometry of a convolution (``transposed``: a transposed convolution)."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1
    transposed: bool = False
    output_padding: tuple[int, ...] = ()

    @property
    def dims(self) -> int:
        return len(self.stride)


@dataclass(frozen=True, eq=False)
class WeightedLayer:
    """A Linear (``conv is None``) or convolution layer: ``forward(x, w)`` its op without bias,
    ``backward(s, w, shape)`` the transpose. Modified weights are cached; it lives for one explanation."""

    weight: Tensor
    bias: Tensor | None = None
    conv: Conv | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, weight: Tensor, bias: Tensor | None, conv: Conv | None, batchnorm: Any = None) -> WeightedLayer:
        """The layer of (detached) ``weight``/``bias``; ``batchnorm``: ``(g, beta, mean, var, eps)`` to merge."""
        weight, bias = weight.detach(), None if bias is None else bias.detach()
        if batchnorm is not None:
            weight, bias = _merge_batchnorm(weight, bias, *batchnorm)
        return cls(weight, bias, conv)

    @property
    def stackable(self) -> bool:
        """Whether two weights can be stacked along the input dimension into one op (``[a+, a-]`` tricks)."""
        return self.conv is None or (self.conv.groups == 1 and not self.conv.transposed)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``sum_i x_i w_ij`` for each output ``j`` (no bias)."""
        c = self.conv
        if c is None:
            return F.linear(x, w)
        if c.transposed:
            return _CONV_T[c.dims](x, w, None, c.stride, c.padding, c.output_padding, c.groups, c.dilation)
        return _CONV[c.dims](x, w, None, c.stride, c.padding, c.dilation, c.groups)

    def backward(self, s: Tensor, w: Tensor, shape: tuple[int, ...]) -> Tensor:
        """``c_i = sum_j w_ij s_j``: ``s`` is ``(K, *output shape)``, the result ``(K, *shape)`` (the input's)."""
        c = self.conv
        if c is None:
            return _live_rows_times(s, w)
        flat = s.flatten(0, 1)
        if c.transposed:
            out = _CONV[c.dims](flat, w, None, c.stride, c.padding, c.dilation, c.groups)
        elif c.dims == 2 and flat.device.type == "cpu" and c.groups == 1 and w[0].numel() <= FOLD_MAX_COLUMNS:
            out = self._fold(flat, w, shape)
        else:
            extra = self._output_padding(flat, shape)
            out = _CONV_T[c.dims](flat, w, None, c.stride, c.padding, extra, c.groups, c.dilation)
        return out.reshape(s.shape[0], *shape)

    def _fold(self, s: Tensor, w: Tensor, shape: tuple[int, ...]) -> Tensor:
        """The transposed conv as one matmul and ``F.fold`` (col2im): 3-4x faster on CPU for few input channels."""
        c = self.conv
        columns = w.flatten(1).T @ s.flatten(2)  # (batch, C * kh * kw, out_h * out_w)
        return F.fold(columns, shape[2:], w.shape[2:], c.dilation, c.padding, c.stride)

    def _output_padding(self, s: Tensor, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The rows/columns the strided forward op ignored at the end of each spatial dimension of its input."""
        c = self.conv
        sizes = []
        for d in range(c.dims):
            span = (s.shape[2 + d] - 1) * c.stride[d] - 2 * c.padding[d]
            sizes.append(shape[2 + d] - span - c.dilation[d] * (self.weight.shape[2 + d] - 1) - 1)
        return tuple(sizes)

    def stack_inputs(self, first: Tensor, second: Tensor) -> Tensor:
        """``[first, second]`` along the input dimension (features of a Linear, channels of a conv)."""
        return torch.cat([first, second], -1 if self.conv is None else 1)

    def backward_stacked(self, s: Tensor, stacked: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """``backward`` with two weights stacked along the input dimension (:meth:`stacked`): one op, 2 results."""
        dim = len(shape) - 1 if self.conv is None else 1
        doubled = (*shape[:dim], 2 * shape[dim], *shape[dim + 1 :])
        both = self.backward(s, stacked, doubled)
        return both.narrow(dim + 1, 0, shape[dim]), both.narrow(dim + 1, shape[dim], shape[dim])

    def stacked(self, first: Tensor, second: Tensor) -> Tensor:
        """``[first, second]`` along the weights' input dimension (cached): one op then serves stacked inputs."""
        key = (id(first), id(second))
        if key not in self._cache:  # the entry keeps first/second alive, so their ids stay theirs
            self._cache[key] = (first, second, torch.cat([first, second], 1))
        return self._cache[key][2]

    def output_dim(self, z: Tensor) -> int:
        """The dimension of ``z`` that runs over the layer's outputs (and over the weights' rows)."""
        return z.dim() - 1 if self.conv is None else 1

    def outputs_where(self, mask: Tensor) -> Tensor:
        """Per output unit (weight row): whether ``mask`` holds anywhere for it."""
        if self.conv is None:  # (..., outputs)
            return mask.reshape(-1, mask.shape[-1]).any(0)
        return mask.flatten(2).any(2).any(0)  # (N, outputs, *spatial): no copy of the mask

    def output(self, z: Tensor | None, recorded: Tensor | None) -> Tensor:
        """The layer's real output ``z + b``: ``recorded`` if it was kept, else remade."""
        return recorded if recorded is not None else self.with_bias(z, self.bias)

    def with_bias(self, z: Tensor, bias: Tensor | None) -> Tensor:
        """``z + b`` with ``b`` broadcast over every dimension but the outputs'."""
        if bias is None:
            return z
        return z + (bias if self.conv is None else bias.view(-1, *[1] * self.conv.dims))

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
        """``sum_i 1 * w_ij`` over each receptive field, for one sample (padding counts nothing)."""
        return self.forward(like.new_ones((1, *like.shape[1:])), w)

    def __repr__(self) -> str:
        kind = "Linear" if self.conv is None else f"Conv{self.conv.dims}d"
        return f"WeightedLayer({kind}, weight={tuple(self.weight.shape)}, bias={self.bias is not None})"


def _live_rows_times(s: Tensor, w: Tensor) -> Tensor:
    """``s @ w``, multiplying only the rows of ``s`` that are not all zero when at most ``LIVE_ROWS`` of them are:
    a causal LM's next-token logit (or a classifier's token) puts relevance on one position, which stays alone up
    to the last attention. (NaN rows count as live.)"""
    rows = s.reshape(-1, s.shape[-1])
    if rows.shape[0] < LIVE_MIN_ROWS or s.shape[0] > 1:  # several targets (every class) reach every sample
        return s @ w
    live = (rows.abs().amax(-1) != 0).nonzero().squeeze(1)  # amax: no underflow, NaN kept (any() is 5x slower)
    if live.numel() > LIVE_ROWS * rows.shape[0]:
        return s @ w
    out = rows.new_zeros((rows.shape[0], w.shape[1]))
    out.index_copy_(0, live, rows.index_select(0, live) @ w)
    return out.reshape(*s.shape[:-1], w.shape[1])


def _merge_batchnorm(
    weight: Tensor, bias: Tensor | None, g: Tensor | None, beta: Tensor | None, mean: Tensor, var: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    """``w' = w g / sigma``, ``b' = (b - mu) g / sigma + beta`` with ``sigma = sqrt(var + eps)`` (new tensors)."""
    scale = (var + eps).rsqrt()
    if g is not None:
        scale = scale * g.detach()
    shift = beta.detach() if beta is not None else torch.zeros_like(scale)
    bias = torch.zeros_like(scale) if bias is None else bias
    new_weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
    return new_weight, (bias - mean) * scale + shift
