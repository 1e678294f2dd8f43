"""Pictures: colour maps (pure NumPy), image grids, and the figures of explanations."""

from .classes import plot_classes
from .colormaps import heatmap
from .grids import plot_filters, visualize

__all__ = ["heatmap", "plot_classes", "plot_filters", "visualize"]
