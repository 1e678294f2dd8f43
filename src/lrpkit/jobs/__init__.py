"""Explaining whole datasets."""
