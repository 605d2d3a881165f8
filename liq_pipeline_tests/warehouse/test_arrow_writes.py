"""Large frames are written as pyarrow Tables (issue 29: DuckDB scans them at about half the CPU): the rows
stored are the rows of the pandas frame, value for value, NaN as NULL either way, in both storage modes."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.io import as_arrow, write_frame

DAY = dt.date(2026, 1, 5)


def _steps() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 500
    return pd.DataFrame({
        "symbol": "BTCUSDT", "day": DAY, "variant": np.where(rng.uniform(size=n) > 0.5, "flow", "hybrid"),
        "step_end": (np.datetime64("2026-01-05T00:15") + np.arange(n) * np.timedelta64(15, "m")).astype("datetime64[ms]"),
        "side": np.where(rng.uniform(size=n) > 0.5, "long", "short"), "leverage": rng.choice([5.0, 10.0, 20.0], n),
        "consumed_usd": rng.uniform(0, 1e6, n), "consumed_per_weight_usd": rng.uniform(0, 1e6, n)})


def _parameters() -> pd.DataFrame:
    return pd.DataFrame({"symbol": "BTCUSDT", "day": DAY, "parameter": ["weight_5x", "half_life_hours", "x"],
                         "side": "long", "value": [0.25, np.nan, 1e-300], "source": "engine", "detail": ""})


def _stored(con, table: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def test_the_arrow_write_stores_the_rows_of_the_frame(tmp_path):
    for table, frame in (("model.flow_steps", _steps()), ("model.flow_parameters", _parameters())):
        stored = []
        for arrow in (False, True):
            con = duckdb.connect(str(tmp_path / f"w-{table.replace('.', '_')}-{arrow}.duckdb"))
            write_frame(con, table, "BTCUSDT", DAY, frame, arrow=arrow)
            stored.append(_stored(con, table))
            con.close()
        assert stored[0] == stored[1] and len(stored[0]) == len(frame)
        pq = parquet.connect(str(tmp_path / f"pq-{table.replace('.', '_')}"))
        write_frame(pq, table, "BTCUSDT", DAY, frame, arrow=True)
        assert _stored(pq, table) == stored[0]
    assert any(r[4] is None for r in stored[1])  # the NaN went in as NULL either way


def test_a_frame_pyarrow_cannot_convert_is_written_as_it_is():
    mixed = pd.DataFrame({"x": [1, "a"]})
    assert as_arrow(mixed) is mixed
    assert as_arrow(pd.DataFrame()) is not None
