"""The production-shaped instance on one machine (`prod_local.py`) and its run launcher (`run_launcher.py`)."""
