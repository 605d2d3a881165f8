"""Pure domain math: no Dagster, no I/O beyond reading the shipped reference tables."""
