"""Thin Dagster layer: one module per pipeline stage, each asset a few lines over market/, warehouse/, model/."""

import warnings

import dagster as dg

# We use backfill policies and multi-partition mappings on purpose; their beta notices would drown the logs
# of every run and of the CLI.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
