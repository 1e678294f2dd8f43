"""Analyses over many explanations."""
