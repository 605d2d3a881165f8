"""The funding check compares like with like: on a small simulated market the simulator's *true* long
share, averaged over each settlement interval, passes it against that interval's rate (so a perfect
estimate would pass), while a constant long share fails it."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from liq_pipeline.apps.demo import QUIET, _range_tags
from liq_pipeline.model import scoring
from liq_pipeline.sim import SimConfig, simulate
from liq_pipeline.validation import seed
from liq_pipeline_tests.support.simulated_market import simulated_market_env

SYMBOL = "BTCUSDT"
FIRST, LAST = dt.date(2026, 1, 1), dt.date(2026, 1, 6)


pytestmark = pytest.mark.slow  # simulates and materializes six days of its own (funding driven by crowding alone)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("funding")
    mp = simulated_market_env(tmp, SYMBOL, FIRST)
    # Funding driven by crowding alone (no structural discount or basis noise, a strong gain and crowd): the
    # check's machinery is tested here; on the calibrated market funding carries little of the crowd.
    simulate(SimConfig(symbols=(SYMBOL,), start=FIRST, days=(LAST - FIRST).days + 1, seed=11,
                       out_dir=tmp / "archive-sim", trades_per_day=2_000, positions_per_day=1_500,
                       premium_offset=0.0, premium_noise=0.0, premium_gain=0.01, regime_long_probs=(0.3, 0.5, 0.7)))
    from liq_pipeline.definitions import build_definitions

    defs = build_definitions()
    result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets("funding_rates", "true_positions"),
                            instance=dg.DagsterInstance.ephemeral(), resources=dict(defs.resources),
                            tags=_range_tags(SYMBOL, FIRST, LAST), run_config=QUIET, raise_on_error=False)
    assert result.success
    yield tmp / "warehouse" / "liq.duckdb"
    mp.undo()


def test_the_true_long_share_passes_and_a_constant_share_fails(warehouse):
    with duckdb.connect(str(warehouse)) as con:
        # the first day warms the book up (it starts empty), as the demo's first week does
        shares = seed.true_settlement_long_shares(con, SYMBOL, FIRST + dt.timedelta(days=1), LAST)
    assert len(shares) >= 14 and shares["funding_rate_8h"].nunique() > 3
    perfect = seed.funding_tracking(shares)
    assert perfect.verdict == scoring.PASS, perfect
    constant = seed.funding_tracking(shares.assign(long_share=0.55))
    assert constant.verdict == scoring.FAIL and constant.r == 0.0 and "constant" in constant.reason
