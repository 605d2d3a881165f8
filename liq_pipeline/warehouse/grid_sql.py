"""SQL twins of the price grid's functions (model/grid.py), for DuckDB aggregations over the raw tables."""

from __future__ import annotations

from liq_pipeline.model.grid import PriceGrid


def bin_id_sql(grid: PriceGrid, price_expr: str) -> str:
    """BIGINT bin of a price expression: floor(ln p / log step) (relative grid) or floor(p / width) (fixed)."""
    if grid.mode == "relative":
        return f"CAST(floor(ln({price_expr}) / {grid.log_step!r}) AS BIGINT)"
    return f"CAST(floor({price_expr} / {grid.width!r}) AS BIGINT)"


def bin_low_sql(grid: PriceGrid, bin_expr: str) -> str:
    """Lower edge (USD) of a bin expression."""
    if grid.mode == "relative":
        return f"exp(({bin_expr}) * {grid.log_step!r})"
    return f"(({bin_expr}) * {grid.width!r})"


def bin_high_sql(grid: PriceGrid, bin_expr: str) -> str:
    """Upper edge (USD) of a bin expression."""
    return bin_low_sql(grid, f"({bin_expr}) + 1")
