"""Small helpers shared by the validation modules: the tables they read, JSON-safe numbers."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.warehouse.schema import ensure_tables

_READ_TABLES = ("raw.klines", "raw.mark_price_klines", "raw.agg_trades", "raw.open_interest", "raw.funding_rates",
                "raw.realized_liquidations", "raw.realized_liquidation_bars", "truth.positions",
                "truth.liquidations", "model.position_signals", "model.position_distribution",
                "model.liquidation_levels", "model.liquidation_heatmap", "model.validation_results")


def ensure_read_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables empty, so a query over a fresh warehouse answers "no rows" instead of failing."""
    ensure_tables(con, *_READ_TABLES)


def day_str(value) -> str:
    """YYYY-MM-DD of a DATE read back through pandas (which may hand it over as a Timestamp)."""
    return pd.Timestamp(value).date().isoformat()


def finite_or_none(x) -> float | None:
    return float(x) if x is not None and isinstance(x, (int, float, np.floating)) and math.isfinite(x) else None



def md_table(frame: pd.DataFrame, float_format: str = "{:,.4f}") -> str:
    """A frame as a markdown table (finite floats formatted, everything else as str)."""
    if frame.empty:
        return "(no rows)"
    cols = list(frame.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = [float_format.format(v) if isinstance(v, float) and math.isfinite(v) else str(v) for v in row]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
