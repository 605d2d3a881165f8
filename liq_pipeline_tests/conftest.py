"""Test-session settings, applied before any test module imports liq_pipeline.

The partitions of the simulated source end on the last simulated day found in `data/archive-sim`
(partitions.py); the tests use their own days, some after a demo's range, so they run with the
open-ended range whatever a previous `make demo` left in the checkout.
"""

import os

os.environ.setdefault("LIQ_END_DATE", "yesterday")


def simulated_market_env(tmp, symbol: str, first):
    """A MonkeyPatch (undo it when done) pointing the pipeline at a simulated market written under `tmp`:
    one symbol from `first`, every source/warehouse override of the caller's shell removed."""
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setenv("LIQ_DATA_DIR", str(tmp))
    mp.setenv("LIQ_SYMBOLS", symbol)
    mp.setenv("LIQ_START_DATE", first.isoformat())
    for name in ("LIQ_SOURCE", "LIQ_WAREHOUSE", "LIQ_SIM_DIR", "LIQ_PROFILE_SOURCE"):
        mp.delenv(name, raising=False)
    return mp
