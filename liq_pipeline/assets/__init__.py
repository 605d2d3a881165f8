"""Thin Dagster layer: one module per pipeline stage, each asset a few lines over market/, warehouse/, model/."""
