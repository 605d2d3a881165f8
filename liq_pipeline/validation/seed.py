"""The seed tests of liquidation-math.md §9 over the warehouse: OI conservation, directional accuracy,
long share against funding, and the data-quality score of the raw inputs. Plain frames and dicts."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import MODEL, ModelParams
from liq_pipeline.model import scoring, variants
from liq_pipeline.model.grid import grid_for
from liq_pipeline.validation.common import ensure_read_tables
from liq_pipeline.warehouse.data_quality import data_quality as score_inputs
from liq_pipeline.warehouse.readers import seed as seed_readers

#: The variant whose long/short split uses no funding input: the only non-circular one to correlate with
#: funding (liquidation-math.md §9.2).
NON_CIRCULAR_VARIANT = variants.NO_FUNDING_INPUT
OI_TOLERANCE_PCT = 1.0


def oi_conservation(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """Per variant: Σ(long + short) of the position distribution against the actual OI of position_signals.

    Columns: variant, estimated_usd, oi_usd, error_pct (nan when the OI is missing). liquidation-math.md
    §9.3: measured on the full distribution, before any consumption.
    """
    ensure_read_tables(con)
    frame = seed_readers.distribution_oi(con, symbol, day)
    oi = frame["oi_usd"].astype("float64").to_numpy()
    est = frame["estimated_usd"].astype("float64").to_numpy()
    ok = np.isfinite(oi) & (oi > 0)
    frame["error_pct"] = np.where(ok, np.abs(est - oi) / np.where(ok, oi, 1.0) * 100.0, np.nan)
    return frame


def level_directions(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                     params: ModelParams = MODEL) -> pd.DataFrame:
    """Every liquidation level of days start..end with its mark bin and whether it lies on the right side.

    Columns: day, variant, side, bin_id, price, notional_usd, mark_price, mark_bin, ok (§9.4). Levels of a
    day without a mark price get mark_bin NULL and ok False: they could not be shown to be right.
    """
    ensure_read_tables(con)
    frame = seed_readers.levels_with_mark_bin(con, symbol, start, end, grid_for(symbol, params))
    known = frame["mark_bin"].notna().to_numpy()
    mark_bin = frame["mark_bin"].fillna(0).astype("int64").to_numpy()
    frame["ok"] = known & scoring.directional_ok(frame["side"].to_numpy(dtype=str), frame["bin_id"].to_numpy(), mark_bin)
    return frame


#: Sampling step of the true long share inside each settlement interval.
TRUTH_SAMPLE_MINUTES = 60


def _with_implied_ratio(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (settle_time, funding_rate_8h, long_share, samples) with the implied ratio of each rate."""
    frame["implied_long_ratio"] = scoring.funding_implied_long_ratio(frame["funding_rate_8h"].astype("float64"))
    return frame


def settlement_long_shares(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                           variant: str) -> pd.DataFrame:
    """Per funding settlement of days start..end: the variant's long share Σlong / Σ(long + short) of its
    liquidation heatmap (the surviving map), averaged over the snapshots inside the settlement interval,
    beside that interval's rate (8h-equivalent) and the implied ratio 0.5 + 0.3·tanh(1000·f).

    Columns: settle_time, funding_rate_8h, long_share, samples, implied_long_ratio.
    """
    ensure_read_tables(con)
    t0, t1 = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    return _with_implied_ratio(seed_readers.heatmap_long_share_per_settlement(con, symbol, variant, t0, t1))


def true_settlement_long_shares(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                                sample_minutes: int = TRUTH_SAMPLE_MINUTES) -> pd.DataFrame:
    """The same as settlement_long_shares for the simulator's truth: the long share of the notional (at
    entry) of the positions open at each sample instant (every `sample_minutes`), averaged per settlement
    interval. What a perfect estimate would show: the ceiling of the funding check."""
    ensure_read_tables(con)
    t0, t1 = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    return _with_implied_ratio(seed_readers.true_long_share_per_settlement(con, symbol, t0, t1, sample_minutes))


def funding_tracking(shares: pd.DataFrame) -> scoring.Correlation:
    """Pearson r between the long share per settlement interval and the implied ratio of that interval's
    rate (liquidation-math.md §9.1 verdicts). A constant long share while funding moves does not track
    funding: r = 0, fail (not inconclusive); flat funding or fewer than 3 intervals is inconclusive."""
    share = shares["long_share"].to_numpy(dtype=np.float64)
    implied = shares["implied_long_ratio"].to_numpy(dtype=np.float64)
    ok = np.isfinite(share) & np.isfinite(implied)
    if ok.sum() >= 3 and np.ptp(implied[ok]) > 0 and np.ptp(share[ok]) <= 1e-12:
        return scoring.Correlation("pearson", 0.0, 1.0, int(ok.sum()), scoring.FAIL,
                                   "the long share is constant while funding moves: it does not track funding")
    return scoring.pearson(share, implied)


def funding_correlation(con: duckdb.DuckDBPyConnection, symbol: str, start: dt.date, end: dt.date,
                        variant: str = NON_CIRCULAR_VARIANT) -> tuple[scoring.Correlation, pd.DataFrame]:
    """funding_tracking of a variant's heatmap long share per settlement interval over days start..end
    (§9.1-§9.2). For the `ofi` variant the split uses no funding input, so the test is not circular; for
    funding and hybrid the rate of the previous settlement entered the split (stated in the report)."""
    shares = settlement_long_shares(con, symbol, start, end, variant)
    return funding_tracking(shares), shares


def data_quality(con: duckdb.DuckDBPyConnection, symbol: str, days: list[dt.date]) -> dict:
    """Share of the raw input present for the graded days, scored over what the configuration needs
    (warehouse/data_quality.py: aggTrades only when LIQ_PROFILE_SOURCE=aggTrades)."""
    ensure_read_tables(con)
    return score_inputs(con, symbol, days)
