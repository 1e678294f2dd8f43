"""Colour maps for relevance and input images, and the pure array functions built on them.

NumPy only, no file I/O: arrays (or torch tensors) in, RGB float arrays in [0, 1] out. Every colour map
takes values in [-1, 1] -- relevance after normalisation by its largest magnitude -- so that 0 is the map's
neutral colour and the sign of the relevance decides the hue.

Image layout follows torch: ``(H, W)`` is one image, ``(C, H, W)`` one image with channels, and
``(..., C, H, W)`` a batch; channels are summed before colouring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import checks
from ..errors import InputError, SpecError

Stops = Sequence[tuple[float, tuple[float, float, float]]]
NORMALIZE = ("sample", "batch", "none")


def to_numpy(a: Any, what: str = "x") -> np.ndarray:
    """``a`` as a float64 NumPy array; torch tensors are detached and copied to the CPU (torch is not imported)."""
    if hasattr(a, "detach"):
        a = a.detach().to("cpu").double().numpy()
    try:
        array = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a NumPy array or torch tensor of numbers, got {type(a).__name__}") from None
    if not np.isfinite(array).all():
        raise InputError(f"{what} contains NaN or Inf values")
    return array


# -- colour maps: values in [-1, 1] -> RGB in [0, 1], shape (..., 3) --------------------------------


def _piecewise(stops: Stops) -> Callable[[np.ndarray], np.ndarray]:
    """A map that interpolates linearly between ``(value, (r, g, b))`` stops (values clipped to [-1, 1])."""
    positions = np.array([p for p, _ in stops])
    colors = np.array([c for _, c in stops])

    def cmap(v: np.ndarray) -> np.ndarray:
        v = np.clip(v, -1.0, 1.0)
        return np.stack([np.interp(v, positions, colors[:, k]) for k in range(3)], axis=-1)

    return cmap


def lrp_heatmap(v: np.ndarray) -> np.ndarray:
    """The classic asymmetric LRP map: 0 white, full red at +0.7, full blue at -0.2.

    ``p = clip(v, 0, 0.7) / 0.7``, ``m = clip(-v, 0, 0.2) / 0.2``; ``(r, g, b) = (1 - m, 1 - m - p, 1 - p)``.
    """
    p = np.clip(v, 0.0, 0.7) / 0.7
    m = np.clip(-v, 0.0, 0.2) / 0.2
    return np.stack([1.0 - m, 1.0 - m - p, 1.0 - p], axis=-1)


def gray(v: np.ndarray) -> np.ndarray:
    """Inputs: ``v * 0.5 + 0.5`` on all three channels (-1 black, 0 mid-gray, +1 white)."""
    level = np.clip(v, -1.0, 1.0) * 0.5 + 0.5
    return np.repeat(level[..., None], 3, axis=-1)


# heatmapping.org tutorial map: light gray (0.9) at 0, dark red (0.4, 0, 0) at +1, dark blue (0, 0, 0.4) at -1
tutorial = _piecewise(
    [
        (-1.0, (0.0, 0.0, 0.4)),
        (-0.3, (0.4, 0.4, 0.9)),
        (0.0, (0.9, 0.9, 0.9)),
        (0.3, (0.9, 0.4, 0.4)),
        (1.0, (0.4, 0.0, 0.0)),
    ]
)
# matplotlib's blue-white-red
bwr = _piecewise([(-1.0, (0.0, 0.0, 1.0)), (0.0, (1.0, 1.0, 1.0)), (1.0, (1.0, 0.0, 0.0))])
# matplotlib's seismic: dark blue, blue, white, red, dark red
seismic = _piecewise(
    [
        (-1.0, (0.0, 0.0, 0.3)),
        (-0.5, (0.0, 0.0, 1.0)),
        (0.0, (1.0, 1.0, 1.0)),
        (0.5, (1.0, 0.0, 0.0)),
        (1.0, (0.5, 0.0, 0.0)),
    ]
)
# cold (cyan, blue) for negative, black at 0, hot (red, yellow) for positive
coldnhot = _piecewise(
    [
        (-1.0, (0.0, 1.0, 1.0)),
        (-0.5, (0.0, 0.0, 1.0)),
        (0.0, (0.0, 0.0, 0.0)),
        (0.5, (1.0, 0.0, 0.0)),
        (1.0, (1.0, 1.0, 0.0)),
    ]
)

COLORMAPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "heatmap": lrp_heatmap,
    "tutorial": tutorial,
    "bwr": bwr,
    "seismic": seismic,
    "coldnhot": coldnhot,
    "gray": gray,
}


def colormap(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The colour map called ``name``; :class:`SpecError` listing the known names otherwise."""
    if not isinstance(name, str) or name not in COLORMAPS:
        raise SpecError(f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}")
    return COLORMAPS[name]


def neutral(name: str) -> np.ndarray:
    """The colour a map gives to 0 (white for heatmap/bwr/seismic, 0.9 gray for tutorial, black for coldnhot)."""
    return colormap(name)(np.zeros(()))


# -- images, normalisation, heatmaps ----------------------------------------------------------------


def channel_sum(a: np.ndarray, what: str = "relevance") -> np.ndarray:
    """``(H, W)`` stays; ``(C, H, W)`` and ``(..., C, H, W)`` are summed over ``C`` to ``(..., H, W)``."""
    if a.ndim < 2:
        raise InputError(f"{what} has shape {a.shape}; expected an image (H, W), (C, H, W) or a batch (N, C, H, W)")
    if a.ndim == 2:
        return a
    return a.sum(axis=-3)


def normalize(
    images: np.ndarray, symmetric: bool = True, per: str = "sample", batch_dims: int | None = None
) -> np.ndarray:
    """Scales ``(..., H, W)`` images to [-1, 1].

    ``symmetric``: ``v = R / max|R|`` (0 stays 0); otherwise ``v = 2 (R - min) / (max - min) - 1``.
    ``per``: ``"sample"`` (each image on its own), ``"batch"`` (one scale for all) or ``"none"`` (``R`` is
    taken as already scaled and clipped). An all-zero (or constant) image maps to 0, never NaN.
    """
    if per not in NORMALIZE:
        raise SpecError(f"normalize must be one of {', '.join(NORMALIZE)}, got {per!r}")
    if per == "none":
        return np.clip(images, -1.0, 1.0)
    axes = (-2, -1) if per == "sample" else None
    if symmetric:
        scale = np.abs(images).max(axis=axes, keepdims=True)
        return np.divide(images, scale, out=np.zeros_like(images), where=scale > 0)
    low, high = images.min(axis=axes, keepdims=True), images.max(axis=axes, keepdims=True)
    return np.divide(2.0 * (images - low), high - low, out=np.ones_like(images), where=high > low) - 1.0


def _gray_image(image: Any) -> np.ndarray:
    """An input image (any layout of :func:`channel_sum`) as gray levels in [0, 1], min..max per image."""
    levels = normalize(channel_sum(to_numpy(image, "overlay"), "overlay"), symmetric=False)
    return levels * 0.5 + 0.5


def heatmap(
    relevance: Any,
    cmap: str = "heatmap",
    symmetric: bool | None = None,
    normalize: str = "sample",
    overlay: Any = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Colours relevance: ``(H, W)``/``(C, H, W)`` -> ``(H, W, 3)``, ``(..., C, H, W)`` -> ``(..., H, W, 3)``.

    Channels are summed, values scaled to [-1, 1] (see :func:`normalize`; ``normalize="batch"`` puts all
    images on one scale), then coloured with ``cmap`` (one of :data:`COLORMAPS`). ``symmetric`` defaults to
    True, except for ``"gray"``, which spans each image's min..max. ``overlay``: an input image of the same
    height and width, drawn in gray under the heatmap: ``rgb = (1 - alpha) gray + alpha heatmap``.
    """
    colors = colormap(cmap)
    symmetric = cmap != "gray" if symmetric is None else symmetric
    values = _normalize(channel_sum(to_numpy(relevance, "relevance")), symmetric, normalize)
    rgb = colors(values)
    if overlay is None:
        return rgb
    if not 0.0 <= alpha <= 1.0:
        raise SpecError(f"alpha must be in [0, 1], got {alpha!r}")
    under = _gray_image(overlay)
    try:
        under = np.broadcast_to(under, values.shape)
    except ValueError:
        raise InputError(f"overlay has images of shape {under.shape}, relevance {values.shape}") from None
    return (1.0 - alpha) * under[..., None] + alpha * rgb


_normalize = normalize  # heatmap's argument shadows the function name


# -- grids ----------------------------------------------------------------------------------------


def zoom(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of ``(..., H, W, 3)`` images by an integer ``factor``."""
    checks.positive_int(factor, "zoom")
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def grid_shape(count: int, ncols: int | None = None) -> tuple[int, int]:
    """``(rows, cols)`` for ``count`` images: ``ncols`` columns (default ``ceil(sqrt(count))``), at most ``count``."""
    if count < 1:
        raise InputError("cannot draw a grid of 0 images")
    if ncols is None:
        ncols = math.ceil(math.sqrt(count))
    ncols = checks.positive_int(ncols, "ncols")
    cols = min(ncols, count)
    return math.ceil(count / cols), cols


def grid(images: np.ndarray, ncols: int | None = None, pad: int = 1, fill: float | Sequence[float] = 1.0) -> np.ndarray:
    """Tiles ``(N, H, W, 3)`` images row by row into one ``(rows*H + (rows-1)*pad, ..., 3)`` image.

    ``pad`` pixels of colour ``fill`` separate the tiles; cells left over in the last row are ``fill`` too.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"grid needs RGB images (N, H, W, 3), got shape {images.shape}")
    checks.integer(pad, "pad", minimum=0)
    count, height, width, _ = images.shape
    rows, cols = grid_shape(count, ncols)
    canvas = np.empty((rows * (height + pad) - pad, cols * (width + pad) - pad, 3))
    canvas[...] = np.asarray(fill, dtype=np.float64)
    for k, image in enumerate(images):
        top, left = (k // cols) * (height + pad), (k % cols) * (width + pad)
        canvas[top : top + height, left : left + width] = image
    return canvas
