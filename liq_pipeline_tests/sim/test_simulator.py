"""The ground-truth market simulator: determinism, file formats, and the invariants the truth must obey."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from liq_pipeline.assets import truth
from liq_pipeline.market import formats
from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.model import margin
from liq_pipeline.resources import MarketSource
from liq_pipeline.sim import SimConfig, epoch_ms, simulate
from liq_pipeline.sim import realism as sim_realism
from liq_pipeline.warehouse.schema import TABLES

# Crosses a month boundary so two monthly fundingRate files are written.
START = dt.date(2026, 1, 31)
DAYS = 2
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def tiny(out: Path, **kw) -> SimConfig:
    base = dict(symbols=SYMBOLS, start=START, days=DAYS, seed=11, out_dir=out, trades_per_day=6_000,
                positions_per_day=1_500, workers=1)
    base.update(kw)
    return SimConfig(**base)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    summary = simulate(tiny(out))
    return out, summary


def read_zip_csv(root: Path, spec: ArchiveFile) -> pd.DataFrame:
    with zipfile.ZipFile(root / spec.relpath) as zf:
        with zf.open(spec.csv_name) as f:
            return pd.read_csv(f, dtype={"is_buyer_maker": str})


def days() -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(DAYS)]


def ddl_columns(table: str) -> list[str]:
    return [line.strip().split()[0] for line in TABLES[table].strip().splitlines() if line.strip()]


def positions(root: Path, symbol: str) -> pd.DataFrame:
    return pd.read_parquet(root / "truth" / "positions" / f"{symbol}.parquet")


def liquidations(root: Path, symbol: str) -> pd.DataFrame:
    return pd.read_parquet(root / "truth" / "liquidations" / f"{symbol}.parquet")


# ---- determinism ------------------------------------------------------------------------------------

def _file_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "simulation.json"}


def test_same_seed_gives_identical_files_and_checksums(tmp_path):
    cfg = dict(symbols=("BTCUSDT",), days=1, trades_per_day=1_000, positions_per_day=300)
    simulate(tiny(tmp_path / "a", **cfg))
    simulate(tiny(tmp_path / "b", **cfg))
    a, b = _file_digests(tmp_path / "a"), _file_digests(tmp_path / "b")
    assert a == b and len(a) > 10
    simulate(tiny(tmp_path / "c", seed=12, **cfg))
    other = _file_digests(tmp_path / "c")
    agg = ArchiveFile("aggTrades", "BTCUSDT", START).relpath
    assert other[agg] != a[agg], "a different seed must give a different market"


def test_parallel_workers_give_the_same_files_as_one_process(tmp_path):
    cfg = dict(days=1, trades_per_day=800, positions_per_day=200)
    simulate(tiny(tmp_path / "serial", **cfg))
    simulate(tiny(tmp_path / "parallel", workers=2, **cfg))
    assert _file_digests(tmp_path / "serial") == _file_digests(tmp_path / "parallel")


# ---- archive layout and formats ---------------------------------------------------------------------

def _all_specs() -> list[ArchiveFile]:
    specs = []
    for symbol in SYMBOLS:
        for day in days():
            specs += [ArchiveFile("aggTrades", symbol, day), ArchiveFile("klines", symbol, day, interval="1m"),
                      ArchiveFile("markPriceKlines", symbol, day, interval="1m"),
                      ArchiveFile("premiumIndexKlines", symbol, day, interval="1m"), ArchiveFile("metrics", symbol, day)]
        specs += [ArchiveFile("fundingRate", symbol, dt.date(2026, 1, 1), cadence="monthly"),
                  ArchiveFile("fundingRate", symbol, dt.date(2026, 2, 1), cadence="monthly")]
    return specs


def test_every_archive_file_has_a_valid_checksum_and_the_documented_header(sim):
    root, _ = sim
    for spec in _all_specs():
        zpath = root / spec.relpath
        checksum = (root / spec.checksum_relpath).read_bytes()
        assert checksum == f"{hashlib.sha256(zpath.read_bytes()).hexdigest()}  {spec.file_name}".encode()
        with zipfile.ZipFile(zpath) as zf:
            (info,) = zf.infolist()
            assert info.filename == spec.csv_name and info.date_time == (1980, 1, 1, 0, 0, 0)
            first_line = zf.read(info).split(b"\n", 1)[0].decode()
        assert first_line == ",".join(formats.KLINES_COLUMNS if spec.kind in formats.KLINE_KINDS
                                      else formats.COLUMNS[spec.kind])


def test_agg_trades_ids_are_continuous_across_days_and_sides_are_lowercase_booleans(sim):
    root, summary = sim
    for symbol in SYMBOLS:
        frames = [read_zip_csv(root, ArchiveFile("aggTrades", symbol, day)) for day in days()]
        for day, f in zip(days(), frames, strict=True):
            assert f["transact_time"].between(epoch_ms(day), epoch_ms(day) + 86_400_000 - 1).all()
            assert f["transact_time"].is_monotonic_increasing
            assert set(f["is_buyer_maker"]) == {"true", "false"}
        trades = pd.concat(frames, ignore_index=True)
        assert trades["agg_trade_id"].iloc[0] == 1
        assert (np.diff(trades["agg_trade_id"]) == 1).all()
        assert (trades["first_trade_id"].iloc[1:].to_numpy() == trades["last_trade_id"].iloc[:-1].to_numpy() + 1).all()
        assert (trades["last_trade_id"] >= trades["first_trade_id"]).all()
        tick = 0.1 if symbol == "BTCUSDT" else 0.01
        assert np.allclose(np.round(trades["price"] / tick) * tick, trades["price"], rtol=0, atol=1e-9)
        assert len(trades) == summary.symbols[symbol].rows["aggTrades"]
        assert len(frames[0]) >= 3_000


def test_trade_klines_add_up_to_the_trades_and_mark_klines_look_like_binance(sim):
    root, _ = sim
    for day in days():
        trades = read_zip_csv(root, ArchiveFile("aggTrades", "BTCUSDT", day))
        klines = read_zip_csv(root, ArchiveFile("klines", "BTCUSDT", day, interval="1m"))
        mark = read_zip_csv(root, ArchiveFile("markPriceKlines", "BTCUSDT", day, interval="1m"))
        assert len(klines) == len(mark) == 1440
        assert klines["volume"].sum() == pytest.approx(trades["quantity"].sum(), rel=1e-9)
        taker_buy = trades.loc[trades["is_buyer_maker"] == "false", "quantity"].sum()
        assert klines["taker_buy_volume"].sum() == pytest.approx(taker_buy, rel=1e-9)
        assert (klines["count"].sum() == (trades["last_trade_id"] - trades["first_trade_id"] + 1).sum())
        assert (klines["close_time"] == klines["open_time"] + 59_999).all()
        assert (klines["high"] >= klines[["open", "close"]].max(axis=1)).all()
        assert (klines["low"] <= klines[["open", "close"]].min(axis=1)).all()
        assert (mark["count"] == 60).all() and (mark["volume"] == 0).all() and (mark["taker_buy_volume"] == 0).all()
        assert (mark["high"] >= mark["low"]).all()
        # BTC stays at a realistic level in two days.
        assert 50_000 < mark["close"].iloc[-1] < 150_000


# ---- ground-truth invariants ------------------------------------------------------------------------

def test_truth_parquet_columns_are_exactly_the_warehouse_tables(sim):
    root, _ = sim
    for symbol in SYMBOLS:
        assert list(positions(root, symbol).columns) == ddl_columns("truth.positions")
        assert list(liquidations(root, symbol).columns) == ddl_columns("truth.liquidations")
        pos = positions(root, symbol)
        assert set(pos["outcome"]) == {"open", "closed", "liquidated"}
        assert set(pos["side"]) == {"long", "short"}
        assert (pos["close_time"].isna() == (pos["outcome"] == "open")).all()
        assert (pos["close_time"].dropna() > pos.loc[pos["close_time"].notna(), "open_time"]).all()
        assert (pos["day"] == pos["open_time"].dt.date).all()


def providers(root: Path, symbol: str) -> pd.DataFrame:
    return pd.read_parquet(root / "truth" / "providers" / f"{symbol}.parquet")


def _metrics(root: Path, symbol: str) -> pd.DataFrame:
    return pd.concat([read_zip_csv(root, ArchiveFile("metrics", symbol, d)) for d in days()], ignore_index=True)


def test_open_interest_is_sum_long_and_sum_short_at_every_sample(sim):
    root, _ = sim
    for symbol in SYMBOLS:
        pos, prov = positions(root, symbol), providers(root, symbol)
        metrics = _metrics(root, symbol)
        assert len(metrics) == 288 * DAYS and (metrics["symbol"] == symbol).all()
        t = pd.to_datetime(metrics["create_time"]).to_numpy().astype("datetime64[ms]")
        # A sample at t is the book before the events of minute t: opened before t, not yet closed.
        spec_long, spec_short = sim_realism.speculative_lots_at(pos, t)
        prov_long, prov_short = sim_realism.provider_lots_at(prov, t)
        assert len(prov) == len(t) * prov["account_id"].nunique()
        longs, shorts = spec_long + prov_long, spec_short + prov_short
        np.testing.assert_allclose(longs, shorts, rtol=0, atol=1e-6)
        np.testing.assert_allclose(metrics["sum_open_interest"].to_numpy(), longs, rtol=0, atol=1e-6)
        assert longs.max() > 0
        # Both populations hold each side at some time: providers are the counterparty, not a mirror.
        assert prov_long.max() > 0 and prov_short.max() > 0
        # Providers: low effective leverage, liquidation prices far from the mark at every sample.
        held = prov[prov["position_quantity"] != 0]
        assert (held["position_quantity"].abs() * held["mark_price"] / held["equity_usd"]).max() < 3
        far = ~np.isfinite(held["liq_price"]) | (np.abs(held["liq_price"] / held["mark_price"] - 1) > 0.3)
        assert far.all()
        assert (spec_long > spec_short).any() or (spec_short > spec_long).any()


def test_public_ratios_come_from_accounts_not_from_the_exact_book(sim):
    root, _ = sim
    for symbol in SYMBOLS:
        pos, prov = positions(root, symbol), providers(root, symbol)
        metrics = _metrics(root, symbol)
        t = pd.to_datetime(metrics["create_time"]).to_numpy().astype("datetime64[ms]")
        spec_long, spec_short = sim_realism.speculative_lots_at(pos, t)
        warm = t >= t[0] + np.timedelta64(6, "h")  # a book of a few hundred accounts at least
        true_ratio = spec_long[warm] / spec_short[warm]
        # All-accounts counts track the crowd closely (as on Binance); the top-trader ratios, where the
        # providers' balances weigh, less (0.96 for the balance-weighted one on this market since openers
        # follow the activity across days: more speculators on a wild day).
        for col, r_max in (("count_long_short_ratio", 0.99), ("count_toptrader_long_short_ratio", 0.95),
                           ("sum_toptrader_long_short_ratio", 0.97)):
            public = metrics[col].to_numpy(dtype=float)[warm]
            assert np.isfinite(public).all() and (public > 0).all(), col
            # Not the speculators' long/short quantity ratio, and not a function of it: account counts,
            # balances and the providers' accounts enter.
            assert np.median(np.abs(np.log(public / true_ratio))) > 0.01, col
            assert abs(np.corrcoef(np.log(public), np.log(true_ratio))[0, 1]) < r_max, col
        # The providers (largest balances) are in the top 20 % and hold the other side of the crowd.
        assert prov["account_id"].nunique() >= 2


def test_liquidation_prices_are_exact_tiered_binance_prices(sim):
    root, _ = sim
    brackets_seen = set()
    for symbol in SYMBOLS:
        pos = positions(root, symbol)
        for day, group in pos.groupby("day"):
            table = margin.table_for(symbol, day).table
            side = np.where(group["side"] == "long", margin.LONG, margin.SHORT)
            exact = margin.tiered_liquidation_price(side, group["quantity"], group["entry_price"],
                                                   group["isolated_margin_usd"], table)
            np.testing.assert_array_equal(exact.price, group["liq_price"].to_numpy())
            np.testing.assert_array_equal(exact.bracket, group["bracket"].to_numpy())
            np.testing.assert_allclose(group["isolated_margin_usd"],
                                       group["quantity"] * group["entry_price"] / group["leverage"], rtol=1e-12)
            feasible = margin.max_leverage_at(group["quantity"] * group["entry_price"], table)
            assert (np.isnan(feasible) | (group["leverage"] <= feasible)).all()
        assert ((pos["side"] == "long") == (pos["liq_price"] < pos["entry_price"])).all()
        brackets_seen |= set(pos["bracket"])
    assert max(brackets_seen) >= 2, "position sizes must reach more than one maintenance tier"


def test_leverage_mix_is_not_the_estimators_default(sim):
    root, _ = sim
    pos = pd.concat([positions(root, s) for s in SYMBOLS])
    assert set(pos["margin_mode"]) == {"isolated", "cross"}
    cross = pos["margin_mode"] == "cross"
    # Cross-margin leverage is the effective notional / account balance: lower, never below 1.5.
    assert pos.loc[cross, "leverage"].min() >= 1.5 and pos.loc[cross, "leverage"].median() < pos.loc[~cross, "leverage"].median()
    assert (pos["account_balance_usd"] >= pos["isolated_margin_usd"] * (1 - 1e-12)).all()
    lev = pos.loc[~cross, "leverage"]
    assert lev.max() > 100 and lev.min() >= 2
    share_default = lev.isin([5, 10, 20, 50, 100]).mean()
    assert share_default < 0.75
    assert lev.between(10, 25).mean() > 0.2
    # Larger accounts use less leverage: weighted by notional, the mix sits lower than by count.
    notional = pos["quantity"] * pos["entry_price"]
    assert (pos["leverage"] * notional).sum() / notional.sum() < pos["leverage"].mean()


def _mark_klines(root: Path, symbol: str) -> pd.DataFrame:
    frames = [read_zip_csv(root, ArchiveFile("markPriceKlines", symbol, d, interval="1m")) for d in days()]
    return pd.concat(frames, ignore_index=True)


def _funding_paid(root: Path, symbol: str, frame: pd.DataFrame, since: pd.Series, until: pd.Series) -> np.ndarray:
    """Σ side · quantity · mark · rate over the settlements T with since < T <= until, per row of `frame`."""
    funding = pd.read_parquet(root / "truth" / "funding" / f"{symbol}.parquet")
    sign = np.where(frame["side"] == "long", 1.0, -1.0)
    paid = np.zeros(len(frame))
    for row in funding.itertuples(index=False):
        alive = ((since < row.funding_time) & (row.funding_time <= until)).to_numpy()
        paid += np.where(alive, sign * frame["quantity"].to_numpy() * row.mark_price * row.funding_rate, 0.0)
    return paid


def _margin_changes(root: Path, symbol: str) -> pd.DataFrame:
    return pd.read_parquet(root / "truth" / "margin_changes" / f"{symbol}.parquet")


def test_every_liquidation_happened_at_the_liquidation_price_in_force_when_mark_crossed_it(sim):
    root, _ = sim
    for symbol in SYMBOLS:
        pos = positions(root, symbol)
        liq = liquidations(root, symbol)
        assert len(liq) > 0
        merged = liq.merge(pos, on=["symbol", "position_id"], suffixes=("", "_pos"))
        assert len(merged) == len(liq) and (merged["outcome"] == "liquidated").all()
        assert (merged["side"] == merged["side_pos"]).all()
        assert (merged["liq_time"] == merged["close_time"]).all()
        assert (merged["day"] == merged["liq_time"].dt.date).all()
        np.testing.assert_allclose(merged["notional_usd"], merged["quantity"] * merged["price"], rtol=1e-12)
        assert (pos["outcome"] == "liquidated").sum() == len(liq)
        # The price in force: the opening margin (or the last top-up's) minus the funding paid since,
        # through the exact tiered formula.
        changes = _margin_changes(root, symbol)
        last = changes.sort_values("change_time").groupby("position_id").last()
        merged = merged.join(last[["change_time", "isolated_margin_usd"]].add_suffix("_top_up"), on="position_id")
        topped = merged["change_time_top_up"].notna() & (merged["change_time_top_up"] < merged["liq_time"])
        since = merged["open_time"].where(~topped, merged["change_time_top_up"])
        base = merged["isolated_margin_usd"].where(~topped, merged["isolated_margin_usd_top_up"])
        wallet = base - _funding_paid(root, symbol, merged, since, merged["liq_time"])
        table = margin.table_for(symbol, START).table
        side = np.where(merged["side"] == "long", margin.LONG, margin.SHORT)
        in_force = margin.tiered_liquidation_price(side, merged["quantity"], merged["entry_price"], wallet, table)
        np.testing.assert_allclose(merged["price"], in_force.price, rtol=1e-9)
        assert (merged["price"] != merged["liq_price"]).any(), "funding moved some liquidation prices"
        # The forced order's price is the bankruptcy price with the margin in force (what the public
        # liquidationSnapshot / forceOrder records carry).
        snap = pd.concat([pd.read_csv(root / "truth" / "liquidationSnapshot" / symbol / f"{symbol}-liquidationSnapshot-{d}.csv")
                          for d in days()], ignore_index=True)
        sign = np.where(merged["side"] == "long", 1.0, -1.0)
        bankrupt = np.maximum(np.round(merged["entry_price"] - sign * wallet / merged["quantity"], 1 if symbol == "BTCUSDT" else 2),
                              0.01)
        by_time = merged.assign(bankrupt=bankrupt, t=merged["liq_time"].astype("datetime64[ms]").astype("int64"))
        joined = snap.merge(by_time, left_on="time", right_on="t")
        assert len(joined) >= len(snap)
        np.testing.assert_allclose(joined["price_x"], joined["bankrupt"], atol=0.011)
        con = duckdb.connect()
        con.register("mark", _mark_klines(root, symbol))
        con.register("liq", liq)
        # The liquidation minute's mark range reaches the price in force ...
        missed_trigger = con.execute("""
            SELECT count(*) FROM liq JOIN mark
              ON mark.open_time = epoch_ms(date_trunc('minute', liq.liq_time))
            WHERE (liq.side = 'long' AND mark.low > liq.price) OR (liq.side = 'short' AND mark.high < liq.price)
        """).fetchall()[0][0]
        assert missed_trigger == 0
        # ... and no position whose price never moved (no settlement, no top-up in its life) saw mark cross
        # it in any full minute of its life before it ended (checks start the minute after opening).
        funding = pd.read_parquet(root / "truth" / "funding" / f"{symbol}.parquet")["funding_time"].to_numpy()
        open_t, close_t = pos["open_time"].to_numpy(), pos["close_time"].fillna(pd.Timestamp("2262-01-01")).to_numpy()
        settled = ((funding[None, :] > open_t[:, None]) & (funding[None, :] <= close_t[:, None])).any(axis=1)
        fixed = pos[~settled & ~pos["position_id"].isin(changes["position_id"]).to_numpy()]
        assert len(fixed) > 100
        con.register("pos", fixed)
        crossed_earlier = con.execute("""
            SELECT count(*) FROM pos JOIN mark
              ON mark.open_time > epoch_ms(date_trunc('minute', pos.open_time))
             AND mark.open_time < coalesce(epoch_ms(date_trunc('minute', pos.close_time)), 9e15)
            WHERE (pos.side = 'long' AND mark.low <= pos.liq_price) OR (pos.side = 'short' AND mark.high >= pos.liq_price)
        """).fetchone()[0]
        assert crossed_earlier == 0


def test_funding_paid_moves_isolated_margins_and_liquidation_prices(sim):
    root, _ = sim
    for symbol in SYMBOLS:
        pos = positions(root, symbol).set_index("position_id")
        state = pd.read_parquet(root / "truth" / "open_positions" / f"{symbol}.parquet")
        spec = state[(state["population"] == "speculator") & ~state["position_id"].isin(_margin_changes(root, symbol)["position_id"])]
        opened = pos.loc[spec["position_id"]]
        assert (spec["margin_mode"].to_numpy() == opened["margin_mode"].to_numpy()).all()
        end = pd.to_datetime(spec["day"]) + pd.Timedelta(days=1) - pd.Timedelta(milliseconds=1)  # before the 00:00 settlement
        expected = _funding_paid(root, symbol, spec.reset_index(drop=True), opened["open_time"].reset_index(drop=True),
                                 end.reset_index(drop=True))
        np.testing.assert_allclose(spec["funding_paid_usd"], expected, rtol=1e-9, atol=1e-9)
        assert (np.abs(expected) > 0).mean() > 0.5
        np.testing.assert_allclose(spec["isolated_margin_usd"], opened["isolated_margin_usd"].to_numpy() - expected,
                                   rtol=1e-9)
        side = np.where(spec["side"] == "long", margin.LONG, margin.SHORT)
        table = margin.table_for(symbol, START).table
        exact = margin.tiered_liquidation_price(side, spec["quantity"], spec["entry_price"], spec["isolated_margin_usd"], table)
        np.testing.assert_allclose(spec["liq_price"], exact.price, rtol=1e-12)
        moved = spec["liq_price"].to_numpy() != opened["liq_price"].to_numpy()
        assert moved.mean() > 0.5, "funding paid out of the margin moves the liquidation price"
        # Top-ups move the price away from the mark.
        changes = _margin_changes(root, symbol).merge(pos.reset_index(), on="position_id", suffixes=("", "_open"))
        assert len(changes) > 0
        away = np.where(changes["side"] == "long", changes["liq_price"] < changes["liq_price_open"],
                        changes["liq_price"] > changes["liq_price_open"])
        assert away.mean() > 0.9


def test_liquidation_snapshot_and_force_order_records_match_the_truth(sim):
    root, _ = sim
    for symbol in SYMBOLS:
        liq = liquidations(root, symbol)
        snaps = []
        for day in days():
            path = root / "truth" / "liquidationSnapshot" / symbol / f"{symbol}-liquidationSnapshot-{day}.csv"
            snap = pd.read_csv(path)
            assert list(snap.columns) == list(formats.LIQUIDATION_SNAPSHOT_COLUMNS)
            snaps.append(snap)
        snap = pd.concat(snaps, ignore_index=True)
        assert len(snap) == len(liq)
        truth_ms = liq["liq_time"].astype("datetime64[ms]").astype("int64").to_numpy()
        np.testing.assert_array_equal(snap["time"].to_numpy(), truth_ms)
        assert ((snap["side"] == "SELL") == (liq["side"] == "long").to_numpy()).all()
        np.testing.assert_allclose(snap["original_quantity"], liq["quantity"], atol=1e-9)
        lines = (root / "truth" / "forceOrder" / f"{symbol}.jsonl").read_text().splitlines()
        events = [json.loads(line) for line in lines]
        assert events and all(e["e"] == "forceOrder" and e["o"]["s"] == symbol for e in events)
        trade_ms = np.array([e["o"]["T"] for e in events])
        assert len(np.unique(trade_ms // 1000)) == len(trade_ms), "the stream publishes at most one per second"
        assert len(events) <= len(liq)
        by_time = dict(zip(truth_ms, liq["side"], strict=True))
        for e in events:
            assert by_time[e["o"]["T"]] == ("long" if e["o"]["S"] == "SELL" else "short")
            assert set(e["o"]) == {"s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"}


def test_funding_follows_the_imbalance_and_binance_clamp(sim):
    root, _ = sim
    cfg = tiny(root)
    for symbol in SYMBOLS:
        truth_funding = pd.read_parquet(root / "truth" / "funding" / f"{symbol}.parquet")
        files = [read_zip_csv(root, ArchiveFile("fundingRate", symbol, m, cadence="monthly"))
                 for m in (dt.date(2026, 1, 1), dt.date(2026, 2, 1))]
        assert len(files[0]) == 3 and len(files[1]) == 3  # Jan 31 and Feb 1, settlements every 8 h
        rows = pd.concat(files, ignore_index=True)
        settle = truth_funding["funding_time"].astype("datetime64[ms]").astype("int64").to_numpy()
        assert set(rows["calc_time"].to_numpy() - settle) <= {0, 1}
        assert (np.diff(settle) == 8 * 3_600_000).all() and (rows["funding_interval_hours"] == 8).all()
        np.testing.assert_allclose(rows["last_funding_rate"], truth_funding["funding_rate"], atol=1e-12)
        p = truth_funding["mean_premium"].to_numpy()
        expected = np.clip(p + np.clip(cfg.interest_rate - p, -cfg.funding_clamp, cfg.funding_clamp),
                           -cfg.funding_cap, cfg.funding_cap)
        np.testing.assert_allclose(truth_funding["funding_rate"], np.round(expected, 8), atol=1e-12)
        # The calibrated premium sits below the clamp band (docs/simulator.md): funding is not pinned at I.
        assert (truth_funding["funding_rate"] != cfg.interest_rate).any()


def test_funding_sign_follows_a_strong_long_or_short_imbalance(tmp_path):
    # One regime only, all longs then all shorts: the crowding term of the premium must push funding above /
    # below baseline (no structural discount or basis noise here, and a gain that beats the clamp band).
    for long_prob, sign in ((0.95, 1), (0.05, -1)):
        out = tmp_path / f"p{long_prob}"
        simulate(tiny(out, symbols=("ETHUSDT",), days=1, trades_per_day=500, positions_per_day=1_000,
                      regime_long_probs=(long_prob,), regime_drifts_per_day=(0.0,), funding_sensitivity=0.0,
                      premium_offset=0.0, premium_noise=0.0, premium_gain=0.004))
        rate = pd.read_parquet(out / "truth" / "funding" / "ETHUSDT.parquet")["funding_rate"].to_numpy()
        assert np.sign(rate[1:] - 0.0001).tolist() == [sign, sign]


@pytest.mark.slow  # simulates two markets
def test_order_flow_carries_the_speculative_long_share_only_when_openers_take(tmp_path):
    # Openers always takers: the flow of each 15 minutes leans to the side speculators opened; openers
    # takers half the time: no signal (momentum noise, closes, providers and liquidations carry none here).
    # The mechanism is tested with the old 20 % noise volume: at the calibrated 80 % the noise round trips
    # drown it (docs/simulator.md).
    r = {}
    for share in (1.0, 0.5):
        out = tmp_path / f"taker{share}"
        simulate(tiny(out, symbols=("ETHUSDT",), start=dt.date(2026, 1, 5), seed=1, positions_per_day=3_000,
                      trades_per_day=12_000, taker_open_share=share, noise_volume_share=0.2))
        trades = pd.concat([read_zip_csv(out, ArchiveFile("aggTrades", "ETHUSDT", dt.date(2026, 1, 5) + dt.timedelta(days=i)))
                            for i in range(DAYS)], ignore_index=True)
        r[share], buckets = sim_realism.ofi_vs_entry_long_share_in_time(trades, positions(out, "ETHUSDT"))
        assert buckets > 100
    # Basis rebalancing and noise carry no signal and dilute it (0.26 on this market since openers follow
    # the activity across days: its calm days open fewer positions than positions_per_day).
    assert r[1.0] > 0.2, r
    assert abs(r[0.5]) < 0.15, r


def test_invalid_configs_fail_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="leverage_weights"):
        simulate(tiny(tmp_path, leverage_weights=(0.5,) * 11))
    with pytest.raises(ValueError, match="days"):
        simulate(tiny(tmp_path, days=0))
    with pytest.raises(margin.BracketError, match="DOGEUSDT"):
        simulate(tiny(tmp_path, symbols=("DOGEUSDT",)))
    with pytest.raises(ValueError, match="unknown scenario 'storm'"):
        SimConfig.for_scenario("storm")
    with pytest.raises(ValueError, match="taker_open_share"):
        simulate(tiny(tmp_path, taker_open_share=1.5))
    cascade = SimConfig.for_scenario("cascade", seed=3)
    assert (cascade.scenario, cascade.seed) == ("cascade", 3) and cascade.liquidation_impact > SimConfig().liquidation_impact


def test_manifest_records_config_seed_and_summary(sim):
    root, summary = sim
    manifest = json.loads((root / "simulation.json").read_text())
    assert manifest["seed"] == 11 and manifest["config"]["start"] == START.isoformat()
    assert manifest["config"]["symbols"] == list(SYMBOLS) and manifest["config"]["days"] == DAYS
    for symbol in SYMBOLS:
        s = manifest["summary"]["symbols"][symbol]
        assert s["positions"] == len(positions(root, symbol)) == summary.symbols[symbol].positions
        assert s["liquidations"] == len(liquidations(root, symbol))
    assert not re.search(r"\.tmp-\d+$", " ".join(p.name for p in root.rglob("*"))), "no temporary files left"


# ---- Dagster assets ---------------------------------------------------------------------------------

def _resources(tmp_path: Path, root: Path, kind: str = "simulated") -> dict:
    market = MarketSource(kind=kind, sim_dir=str(root), mirror_dir=str(root), cache_dir=str(tmp_path / "cache"))
    return {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")), "market": market}


def _materialize(res: dict, day: dt.date, symbol: str):
    return dg.materialize([truth.true_positions, truth.true_liquidations], resources=res,
                          partition_key=dg.MultiPartitionKey({"date": day.isoformat(), "symbol": symbol}),
                          instance=dg.DagsterInstance.ephemeral())


def test_truth_assets_load_one_partition_idempotently(sim, tmp_path):
    root, _ = sim
    res = _resources(tmp_path, root)
    day = days()[1]
    for _ in range(2):  # a re-run replaces the partition, it does not duplicate it
        result = _materialize(res, day, "ETHUSDT")
        assert result.success
    pos = positions(root, "ETHUSDT")
    liq = liquidations(root, "ETHUSDT")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        n_pos = con.execute("SELECT count(*) FROM truth.positions").fetchone()[0]
        n_liq = con.execute("SELECT count(*) FROM truth.liquidations").fetchone()[0]
        ids = con.execute("SELECT sum(position_id), sum(liq_price) FROM truth.positions").fetchone()
    expected = pos[pos["day"] == day]
    assert n_pos == len(expected) > 0
    assert n_liq == (liq["day"] == day).sum() > 0
    assert ids[0] == expected["position_id"].sum() and ids[1] == pytest.approx(expected["liq_price"].sum())
    mats = result.asset_materializations_for_node("true_positions")
    assert mats[0].metadata["rows"].value == n_pos


def test_truth_assets_skip_for_a_non_simulated_source(sim, tmp_path):
    root, _ = sim
    result = _materialize(_resources(tmp_path, root, kind="mirror"), days()[0], "BTCUSDT")
    assert result.success
    meta = result.asset_materializations_for_node("true_liquidations")[0].metadata
    assert meta["status"].value.startswith("skipped")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        tables = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'truth'").fetchone()
    assert tables[0] == 0


def test_truth_assets_fail_clearly_when_the_simulation_is_missing(tmp_path):
    result = dg.materialize([truth.true_positions], resources=_resources(tmp_path, tmp_path / "nothing"),
                            partition_key=dg.MultiPartitionKey({"date": START.isoformat(), "symbol": "BTCUSDT"}),
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "ground truth" in failure.message and "simulate" in failure.message


def test_truth_assets_add_new_columns_to_a_warehouse_made_by_the_older_simulator(sim, tmp_path):
    root, _ = sim
    res = _resources(tmp_path, root)
    old_ddl = "\n".join(line for line in TABLES["truth.positions"].strip().splitlines()
                        if "margin_mode" not in line and "account_balance_usd" not in line).rstrip(",")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE SCHEMA truth")
        con.execute(f"CREATE TABLE truth.positions ({old_ddl})")
    result = dg.materialize([truth.true_positions, truth.true_open_positions], resources=res,
                            partition_key=dg.MultiPartitionKey({"date": days()[0].isoformat(), "symbol": "BTCUSDT"}),
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        modes = {r[0] for r in con.execute("SELECT DISTINCT margin_mode FROM truth.positions").fetchall()}
        populations = {r[0] for r in con.execute("SELECT DISTINCT population FROM truth.open_positions").fetchall()}
    assert modes == {"isolated", "cross"}
    assert populations == {"speculator", "market_maker", "basis"}
