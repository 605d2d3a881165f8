"""Accuracy against the simulator's ground truth (truth.* tables): overlap of the estimated liquidation
map with the true one, the long-share error, the formula errors, and the ceiling an oracle reaches.
Validation layer only: nothing here is ever read by the estimator."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import MODEL, ModelParams
from liq_pipeline.model import margin, scoring
from liq_pipeline.model import variants as variant_registry
from liq_pipeline.model.grid import PriceGrid, grid_for
from liq_pipeline.pipeline import workers
from liq_pipeline.validation.common import ensure_read_tables
from liq_pipeline.warehouse.readers import maps, marks
from liq_pipeline.warehouse.readers import truth as truth_readers

#: The coarse bins every overlap is also reported at (relative width): 1 %.
COARSE_BIN_WIDTH = 0.01
#: Grouping step of continuous leverages in the oracle's mix, as an initial margin fraction 1/L: 0.1 % of
#: price, one model bin, so the grouping moves no liquidation price by more than half a bin (a finer step
#: made the month's scoring several times slower: positions × leverages grows with it).
ORACLE_MARGIN_FRACTION_STEP = 0.001
#: Positions priced per block in `oracle_map` (its arrays are positions × leverages).
ORACLE_BLOCK = 1_000
#: Half-width of the window around the mark a trader reads (relative): the primary overlap figure.
MARK_WINDOW = 0.10
#: Flat MMR of the "simplified" formula as most heatmap tools use it (liquidation-math.md §7).
SIMPLIFIED_MMR = 0.004


def has_ground_truth(con: duckdb.DuckDBPyConnection, symbol: str) -> bool:
    ensure_read_tables(con)
    return truth_readers.has_positions(con, symbol)


def _true_open_positions(con, symbol: str, day: dt.date) -> pd.DataFrame:
    """The speculators' positions open at the end of `day` with the liquidation price **in force** then
    (warehouse/readers/truth.py: truth.open_positions, else the price at opening from truth.positions)."""
    return truth_readers.open_positions_at_end(con, symbol, day)


def true_leverage_mix(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """(leverages, weights): the true leverage mix of every position opened by the end of `day`, weighted by
    NOTIONAL (the simulator scales leverage down with size, so a count-weighted mix over-weights the small,
    highly levered accounts). Leverages are the simulator's own values: whole-number (isolated) leverages
    exactly; continuous ones (cross margin: notional / wallet) grouped by their initial margin fraction 1/L
    on a step of `ORACLE_MARGIN_FRACTION_STEP`, one model bin, so the grouping moves no liquidation price
    by more than half a bin."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    return notional_weighted_mix(*truth_readers.notional_per_leverage(con, symbol, end))


def notional_weighted_mix(leverage: np.ndarray, notional_usd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(leverages, weights summing to 1) of positions' `leverage` weighted by `notional_usd`: whole numbers
    kept exactly, others grouped by 1/L on ORACLE_MARGIN_FRACTION_STEP (see true_leverage_mix)."""
    lev = np.asarray(leverage, dtype=np.float64)
    usd = np.asarray(notional_usd, dtype=np.float64)
    step = ORACLE_MARGIN_FRACTION_STEP
    snapped = np.where(lev == np.round(lev), lev, 1.0 / (np.maximum(np.round(1.0 / lev / step), 1) * step))
    values, inverse = np.unique(snapped, return_inverse=True)
    w = np.bincount(inverse.ravel(), weights=usd, minlength=values.size)
    return values, (w / w.sum() if w.sum() > 0 else w)


def _mark_extremes_after(con, symbol: str, since: np.ndarray, end: dt.datetime) -> tuple[np.ndarray, np.ndarray]:
    """Lowest low / highest high of the finest mark candles opening at or after each instant and before
    `end` (±inf when none): the path a position opened at that instant has lived through."""
    start = pd.Timestamp(since.min()).to_pydatetime() if since.size else end
    candles = marks.finest_mark_candles(con, symbol, start, end)
    if candles is None:
        return np.full(since.shape, -np.inf), np.full(since.shape, np.inf)
    t = candles["open_time"].to_numpy().astype("datetime64[us]")
    lo = np.append(np.minimum.accumulate(candles["low"].to_numpy(np.float64)[::-1])[::-1], np.inf)
    hi = np.append(np.maximum.accumulate(candles["high"].to_numpy(np.float64)[::-1])[::-1], -np.inf)
    first = np.searchsorted(t, since.astype("datetime64[us]"), side="left")
    return lo[first], hi[first]


@dataclass(frozen=True)
class OracleMap:
    """The best map an estimator could draw without knowing leverage: per true open position, its notional
    spread over the leverages of the true mix it could have and still be open (`side` 'long'/'short')."""

    side: np.ndarray
    price: np.ndarray
    notional_usd: np.ndarray
    #: Open positions for which no leverage of the mix survives their mark path (left out of the map).
    unplaced_positions: int


def oracle_map(positions: pd.DataFrame, leverages: np.ndarray, weights: np.ndarray, table: margin.BracketTable,
               mark_low_after: np.ndarray, mark_high_after: np.ndarray,
               cell_of: Callable[[np.ndarray], np.ndarray] | None = None,
               prices: OraclePrices | None = None) -> OracleMap:
    """The ceiling's map (issue 13): every true open position at its exact entry, size and side; its
    leverage unknown, so its notional is spread over the true mix `leverages`/`weights`, each leverage
    capped at the max leverage of the position's tier (the exchange's rule; 1/(2·MMR) where the table
    has none), conditioned on having survived its mark path: a leverage whose liquidation price the mark
    has reached since the open (long: price ≥ lowest low; short: ≤ highest high) gets weight 0, the rest
    are renormalised (Bayes with a survival likelihood of 0 or 1). Prices from the exact isolated formula
    with WB = N/L (margin.isolated_liquidation_price_at_leverage), as the positions were opened.

    `cell_of` (price → int64 cell key), when given, sums the (position × leverage) points per side and cell
    as they are made, each cell at its notional-weighted mean price: tens of thousands of points instead of
    tens of millions. A cell that lies inside every bin the caller scores on (e.g. the intersection of the
    0.1 % bin, the 1 % bin and the ±10 % window) keeps every binned figure exact, since a weighted mean of
    prices in an interval stays in it; only the bin-free distance sees the cell means.

    `prices` (priced with the same `table`), when given, takes each position's liquidation prices from the
    positions kept from earlier days (OraclePrices), pricing only the new ones: the same numbers per
    (position, leverage), so the same map.
    """
    notional = positions["notional_usd"].to_numpy(np.float64)
    entry = positions["entry_price"].to_numpy(np.float64)
    is_long = positions["side"].to_numpy(dtype=str) == "long"
    leverages = np.asarray(leverages, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    slots = cols = None
    if prices is not None:
        if prices.table.id != table.id:
            raise ValueError(f"oracle_map: prices kept for table {prices.table.id}, asked for {table.id}")
        slots, cols = prices.slots_for(is_long, notional, entry), prices.columns_for(leverages)
    parts, unplaced = [], 0
    for b in range(0, notional.size, ORACLE_BLOCK):  # blocks bound the (positions × leverages) arrays
        sl = slice(b, b + ORACLE_BLOCK)
        lp = None if prices is None else prices.block(slots[sl], cols)
        side_b, price_b, usd_b, lost = _oracle_block(notional[sl], entry[sl], is_long[sl], leverages, weights,
                                                           table, np.asarray(mark_low_after)[sl],
                                                           np.asarray(mark_high_after)[sl], lp)
        parts.append(_cells(side_b, price_b, usd_b, cell_of) if cell_of is not None else (side_b, price_b, usd_b))
        unplaced += lost
    if not parts:
        return OracleMap(np.empty(0, dtype=str), np.empty(0), np.empty(0), 0)
    side, price, usd = (np.concatenate(x) for x in zip(*parts, strict=True))
    if cell_of is not None:
        side, price, usd = _cells(side, price, usd, cell_of)
    return OracleMap(np.where(side == margin.LONG, "long", "short"), price, usd, unplaced)


def _cells(side: np.ndarray, price: np.ndarray, usd: np.ndarray,
           cell_of: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points summed per (side, cell): side, notional-weighted mean price, notional."""
    inverse, keys = pd.factorize(cell_of(price) * 2 + (side > 0))  # hashing: no sort of the points
    total = np.bincount(inverse, weights=usd, minlength=keys.size)
    weighted = np.bincount(inverse, weights=usd * price, minlength=keys.size)
    mean = np.divide(weighted, total, out=np.zeros_like(total), where=total > 0)
    return np.where(keys & 1, margin.LONG, margin.SHORT).astype(np.int8), mean, total


def _oracle_prices(notional: np.ndarray, entry: np.ndarray, is_long: np.ndarray, leverages: np.ndarray,
                   table: margin.BracketTable) -> np.ndarray:
    """Liquidation price (positions × leverages) of each position at each leverage capped at its tier's max."""
    side = np.where(is_long, margin.LONG, margin.SHORT)
    tier = np.clip(np.searchsorted(table.notional_floor, notional, side="right") - 1, 0, len(table.mmr) - 1)
    max_lev = np.where(np.isnan(table.max_leverage[tier]), np.floor(0.5 / table.mmr[tier]), table.max_leverage[tier])
    lev = np.minimum(leverages[None, :], max_lev[:, None])  # (P, J)
    return margin.isolated_liquidation_price_over_leverages(side, notional, entry, lev, table)


def _oracle_block(notional: np.ndarray, entry: np.ndarray, is_long: np.ndarray, leverages: np.ndarray,
                  weights: np.ndarray, table: margin.BracketTable, low: np.ndarray, high: np.ndarray,
                  lp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The points of a block of positions (side, price, notional) and the positions left out. `lp`: the
    block's prices when known (_oracle_prices)."""
    side = np.where(is_long, margin.LONG, margin.SHORT)
    if lp is None:
        lp = _oracle_prices(notional, entry, is_long, leverages, table)
    alive = np.isfinite(lp) & (lp > 0) & np.where(is_long[:, None], lp < low[:, None], lp > high[:, None])
    w = np.where(alive, weights[None, :], 0.0)
    total = w.sum(axis=1, keepdims=True)
    placed = total[:, 0] > 0
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    keep = w > 0
    return (np.broadcast_to(side[:, None], lp.shape)[keep].astype(np.int8), lp[keep], (notional[:, None] * w)[keep],
            int((~placed).sum()))


class OraclePrices:
    """The oracle's prices kept from day to day: each true open position's liquidation price at every leverage
    of `leverages` (a superset of every day's mix: the mix of the positions opened so far only grows), one
    row per distinct (side, notional, entry). A position lives for days to weeks, so most of a day's
    (position × leverage) prices, about half of the oracle's work, were made the day before. Each row is
    computed by the same elementwise arithmetic as `oracle_map` without it: the same bits. Rows of positions
    a day no longer holds are reused for the new ones (memory stays about one day's positions × leverages)."""

    def __init__(self, table: margin.BracketTable, leverages: np.ndarray):
        self.table = table
        self.leverages = np.unique(np.asarray(leverages, dtype=np.float64))
        self.price = np.empty((0, self.leverages.size))
        self._keys = pd.MultiIndex.from_arrays([np.empty(0, bool), np.empty(0), np.empty(0)])
        self._slot = np.empty(0, dtype=np.int64)  # the row of each of _keys

    def block(self, slots: np.ndarray, cols: np.ndarray | None) -> np.ndarray:
        """The prices of the positions in rows `slots` at the leverages in columns `cols` (None: all), as
        positions × leverages."""
        rows = self.price.take(slots, axis=0)
        return rows if cols is None else rows.take(cols, axis=1)

    def columns_for(self, leverages: np.ndarray) -> np.ndarray | None:
        """Column of each of `leverages` (each must be one of the kept leverages); None when they are all of
        them in order."""
        lev = np.asarray(leverages, dtype=np.float64)
        cols = np.clip(np.searchsorted(self.leverages, lev), 0, max(self.leverages.size - 1, 0))
        if lev.size and (self.leverages.size == 0 or not np.array_equal(self.leverages[cols], lev)):
            raise ValueError(f"OraclePrices: {np.setdiff1d(lev, self.leverages).size} leverages of the day are not "
                             "among the kept ones; build it with every day's mix")
        return None if np.array_equal(cols, np.arange(self.leverages.size)) else cols

    def slots_for(self, is_long: np.ndarray, notional: np.ndarray, entry: np.ndarray) -> np.ndarray:
        """The row of each position, pricing those not kept yet (in blocks) in rows no position of this call
        uses; rows of positions absent from this call are released."""
        if not (np.isfinite(notional).all() and np.isfinite(entry).all()):
            raise ValueError("OraclePrices: notional and entry price must be finite")
        keys = pd.MultiIndex.from_arrays([np.asarray(is_long, bool), notional, entry])
        found = self._keys.get_indexer(keys)
        new_keys = keys[found < 0].unique()
        used = np.zeros(self.price.shape[0], dtype=bool)
        used[self._slot[found[found >= 0]]] = True
        free = np.flatnonzero(~used)
        if free.size < len(new_keys):  # grow: the extra rows start free
            grow = max(len(new_keys) - free.size, self.price.shape[0] // 2)
            n = self.price.shape[0]
            self.price = np.concatenate([self.price, np.empty((grow, self.leverages.size))])
            free = np.r_[free, np.arange(n, n + grow)]
        new_slots = free[:len(new_keys)]
        new_long, new_notional, new_entry = (new_keys.get_level_values(i).to_numpy() for i in range(3))
        for b in range(0, new_slots.size, ORACLE_BLOCK):
            sl = slice(b, b + ORACLE_BLOCK)
            self.price[new_slots[sl]] = _oracle_prices(new_notional[sl], new_entry[sl], new_long[sl].astype(bool),
                                                       self.leverages, self.table)
        old = np.unique(found[found >= 0])
        self._keys = self._keys[old].append(new_keys)
        self._slot = np.r_[self._slot[old], new_slots]
        return self._slot[self._keys.get_indexer(keys)]


def _last_mark(con, symbol: str, day: dt.date) -> float:
    """The last mark close before the end of `day` (nan when none): the mark when truth has no day-end mark."""
    close = marks.last_mark_close(con, symbol, dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))
    return float("nan") if close is None else close


def _near(price: np.ndarray, mark: float) -> np.ndarray:
    """Prices within ±MARK_WINDOW of `mark` (none when the mark is unknown)."""
    return np.abs(np.asarray(price, dtype=np.float64) / mark - 1) <= MARK_WINDOW if np.isfinite(mark) else \
        np.zeros(np.shape(price), dtype=bool)


def _window_overlap(est: pd.DataFrame, true: pd.DataFrame) -> float:
    """Overlap inside the mark window: 0 when the estimate puts nothing where the truth has notional (nan
    only when the truth has none there)."""
    if float(np.sum(true["notional_usd"])) > 0 and not float(np.sum(est["notional_usd"])) > 0:
        return 0.0
    return _overlaps(est, true)["overlap"]


def _binned(side: np.ndarray, price: np.ndarray, notional: np.ndarray, grid: PriceGrid) -> pd.DataFrame:
    """Notional per (side, bin) of `grid`, unaggregated rows (_overlaps adds duplicates up)."""
    return pd.DataFrame({"side": np.asarray(side, dtype=str), "bin_id": grid.bin_id(np.asarray(price, np.float64)),
                         "notional_usd": np.asarray(notional, dtype=np.float64)})


def _distance(est_side, est_price, est_notional, true_side, true_price, true_notional) -> float:
    """Notional-weighted log-price 1-Wasserstein distance per side, averaged with the true side shares."""
    es, ts = np.asarray(est_side, dtype=str), np.asarray(true_side, dtype=str)
    tn = np.asarray(true_notional, dtype=np.float64)
    parts, weights = [], []
    for side in ("long", "short"):
        d = scoring.weighted_log_price_distance(np.asarray(est_price)[es == side], np.asarray(est_notional)[es == side],
                                                np.asarray(true_price)[ts == side], tn[ts == side])
        if np.isfinite(d):
            parts.append(d)
            weights.append(tn[ts == side].sum())
    return float(np.average(parts, weights=weights)) if parts and sum(weights) > 0 else float("nan")


def _overlaps(est: pd.DataFrame, true: pd.DataFrame) -> dict:
    """Overlap on (side, bin) jointly and per side (nan when a side is empty). Frames of side, bin_id,
    notional_usd (duplicate cells add up); aligned with np.unique on a (bin, side) key."""
    def keyed(frame):
        side = (np.asarray(frame["side"], dtype=str) == "short").astype(np.int64)
        return np.asarray(frame["bin_id"], dtype=np.int64) * 2 + side, np.asarray(frame["notional_usd"], np.float64)

    ke, we = keyed(est)
    kt, wt = keyed(true)
    uniq, inv = np.unique(np.concatenate([ke, kt]), return_inverse=True)
    inv = inv.ravel()
    e = np.bincount(inv[:ke.size], weights=we, minlength=uniq.size)
    t = np.bincount(inv[ke.size:], weights=wt, minlength=uniq.size)
    short = np.mod(uniq, 2) == 1
    return {"overlap": scoring.distribution_overlap(e, t),
            "overlap_long": scoring.distribution_overlap(e[~short], t[~short]),
            "overlap_short": scoring.distribution_overlap(e[short], t[short])}


def ground_truth_accuracy(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date,
                          variants: tuple[str, ...] = variant_registry.NAMES, params: ModelParams = MODEL) -> list[dict]:
    """Per variant, how the estimate of day D compares with the simulator's positions open at the end of D,
    and how that compares with the best achievable (the oracle map's ceiling).

    True liquidation map: positions with open_time < D+1 and (close_time NULL or ≥ D+1), notional at entry
    (quantity × entry_price) at their exact `liq_price`. Estimated: the variant's model.liquidation_levels
    of D (the surviving map: consumption already applied) and the end-of-day model.liquidation_heatmap
    snapshot. Ceiling: the same overlap for `oracle_map` (every open position known except its leverage).
    Figures per variant:
    - overlap 1 − ½Σ|p_est − p_true| on (side, bin) at the model grid (0.1 % by default) and at 1 % bins
      (estimated levels re-binned by their price), per side, and each divided by the ceiling; the primary
      figure `overlap_over_ceiling_10pct` takes both maps within ±10 % of the day-end mark only (the window
      a trader reads), each renormalised there;
    - `distance_log`: bin-free notional-weighted 1-Wasserstein distance of log liquidation prices (per
      side, averaged with the true side shares), and the oracle's;
    - long-share error |est − true| with both shares taken on surviving maps (levels vs open positions);
    - the mean absolute relative error of the simplified formula (flat MMR 0.4 %, liquidation-math.md §6)
      and of our exact tiered formula against the truth.
    An empty list when the truth has no open position that day.
    """
    return ground_truth_days(con, symbol, [day], variants, params)


def ground_truth_days(con: duckdb.DuckDBPyConnection, symbol: str, days: list[dt.date],
                      variants: tuple[str, ...] = variant_registry.NAMES, params: ModelParams = MODEL) -> list[dict]:
    """`ground_truth_accuracy` of every day of `days`, in order, the rows concatenated. The oracle maps of a
    run of consecutive days are one task of pipeline/workers.py (one run per worker process, so with worker
    processes open they are computed there while the next days' truth is read), which keeps each position's
    prices from one day to the next (OraclePrices); the same arithmetic per point gives the same figures."""
    prepared: list[_DayTruth | None] = []
    for run in _runs(list(days), workers.workers()):
        part = [_day_truth(con, symbol, day, params) for day in run]
        priced = [p for p in part if p is not None and p.ceiling_args is not None]
        pending = workers.submit(_ceilings, [p.ceiling_args for p in priced])
        for i, p in enumerate(priced):
            p.ceiling, p.ceiling_args = _OneOf(pending, i), None
        prepared += part
    return [row for p in prepared if p is not None for row in _variant_rows(con, p, variants)]


def _runs(days: list[dt.date], n: int) -> list[list[dt.date]]:
    """`days` cut into at most `n` runs of consecutive items of about equal length."""
    n = max(1, min(n, len(days)))
    cuts = [round(i * len(days) / n) for i in range(n + 1)]
    return [days[cuts[i]:cuts[i + 1]] for i in range(n)]


@dataclass(frozen=True)
class _OneOf:
    """Item `i` of the list a pending task returns, with the Future's `result()`."""

    pending: Future
    i: int

    def result(self):
        return self.pending.result()[self.i]


@dataclass
class _DayTruth:
    """What ground_truth_accuracy reads of one day's truth, and its oracle ceiling (pending: a Future)."""

    symbol: str
    day: dt.date
    positions: pd.DataFrame
    t_side: np.ndarray
    t_price: np.ndarray
    t_notional: np.ndarray
    true_fine: pd.DataFrame
    true_coarse: pd.DataFrame
    true_near: pd.DataFrame
    mark: float
    true_long_share: float
    simplified_mare: float
    exact_mare: float
    ceiling: _OneOf | None = None
    #: The arguments of _ceiling until ground_truth_days hands them to a worker (None: nothing to price).
    ceiling_args: tuple | None = None


def _day_truth(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, params: ModelParams) -> _DayTruth | None:
    """One day's true map, read once, with the arguments of its ceiling (None: no open position)."""
    ensure_read_tables(con)
    positions = _true_open_positions(con, symbol, day)
    if positions.empty:
        return None
    grid = grid_for(symbol, params)
    coarse = PriceGrid("relative", COARSE_BIN_WIDTH)
    priced = positions[positions["liq_price"] > 0].reset_index(drop=True)
    t_side, t_price = priced["side"].to_numpy(dtype=str), priced["liq_price"].to_numpy(np.float64)
    t_notional = priced["notional_usd"].to_numpy(np.float64)
    true_fine, true_coarse = (_binned(t_side, t_price, t_notional, g) for g in (grid, coarse))
    mark = float(positions["mark_price"].iloc[0]) if positions["mark_price"].notna().any() else _last_mark(con, symbol, day)
    true_near = _binned(t_side[_near(t_price, mark)], t_price[_near(t_price, mark)], t_notional[_near(t_price, mark)],
                        grid)
    notional = positions["notional_usd"].to_numpy()
    true_long_share = float(notional[positions["side"].to_numpy(dtype=str) == "long"].sum() / notional.sum())

    side = np.where(t_side == "long", margin.LONG, margin.SHORT)
    simplified = margin.simplified_liquidation_price(side, priced["entry_price"].to_numpy(),
                                                     priced["leverage"].to_numpy(), SIMPLIFIED_MMR)
    simplified_mare = scoring.mean_abs_relative_error(simplified, t_price)
    ceiling_args = None
    try:
        table = margin.table_for(symbol, day).table
        exact = margin.tiered_liquidation_price(side, priced["quantity"].to_numpy(), priced["entry_price"].to_numpy(),
                                                priced["isolated_margin_usd"].to_numpy(), table).price
        exact_mare = scoring.mean_abs_relative_error(exact, t_price)
        lev, w = true_leverage_mix(con, symbol, day)
        low, high = _mark_extremes_after(con, symbol, priced["open_time"].to_numpy(),
                                         dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))
        ceiling_args = (priced, lev, w, table, low, high, grid, coarse, mark, true_fine, true_coarse, true_near,
                        t_side, t_price, t_notional)
    except margin.BracketError:
        exact_mare = float("nan")
    return _DayTruth(symbol, day, positions, t_side, t_price, t_notional, true_fine, true_coarse, true_near, mark,
                     true_long_share, simplified_mare, exact_mare, ceiling_args=ceiling_args)


def _ceilings(days: list[tuple]) -> list[dict | None]:
    """`_ceiling` of each of `days` (its arguments, consecutive days of one symbol), the positions' prices kept
    from each day to the next (OraclePrices, over every leverage of the days' mixes) while the table is the same."""
    leverages = np.unique(np.concatenate([np.asarray(d[1], dtype=np.float64) for d in days])) if days else None
    kept, out = None, []
    for args in days:
        table = args[3]
        if kept is None or kept.table.id != table.id:
            kept = OraclePrices(table, leverages)
        out.append(_ceiling(*args, prices=kept))
    return out


def _ceiling(priced: pd.DataFrame, lev: np.ndarray, w: np.ndarray, table: margin.BracketTable, low: np.ndarray,
             high: np.ndarray, grid: PriceGrid, coarse: PriceGrid, mark: float, true_fine: pd.DataFrame,
             true_coarse: pd.DataFrame, true_near: pd.DataFrame, t_side: np.ndarray, t_price: np.ndarray,
             t_notional: np.ndarray, prices: OraclePrices | None = None) -> dict | None:
    """The oracle map's figures of a day (ground_truth_accuracy); None when the bracket table cannot price it.
    `prices`: the positions' prices kept from the days before (OraclePrices) to take instead of pricing them."""
    def cell_of(p: np.ndarray) -> np.ndarray:  # inside every bin scored below, so those figures stay exact
        log_p = np.log(np.asarray(p, dtype=np.float64))  # once for both grids (tens of millions of points a day)
        return ((grid.bin_id(p, log_p) << 22) + ((coarse.bin_id(p, log_p) & 0xFFFFF) << 1)
                + _near(p, mark).astype(np.int64))

    try:
        oracle = oracle_map(priced, lev, w, table, low, high, cell_of=cell_of, prices=prices)
    except margin.BracketError:
        return None
    fine = _overlaps(_binned(oracle.side, oracle.price, oracle.notional_usd, grid), true_fine)
    return {"ceiling": fine["overlap"], "ceiling_long": fine["overlap_long"],
            "ceiling_short": fine["overlap_short"],
            "ceiling_1pct": _overlaps(_binned(oracle.side, oracle.price, oracle.notional_usd, coarse),
                                      true_coarse)["overlap"],
            "ceiling_10pct": _window_overlap(_binned(oracle.side[_near(oracle.price, mark)],
                                                     oracle.price[_near(oracle.price, mark)],
                                                     oracle.notional_usd[_near(oracle.price, mark)], grid),
                                             true_near),
            "distance_log_ceiling": _distance(oracle.side, oracle.price, oracle.notional_usd,
                                              t_side, t_price, t_notional),
            "oracle_unplaced_positions": oracle.unplaced_positions}


def _variant_rows(con: duckdb.DuckDBPyConnection, truth: _DayTruth | None, variants: tuple[str, ...]) -> list[dict]:
    """ground_truth_accuracy's rows of one day, one per variant with levels or a heatmap that day."""
    if truth is None:
        return []
    symbol, day, positions, mark = truth.symbol, truth.day, truth.positions, truth.mark
    t_side, t_price, t_notional = truth.t_side, truth.t_price, truth.t_notional
    true_fine, true_coarse, true_near = truth.true_fine, truth.true_coarse, truth.true_near
    coarse = PriceGrid("relative", COARSE_BIN_WIDTH)
    notional = positions["notional_usd"].to_numpy()
    true_long_share, simplified_mare, exact_mare = truth.true_long_share, truth.simplified_mare, truth.exact_mare
    ceiling: dict = {}
    if truth.ceiling is not None:
        computed = truth.ceiling.result()
        if computed is None:  # the oracle could not be priced: as a bracket error before the ceiling
            exact_mare = float("nan")
        else:
            ceiling = computed

    def ratio(value: float, key: str) -> float:
        c = ceiling.get(key, float("nan"))
        return value / c if np.isfinite(value) and np.isfinite(c) and c > 0 else float("nan")

    rows = []
    for variant in variants:
        levels = maps.day_levels(con, symbol, day, variant)
        heat = maps.end_of_day_snapshot(con, symbol, day, variant)
        if levels.empty and heat.empty:
            continue
        lv = _overlaps(levels, true_fine)
        lv_coarse = _overlaps(_binned(levels["side"], levels["price"], levels["notional_usd"], coarse), true_coarse)
        near = _near(levels["price"].to_numpy(np.float64), mark)
        lv_near = {"overlap": _window_overlap(levels[near], true_near)}
        hm = _overlaps(heat, true_fine) if not heat.empty else {}
        hm_coarse = _overlaps(_binned(heat["side"], heat["price"], heat["notional_usd"], coarse), true_coarse) \
            if not heat.empty else {}
        lv_notional = levels["notional_usd"].to_numpy(np.float64)
        share = float(lv_notional[levels["side"].to_numpy(dtype=str) == "long"].sum() / lv_notional.sum()) \
            if lv_notional.sum() > 0 else float("nan")
        rows.append({
            "symbol": symbol, "day": day.isoformat(), "variant": variant,
            "true_positions": int(len(positions)), "true_notional_usd": float(notional.sum()),
            "overlap_levels": lv["overlap"], "overlap_levels_long": lv["overlap_long"],
            "overlap_levels_short": lv["overlap_short"], "overlap_levels_1pct": lv_coarse["overlap"],
            "overlap_levels_10pct": lv_near["overlap"],
            "overlap_over_ceiling_10pct": ratio(lv_near["overlap"], "ceiling_10pct"),
            "overlap_heatmap_eod": hm.get("overlap", float("nan")),
            **{k: v for k, v in ceiling.items() if k != "oracle_unplaced_positions"},
            "overlap_over_ceiling": ratio(lv["overlap"], "ceiling"),
            "overlap_over_ceiling_1pct": ratio(lv_coarse["overlap"], "ceiling_1pct"),
            "overlap_heatmap_eod_over_ceiling": ratio(hm.get("overlap", float("nan")), "ceiling"),
            "overlap_heatmap_eod_1pct": hm_coarse.get("overlap", float("nan")),
            "overlap_heatmap_eod_over_ceiling_1pct": ratio(hm_coarse.get("overlap", float("nan")), "ceiling_1pct"),
            "overlap_levels_long_over_ceiling": ratio(lv["overlap_long"], "ceiling_long"),
            "overlap_levels_short_over_ceiling": ratio(lv["overlap_short"], "ceiling_short"),
            "distance_log": _distance(levels["side"], levels["price"], levels["notional_usd"], t_side, t_price,
                                      t_notional),
            "oracle_unplaced_positions": ceiling.get("oracle_unplaced_positions", 0),
            "long_share_est": share, "long_share_true": true_long_share,
            "long_share_error": abs(share - true_long_share),
            # The yardstick a long-share estimate must beat: always saying 0.5.
            "long_share_error_constant_half": abs(0.5 - true_long_share),
            "simplified_formula_mare": simplified_mare, "exact_formula_mare": exact_mare,
        })
    return rows
