"""Realism figures of a simulated market, measured from what the simulator wrote (truth + archive files).

`liq simulate` prints them and the tests pin them: open interest conservation (Σ long = Σ short), the
speculators' long share over time, how order-flow imbalance per price bin tracks the true speculative
long share of entries, how the public long/short ratios track the true share, the weight of the largest
position, and the scale (OI, daily volume). Reads only files; numpy and pandas, no Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from liq_pipeline.market.formats import ArchiveFile

#: Width of the price bins of the OFI figure, in basis points of the mean price.
OFI_BIN_BPS = 20.0
#: Bins with fewer speculative entries than this are left out of the OFI correlation.
OFI_MIN_ENTRIES = 20


def _days(root: Path) -> list[dt.date]:
    cfg = json.loads((root / "simulation.json").read_text())["config"]
    start = dt.date.fromisoformat(cfg["start"])
    return [start + dt.timedelta(days=i) for i in range(cfg["days"])]


def read_archive(root: Path, kind: str, symbol: str, days: list[dt.date], interval: str | None = None) -> pd.DataFrame:
    frames = []
    for day in days:
        spec = ArchiveFile(kind, symbol, day, interval=interval)
        frames.append(pd.read_csv(root / spec.relpath, compression="zip", dtype={"is_buyer_maker": str}))
    return pd.concat(frames, ignore_index=True)


def speculative_lots_at(positions: pd.DataFrame, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ quantity of open speculative longs and shorts at instants `t` (datetime64[ms]): a position counts
    from its open (exclusive) to its close (inclusive), as the 5-minute samples see the book before the
    events of their minute."""
    out = []
    for side in ("long", "short"):
        p = positions[positions["side"] == side]
        qty = p["quantity"].to_numpy()
        open_t = p["open_time"].to_numpy().astype("datetime64[ms]")
        close_t = p["close_time"].to_numpy().astype("datetime64[ms]")
        order_o = np.argsort(open_t)
        cum_o = np.r_[0.0, np.cumsum(qty[order_o])]
        opened = cum_o[np.searchsorted(open_t[order_o], t, side="left")]
        closed_mask = ~np.isnat(close_t)
        ct = close_t[closed_mask]
        order_c = np.argsort(ct)
        cum_c = np.r_[0.0, np.cumsum(qty[closed_mask][order_c])]
        closed = cum_c[np.searchsorted(ct[order_c], t, side="left")]
        out.append(opened - closed)
    return out[0], out[1]


def provider_lots_at(providers: pd.DataFrame, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ long and Σ short quantity of the providers at the sample instants `t` (their file has every sample)."""
    q = providers.assign(long=providers["position_quantity"].clip(lower=0),
                         short=(-providers["position_quantity"]).clip(lower=0))
    g = q.groupby("time")[["long", "short"]].sum()
    g = g.reindex(pd.DatetimeIndex(t.astype("datetime64[ms]")))
    return g["long"].to_numpy(), g["short"].to_numpy()


def ofi_vs_entry_long_share(trades: pd.DataFrame, positions: pd.DataFrame,
                            bin_bps: float = OFI_BIN_BPS, min_entries: int = OFI_MIN_ENTRIES) -> tuple[float, int]:
    """Pearson r across price bins between order-flow imbalance of all aggTrades, (buy − sell)/(buy + sell)
    by quantity, and the true speculative long share of entries (quantity at entry price). Returns (r, bins)."""
    width = float(trades["price"].mean()) * bin_bps / 10_000
    tb = np.floor(trades["price"].to_numpy() / width).astype(np.int64)
    q = trades["quantity"].to_numpy()
    buy = trades["is_buyer_maker"].str.lower().to_numpy() == "false"
    flow = pd.DataFrame({"bin": tb, "signed": np.where(buy, q, -q), "q": q}).groupby("bin").sum()
    ofi = flow["signed"] / flow["q"]
    pb = np.floor(positions["entry_price"].to_numpy() / width).astype(np.int64)
    is_long = (positions["side"] == "long").to_numpy()
    pq_ = positions["quantity"].to_numpy()
    ent = pd.DataFrame({"bin": pb, "long": pq_ * is_long, "q": pq_, "n": 1}).groupby("bin").sum()
    ent = ent[ent["n"] >= min_entries]
    joined = pd.concat([ofi.rename("ofi"), (ent["long"] / ent["q"]).rename("share")], axis=1, join="inner")
    if len(joined) < 3:
        return float("nan"), len(joined)
    return float(np.corrcoef(joined["ofi"], joined["share"])[0, 1]), len(joined)


def symbol_figures(root: Path, symbol: str) -> dict:
    """Every realism figure of one simulated symbol (see the module docstring)."""
    root = Path(root)
    days = _days(root)
    truth = root / "truth"
    positions = pd.read_parquet(truth / "positions" / f"{symbol}.parquet")
    providers = pd.read_parquet(truth / "providers" / f"{symbol}.parquet")
    metrics = read_archive(root, "metrics", symbol, days)
    trades = read_archive(root, "aggTrades", symbol, days)
    t = pd.to_datetime(metrics["create_time"]).to_numpy().astype("datetime64[ms]")
    spec_long, spec_short = speculative_lots_at(positions, t)
    prov_long, prov_short = provider_lots_at(providers, t)
    oi = metrics["sum_open_interest"].to_numpy()
    longs, shorts = spec_long + prov_long, spec_short + prov_short
    spec_share = spec_long / np.maximum(spec_long + spec_short, 1e-12)
    ok = (spec_long + spec_short) > 0
    mark = metrics["sum_open_interest_value"].to_numpy() / np.maximum(oi, 1e-12)
    ratios = {}
    true_ratio = spec_long / np.maximum(spec_short, 1e-12)
    for col in ("count_long_short_ratio", "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio"):
        v = metrics[col].to_numpy(dtype=float)
        good = ok & np.isfinite(v) & (spec_short > 0)
        ratios[col] = float(np.corrcoef(np.log(v[good]), np.log(true_ratio[good]))[0, 1]) if good.sum() > 2 else float("nan")
    open_pos = pd.read_parquet(truth / "open_positions" / f"{symbol}.parquet")
    spec_open = open_pos[open_pos["population"] == "speculator"]
    notional = spec_open["quantity"] * spec_open["mark_price"]
    oi_day_end = open_pos.assign(n=open_pos["quantity"] * open_pos["mark_price"]).query("side == 'long'").groupby("day")["n"].sum()
    largest = (notional.groupby(spec_open["day"]).max() / oi_day_end.reindex(notional.groupby(spec_open["day"]).max().index))
    volume = (trades["price"] * trades["quantity"]).sum() / len(days)
    r_ofi, n_bins = ofi_vs_entry_long_share(trades, positions)
    r_ofi_time, n_buckets = ofi_vs_entry_long_share_in_time(trades, positions)
    liq = pd.read_parquet(truth / "liquidations" / f"{symbol}.parquet")
    held = providers[providers["position_quantity"] != 0]
    prov_lev = (held["position_quantity"].abs() * held["mark_price"] / held["equity_usd"]).max() if len(held) else 0.0
    # Distance from the mark to a provider's liquidation price (inf when none): how far they are from it.
    dist = (np.abs(held["liq_price"] / held["mark_price"] - 1)).where(np.isfinite(held["liq_price"]), np.inf)
    return {
        "symbol": symbol,
        "oi_long_short_max_abs_error": float(np.nanmax(np.abs(longs - shorts))),
        "oi_vs_longs_max_abs_error": float(np.nanmax(np.abs(oi - longs))),
        "speculative_long_share_min": float(spec_share[ok].min()) if ok.any() else float("nan"),
        "speculative_long_share_max": float(spec_share[ok].max()) if ok.any() else float("nan"),
        "ofi_vs_entry_long_share_r": r_ofi,
        "ofi_bins": n_bins,
        "ofi_vs_entry_long_share_r_15min": r_ofi_time,
        "ofi_buckets": n_buckets,
        "public_ratio_vs_true_ratio_r": ratios,
        "largest_position_share_max": float(largest.max()) if len(largest) else float("nan"),
        "mean_oi_usd": float(np.nanmean(oi * mark)),
        "mean_daily_volume_usd": float(volume),
        "oi_to_daily_volume": float(np.nanmean(oi * mark) / volume) if volume else float("nan"),
        "provider_share_of_oi": float(np.nanmean(prov_long / np.maximum(longs, 1e-12))),
        "liquidations_per_day": len(liq) / len(days),
        "liquidated_usd_per_day": float(liq["notional_usd"].sum() / len(days)),
        "max_bracket": int(positions["bracket"].max()) if len(positions) else 0,
        "provider_max_leverage": float(prov_lev),
        "provider_min_liq_distance": float(dist.min()) if len(dist) else float("inf"),
    }


def figures(root: Path) -> dict[str, dict]:
    """symbol_figures for every symbol of the simulation in `root`."""
    cfg = json.loads((Path(root) / "simulation.json").read_text())["config"]
    return {s: symbol_figures(Path(root), s) for s in cfg["symbols"]}


def format_figures(figs: dict[str, dict]) -> str:
    """Human-readable lines, one block per symbol."""
    lines = []
    for s, f in figs.items():
        r = f["public_ratio_vs_true_ratio_r"]
        lines += [
            f"{s}: OI ${f['mean_oi_usd'] / 1e6:,.1f} M, volume ${f['mean_daily_volume_usd'] / 1e6:,.1f} M/day "
            f"(OI/volume {f['oi_to_daily_volume']:.2f}), providers hold {f['provider_share_of_oi']:.0%} of the long side",
            f"  OI = Σ long = Σ short: max error {f['oi_long_short_max_abs_error']:.3g} / {f['oi_vs_longs_max_abs_error']:.3g} "
            f"(base units); speculative long share {f['speculative_long_share_min']:.0%}–{f['speculative_long_share_max']:.0%}",
            f"  OFI vs true speculative long share of entries: r = {f['ofi_vs_entry_long_share_r']:+.2f} over "
            f"{f['ofi_bins']} price bins of {OFI_BIN_BPS:g} bp, {f['ofi_vs_entry_long_share_r_15min']:+.2f} over "
            f"{f['ofi_buckets']} 15-minute buckets",
            "  public ratios vs true speculative long/short ratio (log r): "
            + ", ".join(f"{k.replace('_long_short_ratio', '')} {v:+.2f}" for k, v in r.items()),
            f"  largest position ≤ {f['largest_position_share_max']:.1%} of OI; {f['liquidations_per_day']:.0f} liquidations "
            f"(${f['liquidated_usd_per_day'] / 1e6:,.2f} M) a day; highest tier {f['max_bracket']}",
            f"  providers: effective leverage ≤ {f['provider_max_leverage']:.2f}, liquidation price ≥ "
            f"{f['provider_min_liq_distance']:.0%} from the mark at every sample",
        ]
    return "\n".join(lines)


def ofi_vs_entry_long_share_in_time(trades: pd.DataFrame, positions: pd.DataFrame, minutes: int = 15,
                                    min_entries: int = OFI_MIN_ENTRIES) -> tuple[float, int]:
    """Pearson r across time buckets of `minutes` between the order-flow imbalance of all aggTrades and
    the true speculative long share of the positions opened in the bucket. Returns (r, buckets)."""
    width = minutes * 60_000
    tb = trades["transact_time"].to_numpy() // width
    q = trades["quantity"].to_numpy()
    buy = trades["is_buyer_maker"].str.lower().to_numpy() == "false"
    flow = pd.DataFrame({"bin": tb, "signed": np.where(buy, q, -q), "q": q}).groupby("bin").sum()
    pb = positions["open_time"].to_numpy().astype("datetime64[ms]").astype(np.int64) // width
    is_long = (positions["side"] == "long").to_numpy()
    pq_ = positions["quantity"].to_numpy()
    ent = pd.DataFrame({"bin": pb, "long": pq_ * is_long, "q": pq_, "n": 1}).groupby("bin").sum()
    ent = ent[ent["n"] >= min_entries]
    joined = pd.concat([(flow["signed"] / flow["q"]).rename("ofi"), (ent["long"] / ent["q"]).rename("share")],
                       axis=1, join="inner")
    if len(joined) < 3:
        return float("nan"), len(joined)
    return float(np.corrcoef(joined["ofi"], joined["share"])[0, 1]), len(joined)
