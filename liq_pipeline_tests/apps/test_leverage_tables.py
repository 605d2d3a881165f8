"""The leverage filter of `liq serve` as dense tables (apps/serve_data.py `leverage_share`, `apply_leverage`):
the same bits as the per-(day, side) loop it replaced, for bins and (day, side) groups the book lacks too."""

from __future__ import annotations

import numpy as np

from liq_pipeline import config
from liq_pipeline.apps import serve_data as sd


def _reference(book: dict, leverages, cell_day, cell_side, cell_bin, notional) -> np.ndarray:
    """The earlier implementation: one mask per (day, side) over the book and over the cells (where a side
    of a day is missing from the book its cells keep nothing, as the loop meant)."""
    selected = np.isin(np.asarray(config.FLOW.leverages)[book["lev_bucket"]], leverages)
    out = np.zeros_like(notional)
    for day in np.unique(book["day"]):
        for side in (1, -1):
            m = (book["day"] == day) & (book["side"] == side)
            bins, inv = np.unique(book["bin_id"][m], return_inverse=True)
            total = np.bincount(inv, weights=book["notional_usd"][m], minlength=bins.size)
            chosen = np.bincount(inv, weights=book["notional_usd"][m] * selected[m], minlength=bins.size)
            side_share = float(chosen.sum() / total.sum()) if total.sum() > 0 else 0.0
            share = chosen / np.where(total > 0, total, 1.0)
            c = (cell_day == day) & (cell_side == side)
            if bins.size == 0:  # the loop raised IndexError here (a day whose book has one side only)
                continue
            pos = np.searchsorted(bins, cell_bin[c])
            hit = (pos < bins.size) & (bins[np.minimum(pos, bins.size - 1)] == cell_bin[c])
            out[c] = notional[c] * np.where(hit, share[np.minimum(pos, bins.size - 1)], side_share)
    return out


class _Source:
    def __init__(self, book):
        self.book = book

    def flow_book_leverage(self, symbol, variant, grid, first, last):
        return self.book


def test_dense_tables_give_the_loops_bits_with_missing_bins_and_days():
    rng = np.random.default_rng(5)
    n = 5000
    days = np.array(["2026-01-02", "2026-01-03", "2026-01-05"], "datetime64[D]")  # no book on the 4th
    book = {"day": rng.choice(days, n), "side": rng.choice(np.array([1, -1], np.int8), n),
            "bin_id": rng.integers(800, 1400, n), "lev_bucket": rng.integers(0, len(config.FLOW.leverages), n),
            "notional_usd": rng.lognormal(10, 2, n)}
    book["notional_usd"][(book["day"] == days[2]) & (book["side"] < 0)] = 0.0  # a side with nothing: share 0
    keep = ~((book["day"] == days[1]) & (book["side"] > 0))  # the 3rd's longs not in the book at all
    book = {k: v[keep] for k, v in book.items()}
    m = 40_000
    cell_day = rng.choice(np.array(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"],
                                   "datetime64[D]"), m)
    cell_side = rng.choice(np.array([1, -1], np.int8), m)
    cell_bin = rng.integers(700, 1500, m)  # beyond the book's bins on both ends
    notional = rng.lognormal(12, 1, m)
    q = sd.Query("BTCUSDT", "flow", None, None, "1w", (10.0, 20.0))
    shares, _ = sd.leverage_share(_Source(book), q, None, np.unique(cell_day))
    got = sd.apply_leverage(cell_day, cell_side, cell_bin, notional, shares)
    want = _reference(book, q.leverages, cell_day, cell_side, cell_bin, notional)
    assert np.array_equal(got, want)
    assert (got[cell_day == np.datetime64("2026-01-04")] == 0).all()
    assert got.sum() > 0
