"""Everything ``lrpkit explain`` writes: input grid, heatmap grids, class grid, raw relevance, conservation error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError
from ..files import atomic_write
from .classes import plot_classes
from .colormaps import colormap, to_numpy
from .grids import as_input, check_labels, visualize

TARGET_WORDS = ("true", "pred", "all", "none")


@dataclass(frozen=True, repr=False)
class Explained:
    """What :func:`explain_to_files` wrote, the raw input relevance, and the conservation error per map.

    ``start``: the relevance the method starts from, ``R_top`` = the target's logit (its ReLU for
    ``deeptaylor``), per sample (``(N, C)`` for ``target="all"``); ``conservation_error = |sum(heatmap) - R_top|``.
    """

    files: tuple[Path, ...]
    relevance: np.ndarray
    start: np.ndarray
    conservation_error: np.ndarray

    def relative_error(self) -> float:
        """The largest conservation error divided by the largest ``|R_top|`` (0 when nothing is explained)."""
        scale = np.abs(self.start).max(initial=0.0)
        return float(self.conservation_error.max(initial=0.0) / scale) if scale > 0 else 0.0

    def __repr__(self) -> str:
        return (
            f"Explained({len(self.files)} files, relevance {self.relevance.shape}, max conservation error "
            f"{self.conservation_error.max(initial=0.0):.3g})"
        )


def parse_target(target: Any, classes: int) -> str | int | None:
    """``"true"``, ``"pred"``, ``"all"``, ``"none"``/None, or a class index in ``0..classes-1`` (int or digits)."""
    if target is None or target == "none":
        return None
    if isinstance(target, str) and target in TARGET_WORDS:
        return target
    if isinstance(target, str) and target.strip().isdigit():
        target = int(target)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < classes:
        words = ", ".join(TARGET_WORDS)
        raise TargetError(f"target must be one of {words} or a class 0..{classes - 1}, got {target!r}")
    return int(target)


def _stem(target: str | int | None) -> str:
    names = {"true": "correct_class", "pred": "predicted_class", "all": "all_classes", None: "nothing"}
    return names.get(target, f"class_{target}")  # type: ignore[arg-type]


def _heatmap_files(relevance: np.ndarray, target: str | int | None, out: Path, cmap: str, zoom: int) -> list[Path]:
    """One grid per explained class: ``class_K.png`` for every K ("all"), else one file named after the target."""
    ncols = min(len(relevance), 10)
    if target != "all":
        return [visualize(relevance, cmap, out / f"{_stem(target)}.png", ncols, zoom=zoom, symmetric=True)]
    return [
        visualize(relevance[:, k], cmap, out / f"class_{k}.png", ncols, zoom=zoom, symmetric=True)
        for k in range(relevance.shape[1])
    ]


def write_npy(array: np.ndarray, path: str | Path) -> Path:
    """Saves ``array`` as a ``.npy`` file, atomically."""
    return atomic_write(path, lambda file: np.save(file, array, allow_pickle=False), in_memory=True)


def explain_to_files(
    net: Any,
    x: Any,
    method: Any,
    target: Any,
    out: str | Path,
    labels: Any = None,
    cmap: str = "heatmap",
    zoom: int = 3,
    class_grid: bool = True,
    progress: bool | None = False,
) -> Explained:
    """Explains ``x`` for ``target`` and writes into ``out``: ``x.png`` (inputs), the heatmap grid(s), the raw
    relevance (``.npy``, float64) and, with ``class_grid``, ``classes.png`` (:func:`plot_classes`).

    ``target``: ``"true"`` (needs ``labels``; ``correct_class.png``), ``"pred"`` (``predicted_class.png``),
    ``"all"`` (``class_0.png`` ...), ``"none"`` (``nothing.png``) or a class K (``class_K.png``). Heatmaps keep
    the sign of the relevance in every colour map (0 is the map's neutral colour; mid-gray for ``gray``).
    ``progress``: a bar over the stages (None: on a terminal or in a notebook).
    """
    import torch

    from ..engine import conservation_gap, layerwise_lrp
    from ..progress import bar

    colormap(cmap)  # unknown names fail before the work
    x, out = as_input(net, x), Path(out)
    with torch.no_grad():
        shape = tuple(net(x).shape)
    truth = check_labels(labels, *shape)
    target = parse_target(target, shape[1])
    if target == "true" and truth is None:
        raise TargetError("target 'true' needs the true labels (labels=...)")
    engine_target = torch.as_tensor(truth, device=x.device) if target == "true" else target
    with bar(None, "explain", progress, total=4 if class_grid else 3) as stages:
        layers = layerwise_lrp(net, x, engine_target, method)
        relevance, start = to_numpy(layers[0], "relevance"), to_numpy(layers[-1], "relevance").sum(axis=-1)
        gap = to_numpy(conservation_gap(layers[0], layers[-1]), "conservation gap")
        stages.update()
        files = [visualize(x, "gray", out / "x.png", min(len(x), 10), zoom=zoom)]
        files += _heatmap_files(relevance, target, out, cmap, zoom)
        stages.update()
        files.append(write_npy(relevance, out / f"{_stem(target)}.npy"))
        stages.update()
        if class_grid:
            files.append(plot_classes(net, x, method, out / "classes.png", labels=truth, cmap=cmap))
            stages.update()
    return Explained(tuple(files), relevance, start, gap)
