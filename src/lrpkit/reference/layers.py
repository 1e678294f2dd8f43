"""The layers of the NumPy reference: each has ``forward(a)`` and ``relevance(a, R, ...)``.

Arrays carry the batch first: ``(N, D)`` vectors or ``(N, C, H, W)`` images. ``relevance`` gets the layer's
input ``a`` and the relevance ``R`` of its output and returns the relevance of its input (shape of ``a``).
Windows (convolution, pooling) are handled by a loop over the kernel offsets ``(di, dj)``: the slice
``a[:, :, di::stride, dj::stride]`` of the right length holds, for every output pixel, the input that sits
at that offset of its window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..rules import Rule
from . import rules
from .rules import stab

Array = np.ndarray


@dataclass(frozen=True)
class Options:
    """Per-call settings: the rule of this layer (weighted layers), zB default bounds, max-pool mode."""

    rule: Rule | None = None
    bounds: tuple[Any, Any] = (-1.0, 1.0)
    maxpool: str = "winner"


class Layer:
    """A layer without weights that passes relevance through unchanged (reshaped to the input)."""

    def forward(self, a: Array) -> Array:
        return a

    def relevance(self, a: Array, R: Array, options: Options) -> Array:
        return R.reshape(a.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Layer):
    """``NoFormat`` and ``Dropout`` (outside training): ``a -> a``."""


@dataclass(frozen=True, eq=False, repr=False)
class Format(Layer):
    """``x -> x * (high - low) + low``; relevance passes through."""

    low: float
    high: float

    def forward(self, a: Array) -> Array:
        return a * (self.high - self.low) + self.low

    def __repr__(self) -> str:
        return f"Format(low={self.low}, high={self.high})"


class ReLU(Layer):
    """``max(a, 0)``; relevance passes through."""

    def forward(self, a: Array) -> Array:
        return np.maximum(a, 0)


class Flatten(Layer):
    """``(N, ...) -> (N, D)``; relevance is reshaped back."""

    def forward(self, a: Array) -> Array:
        return a.reshape(a.shape[0], -1)


@dataclass(frozen=True, eq=False, repr=False)
class Pad(Layer):
    """Pads the image by ``pixels`` on every side with ``value``; the border's relevance is dropped (cropped)."""

    pixels: int
    value: float

    def forward(self, a: Array) -> Array:
        p = self.pixels
        return np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.value)

    def relevance(self, a: Array, R: Array, options: Options) -> Array:
        p = self.pixels
        return R[:, :, p : R.shape[2] - p, p : R.shape[3] - p]

    def __repr__(self) -> str:
        return f"Pad(pixels={self.pixels}, value={self.value})"


# -- windows ------------------------------------------------------------------------------------


def out_size(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def window(a: Array, di: int, dj: int, rows: int, cols: int, stride: int) -> tuple[slice, ...]:
    """The index of the inputs at offset ``(di, dj)`` of every window: shape ``(N, C, rows, cols)``."""
    return (
        slice(None),
        slice(None),
        slice(di, di + stride * (rows - 1) + 1, stride),
        slice(dj, dj + stride * (cols - 1) + 1, stride),
    )


def offsets(kernel: int) -> list[tuple[int, int]]:
    """Kernel offsets in row-major order (the order in which ties of max pooling are broken)."""
    return [(di, dj) for di in range(kernel) for dj in range(kernel)]


# -- weighted layers ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Linear(Layer):
    """``z = a w^T + b`` with ``w`` of shape ``(out, in)``; an input of shape ``in_shape`` (e.g. an image) is
    flattened first, and the transposed pass gives it back that shape."""

    weight: Array
    bias: Array
    in_shape: tuple[int, ...] | None = None  # None: (in,)

    def forward(self, a: Array) -> Array:
        return self.forward_with(a, self.weight, self.bias)

    def forward_with(self, a: Array, w: Array, b: Array | None = None) -> Array:
        z = a.reshape(a.shape[0], -1) @ w.T
        return z if b is None else z + b

    def backward_with(self, s: Array, w: Array) -> Array:
        return (s @ w).reshape(s.shape[0], *(self.in_shape or w.shape[1:]))

    def relevance(self, a: Array, R: Array, options: Options) -> Array:
        return rules.apply(self, a, R, options.rule, options.bounds)

    def __repr__(self) -> str:
        return f"Linear(in={self.weight.shape[1]}, out={self.weight.shape[0]})"


@dataclass(frozen=True, eq=False, repr=False)
class Conv(Layer):
    """2-D cross-correlation, ``w`` of shape ``(out, in, k, k)``, with stride and zero padding.

    ``forward_with`` sums, over the kernel offsets, the input slice at that offset times ``w[:, :, di, dj]``;
    ``backward_with`` (its transpose) scatters ``w[:, :, di, dj]^T s`` back onto the same slices.
    """

    weight: Array
    bias: Array
    stride: int
    padding: int
    in_size: tuple[int, int]  # (H, W) of the input, which the transposed pass restores

    def forward(self, a: Array) -> Array:
        return self.forward_with(a, self.weight, self.bias)

    def forward_with(self, a: Array, w: Array, b: Array | None = None) -> Array:
        p, k = self.padding, w.shape[2]
        a = np.pad(a, ((0, 0), (0, 0), (p, p), (p, p)))  # padding positions hold 0: they contribute nothing
        rows, cols = out_size(a.shape[2], k, self.stride), out_size(a.shape[3], k, self.stride)
        z = np.zeros((a.shape[0], w.shape[0], rows, cols), dtype=a.dtype)
        for di, dj in offsets(k):
            patch = a[window(a, di, dj, rows, cols, self.stride)]
            z += np.einsum("nchw,oc->nohw", patch, w[:, :, di, dj])
        return z if b is None else z + b[:, None, None]

    def backward_with(self, s: Array, w: Array) -> Array:
        p, k = self.padding, w.shape[2]
        h, wd = self.in_size
        c = np.zeros((s.shape[0], w.shape[1], h + 2 * p, wd + 2 * p), dtype=s.dtype)
        for di, dj in offsets(k):
            c[window(c, di, dj, s.shape[2], s.shape[3], self.stride)] += np.einsum("nohw,oc->nchw", s, w[:, :, di, dj])
        return c[:, :, p : p + h, p : p + wd]  # the padding's share is dropped

    def relevance(self, a: Array, R: Array, options: Options) -> Array:
        return rules.apply(self, a, R, options.rule, options.bounds)

    def __repr__(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"Conv(in={i}, out={o}, kernel={k}, stride={self.stride}, padding={self.padding})"


# -- pooling ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Pool(Layer):
    """A pooling layer: ``kernel`` x ``kernel`` windows, ``stride`` apart, no padding."""

    kernel: int
    stride: int

    def slices(self, a: Array) -> list[tuple[slice, ...]]:
        """One index per kernel offset; ``a[index]`` has the output's shape."""
        rows, cols = out_size(a.shape[2], self.kernel, self.stride), out_size(a.shape[3], self.kernel, self.stride)
        return [window(a, di, dj, rows, cols, self.stride) for di, dj in offsets(self.kernel)]

    def window_sum(self, a: Array) -> Array:
        return sum(a[idx] for idx in self.slices(a))

    def proportional(self, a: Array, R: Array, divisor: int) -> Array:
        """``R_i = a_i * d/da_i (sum_j z_j s_j)`` with ``z = window sum / divisor``, ``s = R / stab(z)``."""
        z = stab(self.window_sum(a) / divisor)  # step 1: z = pool(a)
        s = R / z  # step 2: s = R / z
        c = np.zeros_like(a)
        for idx in self.slices(a):  # step 3: c_i = sum_j dz_j/da_i s_j, over the windows j that hold i
            c[idx] += s / divisor
        return a * c  # step 4: R = a * c

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel={self.kernel}, stride={self.stride})"


class SumPool(Pool):
    """lrpkit's sum pooling: ``z_j = sum of window j / kernel``; relevance proportional."""

    def forward(self, a: Array) -> Array:
        return self.window_sum(a) / self.kernel

    def relevance(self, a: Array, R: Array, options: Options) -> Array:
        return self.proportional(a, R, self.kernel)


class AvgPool(Pool):
    """Average pooling: ``z_j = sum of window j / kernel²``; relevance proportional."""

    def forward(self, a: Array) -> Array:
        return self.window_sum(a) / self.kernel**2

    def relevance(self, a: Array, R: Array, options: Options) -> Array:
        return self.proportional(a, R, self.kernel**2)


class MaxPool(Pool):
    """Max pooling; relevance winner-take-all (ties: the first in row-major order) or, with
    ``maxpool="proportional"``, proportional to the inputs as for a plain sum over each window."""

    def forward(self, a: Array) -> Array:
        return np.max(np.stack([a[idx] for idx in self.slices(a)]), axis=0)

    def relevance(self, a: Array, R: Array, options: Options) -> Array:
        if options.maxpool == "proportional":
            return self.proportional(a, R, 1)
        winner = np.argmax(np.stack([a[idx] for idx in self.slices(a)]), axis=0)  # the first maximum wins
        out = np.zeros_like(a)
        for k, idx in enumerate(self.slices(a)):
            out[idx] += np.where(winner == k, R, 0)
        return out
