"""The truth readers return rows in position order, whatever order the tables hold them in (the sums the
validation report makes over them must not differ from run to run)."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np

from liq_pipeline.warehouse.readers.truth import open_positions_at_end
from liq_pipeline.warehouse.schema import ensure_tables

DAY = dt.date(2026, 1, 5)


def _warehouse(with_open: bool) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_tables(con, "truth.positions", *(["truth.open_positions"] if with_open else []))
    ids = np.random.default_rng(3).permutation(400)  # stored shuffled
    for i in ids:
        opened = dt.datetime(2026, 1, 1) + dt.timedelta(minutes=int(i))
        con.execute("INSERT INTO truth.positions VALUES ('BTCUSDT', ?, ?, ?, ?, NULL, ?, 0.1, 10, 1.0, 1.0, 1, "
                    "'open', 'isolated', NULL)",
                    [opened.date(), int(i), "long" if i % 2 else "short", opened, 90_000.0 + float(i)])
        if with_open:
            con.execute("INSERT INTO truth.open_positions VALUES ('BTCUSDT', ?, ?, 'speculator', ?, 'isolated', ?, "
                        "0.1, 10, 1.0, 1.0, 1, 0.0, 91000.0)",
                        [DAY, int(i), "long" if i % 2 else "short", 90_000.0 + float(i)])
    return con


def test_open_positions_come_in_position_order():
    for with_open in (True, False):
        rows = open_positions_at_end(_warehouse(with_open), "BTCUSDT", DAY)
        assert len(rows) == 400
        # entry price = 90,000 + position id: position order is ascending entry price here
        assert np.array_equal(rows["entry_price"].to_numpy(), 90_000.0 + np.arange(400)), with_open
