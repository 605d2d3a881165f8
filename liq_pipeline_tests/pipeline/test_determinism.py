"""The heatmap must not depend on the order in which DuckDB hands rows over.

Under load, the Parquet and DuckDB backfills of `make bench` disagreed on `model.liquidation_heatmap`
(issue 17 / issue 19 item 3). The cause: a DOUBLE `sum()` in DuckDB adds in scan order, and a parallel scan's
order depends on which thread gets which row group first, so the per-step traded notional feeding the heatmap
changed in its last bits from run to run, and the tiny difference was carried through every later step and day.
Here the same rows are stored in two different physical orders (one thread each, so each scan order is
fixed); the heatmap computed from either must be bit-for-bit the same.
"""

from __future__ import annotations

import numpy as np
import pytest

from liq_pipeline.pipeline.flow_day import materialize_flow_day
from liq_pipeline.pipeline.heatmap_day import compute_heatmap_day
from liq_pipeline_tests.support.busy_day import DAY, SYMBOL, VARIANTS, busy_day_tables, store_tables


@pytest.fixture(scope="module")
def two_orders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("order")
    tables = busy_day_tables()
    a, b = store_tables(tmp / "a.duckdb", tables, None), store_tables(tmp / "b.duckdb", tables, 7)
    yield a, b
    a.close()
    b.close()


def test_the_two_warehouses_really_sum_in_different_orders(two_orders):
    """Guard for the test below: a plain DOUBLE sum over these rows does change with the storage order."""
    sql = ("SELECT sum(price * quantity) FROM raw.agg_trades "
           "GROUP BY transact_time::DATE, floor(price / 50) ORDER BY ALL")
    a, b = (np.array(c.execute(sql).fetchall(), dtype=float)[:, 0] for c in two_orders)
    assert a.shape == b.shape and np.allclose(a, b, rtol=1e-12)
    assert not np.array_equal(a, b)


def test_heatmap_is_bit_identical_whatever_the_row_order(two_orders):
    for con in two_orders:  # every variant's book (one engine), then its map
        materialize_flow_day(con, SYMBOL, DAY)
    a, b = (compute_heatmap_day(con, SYMBOL, DAY, variants=VARIANTS) for con in two_orders)
    assert np.array_equal(a.inputs.traded_usd, b.inputs.traded_usd)
    for v in VARIANTS:
        ea, eb = a.variants[v].evolution, b.variants[v].evolution
        assert ea.notional_usd.size > 1000 and a.variants[v].start_state == "flow_book D-1"
        assert np.array_equal(ea.step, eb.step) and np.array_equal(ea.bin_id, eb.bin_id)
        assert np.array_equal(ea.notional_usd, eb.notional_usd), (
            v, float(np.max(np.abs(ea.notional_usd - eb.notional_usd))))
        assert np.array_equal(ea.end_state.notional, eb.end_state.notional)
