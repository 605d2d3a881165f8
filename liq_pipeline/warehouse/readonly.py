"""Read-only access to the warehouse for the answers (`liq heatmap`, `liq zones`, the demo's summary): the
connection, the error a user sees when there is nothing to read, and the zone table's reader and text.

Imports nothing beyond the DuckDB engine and config, so `liq heatmap` starts fast.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from liq_pipeline import config
from liq_pipeline.model import variants
from liq_pipeline.warehouse.catalog import table_exists


class AnswerError(Exception):
    """An expected failure of a read-only answer (no warehouse, a writer holds it, nothing materialized): the
    `liq` command prints it as one line with exit code 2."""


def materialize_hint(symbol: str | None, day: dt.date | None) -> str:
    """The exact command that materializes what the CLI reads for (symbol, day)."""
    part = f'"{day.isoformat() if day else "<YYYY-MM-DD>"}|{symbol or "<SYMBOL>"}"'
    return (f"run `make demo` (simulated market), or `dagster asset materialize -m liq_pipeline.definitions "
            f"--select liquidation_heatmap,liquidation_zones --partition {part}` once its inputs are materialized")


def duckdb_engine():
    """DuckDB's compiled module. `import duckdb` adds ~0.1 s (0.3 s on a busy machine) of Python-side API
    (relational API, package metadata) that a text answer does not use; `_duckdb` is the engine it
    re-exports, with the same connect() and exception classes."""
    try:
        import _duckdb
    except ImportError:  # a DuckDB build without the split module
        import duckdb as _duckdb
    return _duckdb


def connect_read_only(path: str | Path | None = None):
    """Open the warehouse read-only, turning a missing file or a writer's lock into an AnswerError."""
    duckdb = duckdb_engine()

    if path is None and config.storage() == "parquet":
        from liq_pipeline.warehouse import parquet

        return parquet.connect(config.parquet_root(), read_only=True)
    path = Path(path or config.warehouse_path())
    if not path.exists():
        raise AnswerError(f"warehouse {path} does not exist: {materialize_hint(None, None)}")
    try:
        # One thread: the answers read a few thousand rows, and starting a thread pool costs more than that.
        return duckdb.connect(str(path), read_only=True, config={"threads": 1})
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise AnswerError(f"warehouse {path} is locked by a writer (a Dagster run or another DuckDB session): "
                           "wait for the run to finish, or stop the process holding it, then retry") from None
        raise AnswerError(f"cannot open warehouse {path}: {e}") from None


ZONE_COLS = "side, zone_rank, centroid_price, price_low, price_high, notional_usd, distance_pct, share_of_side, as_of"


def zone_rows(con, symbol: str, day: dt.date, variant: str, n: int) -> list[tuple]:
    if not table_exists(con, "model.liquidation_zones"):
        return []
    return con.execute(f"SELECT {ZONE_COLS} FROM model.liquidation_zones WHERE symbol = ? AND day = ? AND variant = ? "
                       "AND zone_rank <= ? ORDER BY side, zone_rank", [symbol, day, variant, n]).fetchall()


def format_zone_table(rows: list[tuple]) -> str:
    lines = [f"{'side':<6}{'rank':>5}{'centroid':>14}{'range':>29}{'notional_usd':>17}{'to mark':>10}{'share':>8}"]
    for side, rank, centroid, low, high, notional, dist, share, _ in rows:
        lines.append(f"{side:<6}{rank:>5}{centroid:>14,.2f}{f'{low:,.2f} – {high:,.2f}':>29}{notional:>17,.0f}"
                     f"{dist:>+9.2f}%{share:>8.1%}")
    return "\n".join(lines)


def format_top_zones(con, symbol: str, day: dt.date, variant: str = variants.DEFAULT, n: int = 3) -> str:
    """Top `n` zones per side of (symbol, day, variant) as a text table; a "not materialized" line (with the
    command to run) when there are none. Used by `liq zones` and at the end of `make demo`."""
    rows = zone_rows(con, symbol, day, variant, n)
    if not rows:
        return f"{symbol} {day} ({variant}): zones not materialized: {materialize_hint(symbol, day)}"
    return format_zone_table(rows)


