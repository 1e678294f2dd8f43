"""The class grid: one row per sample with the input, the heatmap of its true (or predicted) class, of every class
and of "nothing", each under a title. Drawn as one image with Pillow, so its time grows linearly with the rows.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write
from .colormaps import heatmap, to_numpy, zoom
from .grids import as_images, as_input, check_labels, png_path

ZOOM = 3  # pixels per input pixel
GAP = 12  # pixels between two tiles of a row
TITLE = 15  # height of the title band above each tile
ROW_GAP = 6  # pixels between two rows
HEADING = 24  # height of the band above the first row
FONT = 10  # title font size in pixels
FRAME = (204, 204, 204)  # a thin frame, so that an all-neutral heatmap is still seen as one


def plot_classes(
    net: Any,
    x: Any,
    method: Any = "simple",
    path: str | Path = "classes.png",
    labels: Any = None,
    cmap: str = "heatmap",
) -> Path:
    """Writes a PNG with one row per sample of ``x``: the input, the heatmap of the true class (the predicted
    one without ``labels``), the heatmap of every class, and of "nothing" (zero relevance).

    All heatmaps of a row share one colour scale, so weakly explained classes look weak; titles give the
    true and predicted class and each class's score (logit), the predicted one in bold. One engine call with
    ``target="all"``. Returns the path written (``.png`` added if missing).
    """
    import torch

    from ..engine import lrp

    x = as_input(net, x)
    with torch.no_grad():
        logits = to_numpy(net(x), "logits")
    truth = check_labels(labels, *logits.shape)
    relevance = to_numpy(lrp(net, x, "all", method), "relevance")
    inputs = heatmap(as_images(x), "gray")
    rows = []
    for i, scores in enumerate(logits):
        label = int(scores.argmax() if truth is None else truth[i])
        rows.append(([inputs[i], *_class_row(relevance[i], label, cmap)], _row_titles(scores, truth, i, label)))
    heading = f"LRP {_method_name(method)}: rows share one colour scale; titles: class: logit"
    image = _draw(rows, heading)
    return atomic_write(png_path(path), lambda file: image.save(file, format="PNG"), in_memory=True)


def _class_row(relevance: np.ndarray, label: int, cmap: str) -> list[np.ndarray]:
    """One sample's heatmaps, one colour scale: the given class, every class, then "nothing" (all zero).

    Signed on every map (``symmetric``): 0 is the map's neutral colour, also for ``gray`` (mid-gray).
    """
    images = as_images(relevance, "relevance")
    stack = np.concatenate([images[label : label + 1], images, np.zeros_like(images[:1])])
    return list(heatmap(stack, cmap, normalize="batch", symmetric=True))


def _row_titles(logits: np.ndarray, truth: np.ndarray | None, i: int, label: int) -> list[tuple[str, bool]]:
    """``(title, bold)`` per tile: the prediction's own logit in bold."""
    predicted = int(logits.argmax())
    first = f"pred {predicted}" if truth is None else f"true {truth[i]}, pred {predicted}"
    which = "pred" if truth is None else "true"
    classes = [(f"{k}: {score:.2f}", k == predicted) for k, score in enumerate(logits)]
    return [(first, False), (f"{which} class {label}", False), *classes, ("nothing", False)]


def _method_name(method: Any) -> str:
    text = method if isinstance(method, str) else repr(method)
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def _font(bold: bool, size: int) -> Any:
    """DejaVu Sans as shipped with matplotlib; Pillow's own font where that file is missing."""
    import matplotlib
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)
    except OSError:
        return ImageFont.load_default()


def _draw(rows: list[tuple[list[np.ndarray], list[tuple[str, bool]]]], heading: str) -> Any:
    """Tiles ``(H, W, 3)`` in [0, 1] laid out row by row on white, each under its title; a heading on top."""
    from PIL import Image, ImageDraw

    height, width = (side * ZOOM for side in rows[0][0][0].shape[:2])
    columns = max(len(tiles) for tiles, _ in rows)
    row_height = TITLE + height + ROW_GAP
    canvas = np.full((HEADING + len(rows) * row_height, columns * (width + GAP) + GAP, 3), 255, dtype=np.uint8)
    for r, (tiles, _) in enumerate(rows):
        top = HEADING + r * row_height + TITLE
        for c, tile in enumerate(tiles):
            left = GAP + c * (width + GAP)
            canvas[top - 1 : top + height + 1, left - 1 : left + width + 1] = FRAME
            canvas[top : top + height, left : left + width] = np.round(np.clip(zoom(tile, ZOOM), 0, 1) * 255)
    image = Image.fromarray(canvas)
    pen = ImageDraw.Draw(image)
    pen.text((GAP, HEADING // 2), heading, fill=(0, 0, 0), font=_font(False, FONT + 1), anchor="lm")
    for r, (_, titles) in enumerate(rows):
        baseline = HEADING + r * row_height + TITLE - 3
        for c, (title, bold) in enumerate(titles):
            center = GAP + c * (width + GAP) + width // 2
            pen.text((center, baseline), title, fill=(0, 0, 0), font=_font(bold, FONT), anchor="ms")
    return image
