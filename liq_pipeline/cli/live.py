"""`liq now` and `liq record-liquidations`: the live sub-commands, registered into the main `liq` CLI.

`register(subparsers)` adds both; `now_command(args)` is also what `liq heatmap SYMBOL --now` calls.
Registering imports nothing heavy (`liq --help` stays quick): DuckDB, pandas and the REST and WebSocket
layers are imported by the command that runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liq_pipeline import config
from liq_pipeline.cli import args as cli_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `now` and `record-liquidations` to the `liq` sub-command parser."""
    now = subparsers.add_parser("now", help="liquidation heatmap of SYMBOL now (warehouse baseline + live REST)")
    now.add_argument("symbol", type=str.upper)
    add_now_options(now)
    now.set_defaults(func=now_command)

    rec = subparsers.add_parser("record-liquidations",
                                help="record Binance forceOrder stream events into raw.realized_liquidations")
    rec.add_argument("--ws-url", default=None,
                     help="forceOrder stream URL (default Binance's public !forceOrder@arr stream; route unconfirmed, "
                          "hence configurable)")
    rec.add_argument("--symbols", default="", help="comma-separated symbols to keep (default: all)")
    rec.add_argument("--max-events", type=cli_args.positive_int, default=None, help="stop after N received events")
    rec.add_argument("--duration", type=cli_args.positive_float, default=None, help="stop after S seconds")
    rec.add_argument("--warehouse", default=None, help="DuckDB file (default LIQ_WAREHOUSE)")
    rec.add_argument("--batch-size", type=cli_args.positive_int, default=200, help="events per insert transaction")
    rec.set_defaults(func=record_command)


def add_now_options(parser: argparse.ArgumentParser) -> None:
    """Options of `liq now` (shared with `liq heatmap --now`)."""
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--base-url", default=None, help="fapi base URL (default LIQ_FAPI_URL or fapi.binance.com)")
    parser.add_argument("--budget", type=cli_args.positive_float, default=1.0,
                        help="seconds allowed for the live REST signals")
    parser.add_argument("--top", type=cli_args.positive_int, default=10, help="levels per side in the table output")
    parser.add_argument("--warehouse", default=None, help="DuckDB file (default LIQ_WAREHOUSE)")


def _print_table(result, top: int) -> None:
    s = result.signals
    print(f"{result.symbol} now ({s.as_of:%Y-%m-%d %H:%M:%S} UTC), baseline {result.baseline_day}, "
          f"brackets {result.bracket_table}")
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
    print(f"mark {fmt(s.mark_price, ',.2f')}  OI ${fmt(s.oi_usd, ',.0f')}  OI 24h ago ${fmt(s.oi_24h_ago_usd, ',.0f')}  "
          f"funding(8h) {fmt(s.funding_rate_8h, '.6f')}")
    print("latency ms: " + ", ".join(f"{k} {v:.0f}" for k, v in result.latency_ms.items()))
    levels = result.levels
    for side, ascending in (("short", True), ("long", False)):
        near = levels[levels["side"] == side].sort_values("price", ascending=ascending).head(top)
        print(f"\n{side} liquidations nearest the mark")
        print(f"{'price':>14}  {'notional_usd':>16}")
        for row in near.itertuples():
            print(f"{row.price:>14,.2f}  {row.notional_usd:>16,.0f}")


def now_command(args: argparse.Namespace) -> int:
    """Print the "now" heatmap of `args.symbol`; 0 on success, 2 when inputs are missing or REST fails."""
    import duckdb

    from liq_pipeline.market.rest import FapiClient, FapiError
    from liq_pipeline.pipeline.live import STALE_FLAGS, heatmap_now
    from liq_pipeline.pipeline.live import short_flag as _short

    path = getattr(args, "warehouse", None) or str(config.warehouse_path())
    try:
        budget = getattr(args, "budget", 1.0)
        # One retry at most: calls still running when the budget ends would otherwise delay the exit.
        client = FapiClient.from_env(base_url=getattr(args, "base_url", None), timeout_s=max(budget, 0.1),
                                     max_retries=1, backoff_s=0.05)
        with client, duckdb.connect(path, read_only=True) as con:
            result = heatmap_now(con, client, args.symbol.upper(), budget_s=budget)
    except (LookupError, FapiError, duckdb.Error, ValueError) as e:
        print(f"liq now {args.symbol}: {e}", file=sys.stderr)
        return 2
    for flag in result.flags:  # warnings on stderr: stdout stays the answer
        print(f"liq now {args.symbol}: warning: {_short(flag)}", file=sys.stderr)
    stale = [f for f in result.flags if f in STALE_FLAGS]
    if stale:
        # Without a live mark or open interest the map is the warehouse's baseline: never printed as "now".
        print(f"liq now {args.symbol}: live data unavailable ({', '.join(stale)}): the map would be the warehouse "
              f"baseline of {result.baseline_day}, not now; `liq heatmap {args.symbol}` shows the newest stored "
              "snapshot with its time", file=sys.stderr)
        return 2
    if getattr(args, "format", "table") == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        _print_table(result, getattr(args, "top", 10))
    return 0


def record_command(args: argparse.Namespace) -> int:
    """Run the forceOrder recorder until --max-events / --duration (or Ctrl-C); prints counts."""
    import asyncio

    import duckdb

    from liq_pipeline.market.recorder import DEFAULT_WS_URL, LiquidationBuffer, record_liquidations
    from liq_pipeline.warehouse.schema import ensure_tables

    path = args.warehouse or str(config.warehouse_path())
    symbols = frozenset(s.strip().upper() for s in args.symbols.split(",") if s.strip()) or None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(path) as con:
        ensure_tables(con, "raw.realized_liquidations")
        buffer = LiquidationBuffer(con, symbols=symbols, batch_size=args.batch_size)
        print("recording forceOrder events (the stream sends at most one liquidation per symbol per second, so "
              "totals are a lower bound)", file=sys.stderr)
        try:
            stats = asyncio.run(record_liquidations(buffer, args.ws_url or DEFAULT_WS_URL, max_events=args.max_events,
                                                    duration_s=args.duration))
        except KeyboardInterrupt:
            buffer.flush()
            print(f"interrupted; {buffer.inserted} new events stored", file=sys.stderr)
            return 0
    print(f"received {stats.received} events, stored {stats.inserted} new, {stats.reconnects} reconnects, "
          f"{stats.malformed} malformed messages")
    return 0
