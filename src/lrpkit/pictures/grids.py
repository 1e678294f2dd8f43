"""Pictures: heatmap grids (``visualize``) and first-layer filters (``plot_filters``); see ``classes`` for the grid
of every class.

The colouring is done by the pure functions of :mod:`lrpkit.colormaps`; this module adds the layouts and the
files. Every file is written to a temporary name in the target directory and renamed into place, so a
reader never sees half a PNG. torch and matplotlib are imported only inside the functions that need them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SpecError, TargetError
from ..files import atomic_write
from .colormaps import grid, heatmap, to_numpy, zoom

GRID_FILL = 0.7  # separator gray: visible next to white (heatmap), light gray (tutorial) and black (coldnhot)
FILTER_FILL = (0.6, 0.75, 0.95)  # separators of the filter grid: a hue, as every gray is a weight


# -- files ------------------------------------------------------------------------------------------


def png_path(path: str | Path) -> Path:
    """``path`` with ``.png`` appended unless it already ends in ``.png`` (never ``.png.png``)."""
    path = Path(path)
    return path if path.suffix.lower() == ".png" else path.with_name(path.name + ".png")


def write_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Writes an ``(H, W, 3)`` RGB array with values in [0, 1] as an 8-bit PNG; returns the path written."""
    from PIL import Image

    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise InputError(f"write_png needs an RGB image (H, W, 3), got shape {rgb.shape}")
    pixels = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    image = Image.fromarray(pixels)
    return atomic_write(png_path(path), lambda file: image.save(file, format="PNG"), in_memory=True)


def save_figure(figure: Any, path: str | Path, dpi: int = 100) -> Path:
    """Renders a matplotlib ``Figure`` with the Agg canvas into a PNG file (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    return atomic_write(png_path(path), lambda file: figure.savefig(file, format="png", dpi=dpi), in_memory=True)


# -- batches of images ------------------------------------------------------------------------------


def as_images(x: Any, what: str = "x") -> np.ndarray:
    """A batch as ``(N, C, H, W)``: from ``(N, C, H, W)``, ``(N, H, W)``, or ``(N, D)`` with ``D`` a square."""
    array = to_numpy(x, what)
    if array.ndim == 4:
        return array
    if array.ndim == 3:
        return array[:, None]
    side = math.isqrt(array.shape[1]) if array.ndim == 2 else 0
    if array.ndim != 2 or side * side != array.shape[1]:
        raise InputError(
            f"{what} has shape {array.shape}; expected a batch (N, C, H, W), (N, H, W) or (N, D) with D a "
            f"square number such as 784 (for one image use x[None])"
        )
    return array.reshape(len(array), 1, side, side)


def _images_and_columns(x: Any, overlay: Any) -> tuple[np.ndarray, Any, int | None]:
    """Flattens ``(N, K, C, H, W)`` (e.g. every class at once) to ``N*K`` images in rows of ``K``."""
    array = to_numpy(x, "x")
    if array.ndim != 5:
        return as_images(array), overlay, None
    count, columns = array.shape[:2]
    if overlay is not None:
        overlay = np.repeat(as_images(overlay, "overlay"), columns, axis=0)
    return array.reshape(count * columns, *array.shape[2:]), overlay, columns


def visualize(
    x: Any,
    cmap: str | Callable[[np.ndarray], np.ndarray],
    path: str | Path,
    ncols: int | None = None,
    *,
    normalize: str = "sample",
    symmetric: bool | None = None,
    overlay: Any = None,
    alpha: float = 0.5,
    zoom: int = 1,
    pad: int = 1,
    fill: float | tuple[float, float, float] = GRID_FILL,
) -> Path:
    """Writes a PNG grid of any number of images; ``x`` as in :func:`as_images`, or ``(N, K, C, H, W)``.

    ``cmap``: a colour map name (``"gray"`` for inputs, ``"heatmap"``, ``"tutorial"``, ...) or a function
    from the ``(N, C, H, W)`` batch to ``(N, H, W, 3)`` RGB (e.g. ``lrpkit.heatmap``). ``ncols`` defaults to
    ``ceil(sqrt(N))`` (to ``K`` for 5-D input: one row per sample). The other options go to
    :func:`lrpkit.heatmap`; ``zoom`` enlarges every pixel; ``pad`` pixels of colour ``fill`` separate the images.
    Returns the path written (``.png`` added if missing).
    """
    images, overlay, columns = _images_and_columns(x, overlay)
    if callable(cmap):
        rgb = np.asarray(cmap(images), dtype=np.float64)
        if rgb.shape != (*images.shape[:1], *images.shape[2:], 3):
            raise InputError(f"the colour function returned shape {rgb.shape} for images of shape {images.shape}")
    else:
        if overlay is not None:
            overlay = as_images(overlay, "overlay")
        rgb = heatmap(images, cmap, symmetric=symmetric, normalize=normalize, overlay=overlay, alpha=alpha)
    return write_png(grid(_zoom(rgb, zoom), ncols or columns, pad, fill), path)


_zoom = zoom  # visualize's argument shadows the function name


# -- networks: inputs, explanations, first layers ----------------------------------------------------


def as_input(net: Any, x: Any) -> Any:
    """``x`` as a tensor with the dtype and device of ``net``'s parameters."""
    import torch

    param = next(net.parameters(), None)
    options = {"dtype": param.dtype, "device": param.device} if param is not None else {}
    if isinstance(x, torch.Tensor):
        return x.detach().to(**options)
    return torch.as_tensor(to_numpy(x, "x"), **options)


def check_labels(labels: Any, count: int, classes: int) -> np.ndarray | None:
    if labels is None:
        return None
    values = np.asarray(to_numpy(labels, "labels")).reshape(-1)
    if len(values) != count or np.any(values != np.round(values)) or values.min() < 0 or values.max() >= classes:
        raise TargetError(f"labels must be {count} class ids in 0..{classes - 1}, got {np.asarray(labels)!r}")
    return values.astype(np.int64)


def _first_weighted(net: Any) -> tuple[Any, tuple[int, ...] | None]:
    """The first Linear/Conv2d module and the shape of its input (None where the model does not say)."""
    from torch import nn

    if hasattr(net, "weighted_indices") and hasattr(net, "shapes"):
        indices = net.weighted_indices
        if indices:
            return net.body[indices[0]], tuple(net.shapes[indices[0]])
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return module, None
    raise SpecError(f"{type(net).__name__} has no Linear or Conv2d layer, so it has no first-layer filters")


def first_layer_filters(net: Any) -> np.ndarray:
    """The first weighted layer's filters as images ``(K, h, w)``.

    Conv: each filter averaged over its input channels. Linear: each unit's weights reshaped to the input
    image (averaged over channels), using the network's input shape or a square ``D``.
    """
    from torch import nn

    module, shape = _first_weighted(net)
    weight = to_numpy(module.weight, "weight")
    if isinstance(module, nn.Conv2d):
        return weight.mean(axis=1)
    if shape is not None and len(shape) == 3 and math.prod(shape) == weight.shape[1]:
        return weight.reshape(len(weight), *shape).mean(axis=1)
    side = math.isqrt(weight.shape[1])
    if side * side != weight.shape[1]:
        raise SpecError(
            f"the first layer is Linear with {weight.shape[1]} inputs, which is neither the network's image shape "
            f"{shape} nor a square image; its weights cannot be drawn as images"
        )
    return weight.reshape(len(weight), side, side)


def shared_gray(filters: np.ndarray) -> np.ndarray:
    """``(K, h, w)`` -> ``(K, h, w, 3)`` gray on one scale: the minimum over all filters black, the maximum white."""
    low, high = filters.min(), filters.max()
    levels = (filters - low) / (high - low) if high > low else np.full_like(filters, 0.5)
    return np.repeat(levels[..., None], 3, axis=-1)


def plot_filters(net: Any, path: str | Path, ncols: int | None = None, zoom: int | None = None) -> Path:
    """Writes a PNG grid of :func:`first_layer_filters` on one shared gray scale (see :func:`shared_gray`).

    ``zoom`` defaults to a factor that makes each filter at least 56 pixels tall.
    """
    filters = first_layer_filters(net)
    factor = zoom if zoom is not None else max(1, math.ceil(56 / filters.shape[1]))
    return write_png(grid(_zoom(shared_gray(filters), factor), ncols, pad=2, fill=FILTER_FILL), path)
