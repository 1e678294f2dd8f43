"""Token pictures: colours follow the relevance, the HTML page is self-contained, the PNG wraps 500 tokens."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from lrpkit.errors import InputError
from lrpkit.pictures import token_colors, tokens_html, write_tokens_html, write_tokens_png
from lrpkit.pictures.colormaps import colormap
from lrpkit.pictures.tokens import token_boxes, tokens_image


def sentence(n: int) -> list[str]:
    words = ["the", " relevance", " of", " each", " token", ",", " coloured", "."]
    return [words[i % len(words)] for i in range(n)]


def test_colors_are_the_map_of_relevance_over_its_largest_magnitude(rng) -> None:
    R = rng.normal(size=20)
    expected = colormap("bwr")(R / np.abs(R).max())
    np.testing.assert_allclose(token_colors(R), expected)
    np.testing.assert_allclose(token_colors(3.0 * R), expected)  # scale-free
    red, blue = token_colors(np.array([1.0, -1.0]))
    assert red[0] > red[2] and blue[2] > blue[0]  # evidence for: red; against: blue


def test_zero_relevance_is_neutral_never_nan() -> None:
    colors = token_colors(np.zeros(5))
    np.testing.assert_allclose(colors, np.ones((5, 3)))  # bwr's white


def test_torch_relevance_and_bad_inputs() -> None:
    np.testing.assert_allclose(token_colors(torch.tensor([0.5, -1.0])), token_colors(np.array([0.5, -1.0])))
    with pytest.raises(InputError, match="one value per token"):
        token_colors(np.zeros((2, 3)))
    with pytest.raises(InputError, match="NaN"):
        token_colors(np.array([1.0, np.nan]))
    with pytest.raises(InputError, match="3 tokens but relevance of shape"):
        tokens_html(["a", "b", "c"], np.zeros(4))
    with pytest.raises(InputError, match="sequence of strings"):
        tokens_html("abc", np.zeros(3))


def test_html_is_self_contained_escaped_and_has_one_span_per_token(tmp_path) -> None:
    tokens = ["<script>", " a & b", "\n", ' "q"']
    R = np.array([1.0, -0.5, 0.0, 0.25])
    page = tokens_html(tokens, R, title="x < y")
    assert not re.search(r"<script|src=|href=|@import|url\(", page)  # nothing to fetch, nothing to run
    assert "&lt;script&gt;" in page and "a &amp; b" in page and "x &lt; y" in page
    spans = re.findall(r'<span style="background:(#[0-9a-f]{6})" title="([^"]*)">', page)
    assert [float(title) for _, title in spans] == R.tolist()
    assert [color for color, _ in spans] == ["#" + "".join(f"{round(c * 255):02x}" for c in rgb)
                                            for rgb in token_colors(R)]  # fmt: skip
    assert "⏎<br>" in page
    path = write_tokens_html(tokens, R, tmp_path / "page.html", title="x < y")
    assert path.read_text() == page and list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_png_wraps_500_tokens_into_readable_lines(tmp_path, rng) -> None:
    tokens, R = sentence(500), rng.normal(size=500)
    boxes = token_boxes(tokens, width=1000, size=16)
    lines = sorted({y for _, y, _, _ in boxes})
    assert 15 <= len(lines) <= 60  # a page, not one long line and not one token per line
    assert all(x + w <= 1000 - 4 for x, _, w, _ in boxes)  # every token fits inside the page
    path = write_tokens_png(tokens, R, tmp_path / "tokens")
    assert path.name == "tokens.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width == 1000
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] == lines[-1] + 16 + 6 + 4  # the last line and the margin


def test_png_boxes_carry_the_token_colours(rng) -> None:
    tokens, R = sentence(40), rng.normal(size=40)
    image = tokens_image(tokens, R, width=600, size=14)
    for (x, y, _, _), rgb in zip(token_boxes(tokens, 600, 14), token_colors(R), strict=True):
        np.testing.assert_allclose(image[y, x], np.round(rgb * 255) / 255)  # the box's corner: its colour


def test_newline_starts_a_new_line_and_shows_a_mark() -> None:
    boxes = token_boxes(["first", "\n", "second"], width=400, size=16)
    assert boxes[1][3] == "⏎" and boxes[2][0] == 4 and boxes[2][1] > boxes[0][1]


def test_bad_sizes_are_input_errors() -> None:
    with pytest.raises(InputError, match="width"):
        token_boxes(["a"], width=50, size=16)
    with pytest.raises(InputError, match="size"):
        token_boxes(["a"], width=500, size=2)
