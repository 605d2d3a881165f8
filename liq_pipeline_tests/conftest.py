"""Test-session settings, applied before any test module imports liq_pipeline.

The partitions of the simulated source end on the last simulated day found in `data/archive-sim`
(partitions.py); the tests use their own days, some after a demo's range, so they run with the
open-ended range whatever a previous `make demo` left in the checkout.
"""

import os

os.environ.setdefault("LIQ_END_DATE", "yesterday")
