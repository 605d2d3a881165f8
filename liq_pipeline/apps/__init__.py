"""Orchestration that runs the whole pipeline: the demo, the real-data scorecard and the variant comparison.
Apps run the Dagster `Definitions`; nothing below them imports an app."""
