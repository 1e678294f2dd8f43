"""Evaluating explanations: conservation, pixel flipping / AOPC, and the report of several methods."""

from .faithfulness import (
    Comparison,
    PixelFlippingResult,
    aopc,
    compare,
    conservation,
    mean_interval,
    pixel_flipping,
)

__all__ = ["Comparison", "PixelFlippingResult", "aopc", "compare", "conservation", "mean_interval", "pixel_flipping"]
