"""The weighted layers of the NumPy reference, written out with loops: each offers the two passes of the rules.

``forward_with(a, w, b=None)`` is step 1's pass with (modified) weights, ``backward_with(s, w)`` step 3's
transposed pass. Arrays carry the batch first. A convolution loops over the kernel offsets ``(di, dj)``: the
slice of the padded input at that offset, stepped by the stride, holds for every output pixel the input that
sits there in its window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True, eq=False, repr=False)
class Linear:
    """``z = a w^T + b`` on the last dimension, ``w`` of shape ``(out, in)``."""

    weight: Array
    bias: Array | None

    def forward(self, a: Array) -> Array:
        return self.forward_with(a, self.weight, self.bias)

    def forward_with(self, a: Array, w: Array, b: Array | None = None) -> Array:
        z = a @ w.T
        return z if b is None else z + b

    def backward_with(self, s: Array, w: Array) -> Array:
        return s @ w

    def spread(self, b: Array, z: Array) -> Array:
        """The bias broadcast against an output ``z``."""
        return b

    def __repr__(self) -> str:
        return f"Linear(in={self.weight.shape[1]}, out={self.weight.shape[0]})"


@dataclass(frozen=True, eq=False, repr=False)
class Conv:
    """2-D cross-correlation, ``w`` of shape ``(out, in / groups, kh, kw)``, with stride, zero padding, dilation."""

    weight: Array
    bias: Array | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_size: tuple[int, int]  # (H, W) of the input, which the transposed pass restores
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def forward(self, a: Array) -> Array:
        return self.forward_with(a, self.weight, self.bias)

    def _windows(self, rows: int, cols: int) -> list[tuple[int, int, tuple[slice, ...]]]:
        """Per kernel offset: ``(di, dj, index)``; ``padded_input[index]`` is ``(N, C, rows, cols)``."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        found = []
        for di in range(self.weight.shape[2]):
            for dj in range(self.weight.shape[3]):
                i, j = di * dh, dj * dw
                index = (
                    slice(None),
                    slice(None),
                    slice(i, i + sh * (rows - 1) + 1, sh),
                    slice(j, j + sw * (cols - 1) + 1, sw),
                )
                found.append((di, dj, index))
        return found

    def out_size(self) -> tuple[int, int]:
        sizes = []
        for d in range(2):
            span = self.dilation[d] * (self.weight.shape[2 + d] - 1) + 1
            sizes.append((self.in_size[d] + 2 * self.padding[d] - span) // self.stride[d] + 1)
        return sizes[0], sizes[1]

    def forward_with(self, a: Array, w: Array, b: Array | None = None) -> Array:
        (ph, pw), g = self.padding, self.groups
        a = np.pad(a, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # padding positions hold 0: they contribute nothing
        rows, cols = self.out_size()
        n, c = a.shape[:2]
        wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])  # (groups, out / g, in / g, kh, kw)
        z = np.zeros((n, g, wg.shape[1], rows, cols), dtype=a.dtype)
        for di, dj, index in self._windows(rows, cols):
            patch = a[index].reshape(n, g, c // g, rows, cols)
            z += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, di, dj])
        z = z.reshape(n, -1, rows, cols)
        return z if b is None else z + b[:, None, None]

    def backward_with(self, s: Array, w: Array) -> Array:
        (ph, pw), g = self.padding, self.groups
        h, wd = self.in_size
        n, rows, cols = s.shape[0], s.shape[2], s.shape[3]
        wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
        sg = s.reshape(n, g, wg.shape[1], rows, cols)
        c = np.zeros((n, w.shape[1] * g, h + 2 * ph, wd + 2 * pw), dtype=s.dtype)
        for di, dj, index in self._windows(rows, cols):
            part = np.einsum("ngohw,goc->ngchw", sg, wg[:, :, :, di, dj])
            c[index] += part.reshape(n, -1, rows, cols)
        return c[:, :, ph : ph + h, pw : pw + wd]  # the padding's share is dropped

    def spread(self, b: Array, z: Array) -> Array:
        return b[:, None, None]

    def __repr__(self) -> str:
        o, i, kh, kw = self.weight.shape
        kernel = kh if kh == kw else (kh, kw)
        extra = f", groups={self.groups}" if self.groups > 1 else ""
        stride = self.stride[0] if self.stride[0] == self.stride[1] else self.stride
        padding = self.padding[0] if self.padding[0] == self.padding[1] else self.padding
        return f"Conv(in={i * self.groups}, out={o}, kernel={kernel}, stride={stride}, padding={padding}{extra})"
