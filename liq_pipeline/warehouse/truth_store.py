"""Loads and reads of the ground-truth tables (`truth.positions`, `truth.open_positions`,
`truth.liquidations`; DDL in schema.py) from the simulator's parquet files. Only the truth assets and the
validation read these; the estimator never does (the drop-truth test)."""

import pandas as pd

from liq_pipeline.warehouse import parquet
from liq_pipeline.warehouse.io import replace_partition
from liq_pipeline.warehouse.schema import TABLES, ensure_tables


def add_new_columns(con, table: str) -> None:
    """A warehouse made by an older simulator lacks the columns added since (margin_mode, ...): add them
    (NULL for the rows already stored) so the insert by name works. Nothing to do in the parquet mode."""
    if parquet.root_of(con) is not None:
        return
    ensure_tables(con, table)
    schema, name = table.split(".")
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                      "AND table_name = ?", [schema, name]).fetchall()}
    for line in TABLES[table].strip().splitlines():
        column, kind = line.strip().rstrip(",").split()[:2]
        if column not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def load_truth_partition(con, table: str, symbol: str, day, path: str, columns: str, order_by: str) -> int:
    """Replace the (symbol, day) partition of a truth table with the rows of the simulator's parquet file."""
    select = f"SELECT {columns} FROM read_parquet(?) WHERE symbol = ? AND day = ? ORDER BY {order_by}"
    return replace_partition(con, table, symbol, day, select, [path, symbol, day])


def partition_head(con, table: str, symbol: str, day, order_by: str, n: int = 10) -> pd.DataFrame:
    """The first `n` rows of a partition in `order_by` order."""
    return con.execute(f"SELECT * FROM {table} WHERE symbol = ? AND day = ? ORDER BY {order_by} LIMIT {int(n)}",
                       [symbol, day]).df()


def truth_summary(con, table: str, symbol: str, day) -> pd.DataFrame:
    """Counts and notional by side (and outcome or population) of one partition of a truth table."""
    if table == "truth.open_positions":
        sql = ("SELECT population, side, count(*) AS positions, round(sum(quantity * mark_price)) AS notional_usd, "
               "round(sum(funding_paid_usd)) AS funding_paid_usd FROM truth.open_positions "
               "WHERE symbol = ? AND day = ? GROUP BY ALL ORDER BY ALL")
    elif table == "truth.positions":
        sql = ("SELECT side, outcome, count(*) AS positions, round(sum(quantity * entry_price)) AS notional_usd, "
               "round(avg(leverage), 1) AS mean_leverage, max(bracket) AS max_bracket FROM truth.positions "
               "WHERE symbol = ? AND day = ? GROUP BY ALL ORDER BY ALL")
    else:
        sql = ("SELECT side, count(*) AS liquidations, round(sum(notional_usd)) AS notional_usd, "
               "min(price) AS min_price, max(price) AS max_price FROM truth.liquidations "
               "WHERE symbol = ? AND day = ? GROUP BY ALL ORDER BY ALL")
    return con.execute(sql, [symbol, day]).df()
