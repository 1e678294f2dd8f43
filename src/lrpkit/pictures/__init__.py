"""Pictures: colour maps (pure NumPy), image grids, and the figures of explanations."""

from .classes import plot_classes
from .colormaps import heatmap
from .grids import plot_filters, visualize
from .tokens import token_colors, tokens_html, write_tokens_html, write_tokens_png

__all__ = [
    "heatmap",
    "plot_classes",
    "plot_filters",
    "token_colors",
    "tokens_html",
    "visualize",
    "write_tokens_html",
    "write_tokens_png",
]
