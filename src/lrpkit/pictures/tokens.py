"""Tokens coloured by their relevance: one self-contained HTML page, or a PNG with the text wrapped into lines.

``token_colors`` is pure (tokens and relevance in, one RGB colour per token out): each token's relevance is
divided by the largest ``|R|`` of the sequence and coloured by a colour map (``bwr`` by default: red for
evidence for the target, blue against, white for none). ``write_tokens_html`` and ``write_tokens_png`` write them,
atomically; the PNG wraps at ``width`` pixels, so 500 tokens make a readable page rather than one long line.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..files import atomic_write
from .colormaps import colormap, to_numpy


def token_colors(relevance: Any, cmap: str = "bwr") -> np.ndarray:
    """``(L,)`` relevance -> ``(L, 3)`` RGB in [0, 1], scaled by the sequence's largest ``|R|`` (zeros: neutral)."""
    R = np.asarray(to_numpy(relevance, "relevance"), dtype=np.float64)
    if R.ndim != 1:
        raise InputError(f"token relevance must be one value per token (L,), got shape {R.shape}")
    scale = np.abs(R).max(initial=0.0)
    return colormap(cmap)(R / scale if scale > 0 else R)


def _check(tokens: Sequence[str], relevance: Any) -> np.ndarray:
    R = np.asarray(to_numpy(relevance, "relevance"), dtype=np.float64).reshape(-1)
    if len(tokens) != len(R):
        raise InputError(f"{len(tokens)} tokens but {len(R)} relevance values")
    return R


def tokens_html(tokens: Sequence[str], relevance: Any, cmap: str = "bwr", title: str = "") -> str:
    """A self-contained HTML page: each token on its colour, its relevance in the tooltip."""
    R = _check(tokens, relevance)
    spans = []
    for token, value, rgb in zip(tokens, R, token_colors(R, cmap), strict=True):
        color = "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb)
        text = html.escape(token).replace("\n", "&#9166;<br>")
        spans.append(f'<span style="background:{color}" title="{value:.4g}">{text}</span>')
    head = f"<h3>{html.escape(title)}</h3>" if title else ""
    style = "body{font-family:monospace;line-height:1.8;max-width:60em;white-space:pre-wrap}span{padding:1px 0}"
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title or "relevance")}</title>'
            f"<style>{style}</style></head><body>{head}<p>{''.join(spans)}</p></body></html>\n")  # fmt: skip


def write_tokens_html(
    tokens: Sequence[str], relevance: Any, path: str | Path, cmap: str = "bwr", title: str = ""
) -> Path:
    page = tokens_html(tokens, relevance, cmap, title).encode()
    return atomic_write(path, lambda file: file.write(page))


def write_tokens_png(
    tokens: Sequence[str], relevance: Any, path: str | Path, cmap: str = "bwr", width: int = 1000, size: int = 16
) -> Path:
    """The tokens wrapped into lines of ``width`` pixels, each on its colour (``size``: font size in pixels)."""
    from PIL import Image, ImageDraw, ImageFont

    R = _check(tokens, relevance)
    font = ImageFont.load_default(size=size)
    colors = token_colors(R, cmap)
    boxes, x, y, line = [], 4, 4, size + 6
    for token in tokens:
        text = token.replace("\n", "⏎")
        w = max(int(font.getlength(text)), 2)
        if x + w > width - 4 and x > 4:
            x, y = 4, y + line
        boxes.append((x, y, text, w))
        x += w
    image = Image.new("RGB", (width, y + line + 4), "white")
    draw = ImageDraw.Draw(image)
    for (x, y, text, w), rgb in zip(boxes, colors, strict=True):
        draw.rectangle((x, y, x + w, y + line - 2), fill=tuple(round(float(c) * 255) for c in rgb))
        draw.text((x, y + 1), text, fill="black", font=font)
    path = Path(path) if str(path).lower().endswith(".png") else Path(f"{path}.png")
    return atomic_write(path, lambda file: image.save(file, format="PNG"))
