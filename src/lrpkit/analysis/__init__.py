"""Analyses over many explanations: spectral relevance analysis (SpRAy) of a dataset's heatmaps."""

from .spray import ClassAnalysis, Spray, analyse_class, spray

__all__ = ["ClassAnalysis", "Spray", "analyse_class", "spray"]
