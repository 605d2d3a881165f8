"""A simulated market for the integration tests: the environment that points the pipeline at it."""

from __future__ import annotations


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
