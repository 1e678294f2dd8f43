"""Tokens coloured by their relevance: one self-contained HTML page, or a PNG with the text wrapped into lines.

``token_colors`` and ``tokens_image`` are pure (tokens and relevance in, colours or an RGB array out): each token's
relevance is divided by the largest ``|R|`` of the sequence and coloured by a colour map (``bwr`` by default: red
for evidence for the target, blue against, white for none). ``write_tokens_html`` and ``write_tokens_png`` write
them, atomically. Tokens are shown as given (pass ``" word"`` where a space belongs, as GPT-2's tokens carry it); a
newline is drawn as ``⏎`` and starts a new line. The PNG wraps at ``width`` pixels, so 500 tokens make a readable
page rather than one long line; it is drawn with matplotlib's DejaVu Sans, which covers accented letters and symbols.
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

NEWLINE = "⏎"
MARGIN = 4


def token_colors(relevance: Any, cmap: str = "bwr") -> np.ndarray:
    """``(L,)`` relevance -> ``(L, 3)`` RGB in [0, 1], scaled by the sequence's largest ``|R|`` (zeros: neutral)."""
    R = to_numpy(relevance, "relevance")
    if R.ndim != 1:
        raise InputError(f"token relevance must be one value per token (L,), got shape {R.shape}")
    scale = np.abs(R).max(initial=0.0)
    return colormap(cmap)(R / scale if scale > 0 else R)


def _check(tokens: Sequence[str], relevance: Any) -> np.ndarray:
    if isinstance(tokens, str) or not all(isinstance(token, str) for token in tokens):
        raise InputError("tokens must be a sequence of strings (one per token), e.g. a tokenizer's decoded pieces")
    R = to_numpy(relevance, "relevance")
    if R.ndim != 1 and R.size == len(tokens):
        R = R.reshape(-1)
    if R.ndim != 1 or len(tokens) != len(R):
        raise InputError(f"{len(tokens)} tokens but relevance of shape {R.shape}; expected ({len(tokens)},)")
    return R


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb)


def tokens_html(tokens: Sequence[str], relevance: Any, cmap: str = "bwr", title: str = "") -> str:
    """A self-contained HTML page (no scripts, no external files): each token on its colour, its relevance in
    the tooltip."""
    R = _check(tokens, relevance)
    spans = []
    for token, value, rgb in zip(tokens, R, token_colors(R, cmap), strict=True):
        text = html.escape(token).replace("\n", f"{NEWLINE}<br>")
        spans.append(f'<span style="background:{_hex(rgb)}" title="{value:.4g}">{text}</span>')
    head = f"<h3>{html.escape(title)}</h3>" if title else ""
    style = "body{font-family:monospace;line-height:1.8;max-width:60em;white-space:pre-wrap}span{padding:1px 0}"
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title or "relevance")}</title>'
            f"<style>{style}</style></head><body>{head}<p>{''.join(spans)}</p></body></html>\n")  # fmt: skip


def write_tokens_html(
    tokens: Sequence[str], relevance: Any, path: str | Path, cmap: str = "bwr", title: str = ""
) -> Path:
    """Writes :func:`tokens_html` to ``path`` atomically; returns the path."""
    page = tokens_html(tokens, relevance, cmap, title).encode()
    return atomic_write(path, lambda file: file.write(page))


def _font(size: int) -> Any:
    from pathlib import Path as _Path

    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(str(_Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


def token_boxes(tokens: Sequence[str], width: int = 1000, size: int = 16) -> list[tuple[int, int, int, str]]:
    """Where each token goes: ``(x, y, w, text)`` in pixels, lines wrapped at ``width`` and after a newline."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 6:
        raise InputError(f"size must be an integer font size >= 6 pixels, got {size!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 8 * size:
        raise InputError(f"width must be an integer of at least 8 x size = {8 * size} pixels, got {width!r}")
    font, line = _font(size), size + 6
    boxes, x, y = [], MARGIN, MARGIN
    for token in tokens:
        text = token.replace("\t", "    ").replace("\n", NEWLINE)
        w = max(round(font.getlength(text)), 2)
        if x + w > width - MARGIN and x > MARGIN:
            x, y = MARGIN, y + line
        boxes.append((x, y, w, text))
        x += w
        if "\n" in token:
            x, y = MARGIN, y + line
    return boxes


def tokens_image(
    tokens: Sequence[str], relevance: Any, cmap: str = "bwr", width: int = 1000, size: int = 16
) -> np.ndarray:
    """The tokens as an ``(H, width, 3)`` RGB array in [0, 1]: wrapped lines, each token's text in black on its
    colour (``size``: font size in pixels; the height grows with the number of lines)."""
    from PIL import Image, ImageDraw

    R = _check(tokens, relevance)
    boxes, line = token_boxes(tokens, width, size), size + 6
    bottom = max((y for _, y, _, _ in boxes), default=MARGIN) + line + MARGIN
    image = Image.new("RGB", (width, bottom), "white")
    draw, font = ImageDraw.Draw(image), _font(size)
    for (x, y, w, text), rgb in zip(boxes, token_colors(R, cmap), strict=True):
        draw.rectangle((x, y, x + w - 1, y + line - 2), fill=tuple(round(float(c) * 255) for c in rgb))
        draw.text((x, y + 2), text, fill="black", font=font)
    return np.asarray(image, dtype=np.float64) / 255.0


def write_tokens_png(
    tokens: Sequence[str], relevance: Any, path: str | Path, cmap: str = "bwr", width: int = 1000, size: int = 16
) -> Path:
    """Writes :func:`tokens_image` as a PNG (``.png`` appended unless ``path`` ends with it); returns the path."""
    from .grids import write_png

    return write_png(tokens_image(tokens, relevance, cmap, width, size), path)
