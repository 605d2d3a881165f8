"""The `liq` console script: read materialized heatmaps and zones, simulate a market, run the demo. Other
modules add sub-commands through `register(subparsers)` (COMMAND_MODULES).

Answers must be quick (< 150 ms for a cold `liq heatmap SYMBOL`, < 50 ms per `--at` call), so they come
from the answer files the heatmap and zones assets write (docs/answer-files.md), read with the standard
library; a day without one is read from the warehouse, opened read-only. Everything heavy (numpy, pandas,
matplotlib, plotly, Dagster, the add-on modules) is imported only when a command needs it. Expected failures (nothing materialized, no warehouse, a writer
holding the lock) print one clear line and exit with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import math
import sys
from pathlib import Path

from liq_pipeline import config
from liq_pipeline.cli.args import (
    OneLineParser,
    in_range,
    non_negative_float,
    positive_float,
    positive_int,
)
from liq_pipeline.model import variants
from liq_pipeline.warehouse import answer_files
from liq_pipeline.warehouse.readers import snapshots
from liq_pipeline.warehouse.readers.snapshots import day_of, resolve_snapshot, snapshot_levels
from liq_pipeline.warehouse.readers.snapshots import mark_at as _mark_at
from liq_pipeline.warehouse.readonly import (
    ZONE_COLS,
    connect_read_only,
    format_zone_table,
    materialize_hint,
    zone_rows,
)
from liq_pipeline.warehouse.readonly import AnswerError as CliError
from liq_pipeline.warehouse.readonly import duckdb_engine as _duckdb

#: Modules that contribute sub-commands with `register(subparsers)`; missing ones are skipped.
COMMAND_MODULES = ("liq_pipeline.cli.validation", "liq_pipeline.cli.live", "liq_pipeline.cli.scorecard",
                   "liq_pipeline.cli.realism", "liq_pipeline.apps.compare", "liq_pipeline.apps.serve")
BUILTIN_COMMANDS = ("heatmap", "zones", "simulate", "demo", "write-answers")
EXIT_USAGE = 2
#: Exit code of a process whose output pipe closed (128 + SIGPIPE), as `yes | head` reports it.
EXIT_BROKEN_PIPE = 141
#: Levels below this notional (USD) are dust: left out of `liq heatmap --format json` by default.
DUST_USD = 100.0


# ---------------------------------------------------------------------------------------------- warehouse
def _has_table(con, table: str) -> bool:
    from liq_pipeline.warehouse.catalog import table_exists

    return table_exists(con, table)


def _check_symbol(symbol: str) -> str:
    symbol = symbol.upper()
    known = config.configured_symbols()
    if symbol not in known:
        raise CliError(f"unknown symbol {symbol}: configured symbols are {', '.join(known)} (set LIQ_SYMBOLS)")
    return symbol


def _check_variant(variant: str) -> str:
    if variant not in variants.NAMES:
        raise CliError(f"unknown variant {variant!r}: one of {', '.join(variants.NAMES)}")
    return variant


def _parse_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--at {text!r} is not an ISO time like 2026-01-05T12:00 (UTC)") from None
    try:
        if at.tzinfo is not None:
            at = at.astimezone(dt.UTC).replace(tzinfo=None)
        return in_range(at, "--at")
    except OverflowError:
        raise CliError(f"--at {text!r} is outside the data's range") from None
    except ValueError as e:
        raise CliError(str(e)) from None


# ---------------------------------------------------------------------------------------------- answer files
def answers_folder(warehouse: str | None) -> Path | None:
    """The answer files' folder of the warehouse `liq` reads (docs/answer-files.md)."""
    if warehouse is None:
        return answer_files.folder_for(config.warehouse_path(), config.storage(),
                                       config.parquet_root() if config.storage() == "parquet" else "")
    return answer_files.folder_for(warehouse)


@contextlib.contextmanager
def _from_warehouse(folder: Path | None, symbol: str, suffix: str, warehouse: str | None):
    """The read-only warehouse for a day without an answer file; an AnswerError raised meanwhile also says
    which days the answer files hold, so "not materialized" and "locked by a writer" name what can be read."""
    try:
        with connect_read_only(warehouse) as con:
            yield con
    except CliError as e:
        days = answer_files.days_with(folder, symbol, suffix)
        held = (f" (the answer files in {folder} hold {symbol} {days[0]}" + (f" … {days[-1]}" if len(days) > 1 else "")
                + ")") if days else ""
        raise CliError(f"{e}{held}") from None


def _note_fallback(folder: Path | None, symbol: str, day: dt.date) -> None:
    if folder is not None:
        print(f"liq: no answer file for {symbol} {day} in {folder}: read from the warehouse (`liq write-answers` "
              "writes the files of days materialized before they existed)", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- commands
def cmd_heatmap(args: argparse.Namespace) -> int:
    if args.now:
        if args.format not in ("table", "json"):
            raise CliError("--now supports --format table or json")
        from liq_pipeline.cli.live import now_command  # live REST layer, written separately

        return now_command(args)
    symbol = _check_symbol(args.symbol)
    variant = _check_variant(args.variant)
    at = _parse_at(args.at)
    if args.format in ("png", "html"):  # pictures need the day's cells and mark path: the warehouse
        with connect_read_only(args.warehouse) as con:
            snapshot, day = resolve_snapshot(con, symbol, variant, at)
            return _write_picture(con, symbol, day, variant, snapshot, args)
    folder = answers_folder(args.warehouse)
    try:
        answer = answer_files.heatmap_answer(folder, symbol, variant, at)
    except answer_files.AnswerFileError as e:
        raise CliError(str(e)) from None
    if answer is not None:
        snapshot, day, levels, mark, mark_table = (answer.snapshot, answer.day, answer.levels, answer.mark,
                                                   answer.mark_table)
    else:  # a day materialized before the answer files existed: the warehouse answers, as before
        with _from_warehouse(folder, symbol, answer_files.HEATMAP_SUFFIX, args.warehouse) as con:
            snapshot, day = resolve_snapshot(con, symbol, variant, at)
            levels = snapshot_levels(con, symbol, variant, snapshot, day)
            mark, mark_table = _mark_at(con, symbol, snapshot)
        _note_fallback(folder, symbol, day)
    if args.format == "json":
        kept = [r for r in levels if r[3] >= args.min_usd]
        print(json_one_item_a_line({
            "symbol": symbol, "variant": variant, "day": day.isoformat(), "snapshot_time": snapshot.isoformat(),
            "mark_price": mark, "mark_source": mark_table,
            "min_usd": args.min_usd,
            "below_min": {"levels": len(levels) - len(kept),
                          "notional_usd": sum(r[3] for r in levels if r[3] < args.min_usd)},
        }, "levels", [_level_json(*r) for r in kept]))
        return 0
    totals = {side: sum(n for s, _, _, n in levels if s == side) for side in ("long", "short")}
    print(f"{symbol} {variant} heatmap at {snapshot:%Y-%m-%d %H:%M} UTC"
          + (f", mark {mark:,.2f}" + (" (last price: no mark candle)" if mark_table == "raw.klines" else "")
             if mark is not None else ""))
    print(f"long liquidations ${totals['long']:,.0f}, short liquidations ${totals['short']:,.0f}")
    for side in ("short", "long"):
        top = sorted((r for r in levels if r[0] == side), key=lambda r: -r[3])[: args.top]
        print(f"\nlargest {side} levels")
        print(f"{'price':>14}{'notional_usd':>17}{'to mark':>10}")
        for _, _, price, notional in sorted(top, key=lambda r: -r[2]):
            dist = f"{(price - mark) / mark * 100:+9.2f}%" if mark else ""
            print(f"{price:>14,.2f}{notional:>17,.0f}{dist:>10}")
    return 0


def _level_json(side: str, bin_id: int, price: float, notional_usd: float) -> str:
    """One level as json.dumps writes it ({"side": …, "bin_id": …, "price": …, "notional_usd": …}), by
    f-string: a fifth of json.dumps's time per level, the bulk of an answer's CPU time."""
    if math.isfinite(price) and math.isfinite(notional_usd):
        return f'{{"side": "{side}", "bin_id": {int(bin_id)}, "price": {price!r}, "notional_usd": {notional_usd!r}}}'
    return json.dumps({"side": side, "bin_id": int(bin_id), "price": price, "notional_usd": notional_usd})


def json_one_item_a_line(head: dict, key: str, items: list[dict | str]) -> str:
    """One JSON document: the fields of `head` one a line, then `key`: the items one a line, so `| head`
    shows the header and the first items. json's C encoder per item (an indent on the whole document falls
    back to the Python encoder, about 10x slower on 1,000 levels); an item given as text is already JSON."""
    fields = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
    rows = ",\n".join(f"  {item if isinstance(item, str) else json.dumps(item)}" for item in items)
    return "{\n" + ",\n".join([*fields, f' {json.dumps(key)}: [' + (f"\n{rows}\n ]" if items else "]")]) + "\n}"


def picture_from_warehouse(con, symbol: str, day: dt.date, variant: str, until: dt.datetime,
                           color_scale: str | None = None):
    """HeatmapPicture of (symbol, day, variant) from the stored snapshots up to `until`, the mark closes up
    to it, and the zones of the snapshot at `until` (no look-ahead to the end of the day)."""
    import numpy as np

    from liq_pipeline.model.grid import grid_for
    from liq_pipeline.plots.heatmap import HeatmapPicture

    cells = snapshots.cells_until(con, symbol, day, variant, until)
    t = np.asarray(cells["snapshot_time"]).astype("datetime64[ms]")
    step_end, step = np.unique(t, return_inverse=True)
    step_minutes = int(np.median(np.diff(step_end)) / np.timedelta64(1, "m")) if step_end.size > 1 else config.MODEL.heatmap_step_minutes
    side = np.where(np.asarray(cells["side"]) == "long", 1, -1)
    mark_t, mark_p = np.zeros(0, "datetime64[ms]"), np.zeros(0)
    m = snapshots.mark_closes_until(con, symbol, day, until)
    if m is not None:
        mark_t, mark_p = np.asarray(m["open_time"]).astype("datetime64[ms]"), np.asarray(m["close"], float)
    oi_ref = snapshots.oi_reference_usd(con, symbol, day, until)
    notional = np.asarray(cells["notional_usd"], dtype=float)
    notes = []
    if not oi_ref:
        last = step == step_end.size - 1
        oi_ref = max(float(notional[last].sum()), 1.0)
        notes.append("no open-interest sample: colours relative to the snapshot's total notional")
    cell_bin = np.asarray(cells["bin_id"], dtype=np.int64)
    grid = grid_for(symbol)
    zones = []
    if mark_p.size and step_end.size:  # zones of the snapshot shown, never of a later instant
        last = step == step_end.size - 1
        zones = snapshot_zones(grid.mid(cell_bin[last]), side[last], notional[last], float(mark_p[-1]))
    return HeatmapPicture(symbol=symbol, day=day, variant=variant, grid=grid, step_end=step_end,
                          step_minutes=step_minutes, cell_step=step, cell_side=side, cell_bin=cell_bin,
                          cell_notional_usd=notional, mark_time=mark_t, mark_price=mark_p, oi_ref_usd=float(oi_ref),
                          zones=zones, notes=notes, zones_as_of=f"at {until:%H:%M} UTC" if until.time() != dt.time()
                          else "end of day", **({"color_scale": color_scale} if color_scale else {}))


def snapshot_zones(price, side, notional_usd, mark_price: float, top: int = 3) -> list:
    """The top zones per side of one snapshot's levels (model/zones.py, the same clustering as the
    liquidation_zones asset), as ZoneBands for a picture."""
    from liq_pipeline.model.zones import find_zones
    from liq_pipeline.plots.heatmap import ZoneBand

    bands = []
    for name, sign in (("long", 1), ("short", -1)):
        sel = side == sign
        z = find_zones(price[sel], notional_usd[sel], mark_price)
        bands += [ZoneBand(name, int(z.rank[i]), float(z.price_low[i]), float(z.price_high[i]),
                           float(z.notional_usd[i])) for i in range(len(z)) if z.rank[i] <= top]
    return bands


def picture_path(symbol: str, snapshot: dt.datetime, variant: str, ext: str, scale: str | None = None) -> Path:
    """Default file of a `liq heatmap --format png/html` picture: named after the snapshot's own day and time
    of day, so pictures of different times never overwrite each other, and the end-of-day snapshot (at
    midnight) carries the day it ends: heatmap-BTCUSDT-2026-02-10T1200-flow.png, …-2026-02-14T2400-flow.png.
    The fixed colour scale gets its own file (…-flow-fixed.png)."""
    day = day_of(snapshot)
    clock = "2400" if snapshot.date() > day else f"{snapshot:%H%M}"
    suffix = "-fixed" if scale == "fixed" else ""
    return config.reports_dir() / f"heatmap-{symbol}-{day.isoformat()}T{clock}-{variant}{suffix}.{ext}"


def _write_picture(con, symbol: str, day: dt.date, variant: str, snapshot: dt.datetime, args) -> int:
    pic = picture_from_warehouse(con, symbol, day, variant, snapshot, color_scale=args.scale)
    out = Path(args.out or picture_path(symbol, snapshot, variant, args.format, pic.color_scale))
    if out.is_dir():
        name = picture_path(symbol, snapshot, variant, args.format, pic.color_scale).name
        raise CliError(f"--out {out} is a folder: give a file name, e.g. {out / name}")
    if args.format == "png":
        from liq_pipeline.plots.heatmap import heatmap_png

        data = heatmap_png(pic)
    else:
        from liq_pipeline.plots.report import heatmap_report_html, write_plotly_js

        data = heatmap_report_html(pic, inline=False).encode("utf-8")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        if args.format != "png":
            write_plotly_js(out.parent)  # one plotly.min.js shared by every report in the folder
    except OSError as e:
        raise CliError(f"--out {out}: cannot write the picture ({e.strerror or e})") from None
    print(out)
    return 0


def cmd_zones(args: argparse.Namespace) -> int:
    symbol = _check_symbol(args.symbol)
    variant = _check_variant(args.variant)
    try:
        day = dt.date.fromisoformat(args.day) if args.day else None
    except ValueError:
        raise CliError(f"--day {args.day!r} is not a date like 2026-01-05") from None
    folder = answers_folder(args.warehouse)
    try:
        found = answer_files.zones_answer(folder, symbol, variant, day)
    except answer_files.AnswerFileError as e:
        raise CliError(str(e)) from None
    if found is not None:
        day, rows = found
        rows = [r for r in rows if r[1] <= args.top]
    else:  # a day materialized before the answer files existed: the warehouse answers, as before
        with _from_warehouse(folder, symbol, answer_files.ZONES_SUFFIX, args.warehouse) as con:
            if day is None:
                day = (snapshots.latest_zones_day(con, symbol, variant)
                       if _has_table(con, "model.liquidation_zones") else None)
                if day is None:
                    raise CliError(f"{symbol} ({variant}): zones not materialized: {materialize_hint(symbol, None)}")
            rows = zone_rows(con, symbol, day, variant, args.top)
        if rows:
            _note_fallback(folder, symbol, day)
    if not rows:
        raise CliError(f"{symbol} {day} ({variant}): zones not materialized: {materialize_hint(symbol, day)}")
    if args.format == "json":
        keys = ZONE_COLS.replace(" ", "").split(",")
        print(json.dumps({"symbol": symbol, "day": day.isoformat(), "variant": variant, "zones": [
            {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in zip(keys, r, strict=True)}
            for r in rows]}, indent=1))
    else:
        print(f"{symbol} {day} liquidation zones ({variant}), as of {rows[0][-1]:%Y-%m-%d %H:%M} UTC")
        print(format_zone_table(rows))
    return 0


def cmd_write_answers(args: argparse.Namespace) -> int:
    from liq_pipeline.warehouse.answer_store import write_all_answers

    folder = answers_folder(args.warehouse)
    if folder is None:
        raise CliError("answer files need a local warehouse: LIQ_PARQUET_ROOT is an object-store URL")
    with connect_read_only(args.warehouse) as con:
        n = write_all_answers(con, folder)
    print(f"wrote {n} answer files into {folder}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from liq_pipeline.sim import SimConfig, simulate

    try:
        start = dt.date.fromisoformat(args.start)
    except ValueError:
        raise CliError(f"--start {args.start!r} is not a date like 2026-01-01") from None
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    kwargs = {} if args.trades_per_day is None else {"trades_per_day": args.trades_per_day}
    if args.taker_open_share is not None:
        kwargs["taker_open_share"] = args.taker_open_share
    try:
        cfg = SimConfig.for_scenario(args.scenario, symbols=symbols, start=start, days=args.days, seed=args.seed,
                                     out_dir=Path(args.out), **kwargs)
        from liq_pipeline.apps.demo import SimulationProgress

        # Progress on stderr: stdout is the JSON summary.
        print(f"simulating {', '.join(symbols)} × {args.days} days ({args.scenario}, seed {args.seed}) into "
              f"{args.out} ...", file=sys.stderr, flush=True)
        with SimulationProgress(Path(args.out), symbols, start, args.days, stream=sys.stderr):
            summary = simulate(cfg, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as e:  # invalid configuration (validate(), unknown scenario or bracket table)
        raise CliError(f"simulate: {e}") from None
    print(json.dumps(summary.to_json(), indent=1, default=str))
    if args.figures:
        from liq_pipeline.sim import realism as sim_realism

        print(sim_realism.format_figures(sim_realism.figures(Path(args.out))))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from liq_pipeline.apps.demo import run_demo

    return run_demo(days=args.days, seed=args.seed, model_days=args.model_days, scenario=args.scenario)


# ---------------------------------------------------------------------------------------------- parser
def build_parser(load_plugins: bool = True, only: str | None = None) -> argparse.ArgumentParser:
    """The `liq` parser; `only`: just that built-in command's sub-parser (the command `main` was given: the
    same parse, its help and its errors, without building the others, about 1 ms of a cold `liq heatmap`)."""
    parser = OneLineParser(prog="liq", description="Liquidation heatmaps for Binance USD-M perpetuals.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only is None or only == "heatmap":
        _heatmap_parser(sub)
    if only is None or only == "zones":
        _zones_parser(sub)
    if only is None or only != "heatmap" and only != "zones":
        _other_parsers(sub)
    if load_plugins:
        for name in COMMAND_MODULES:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as e:
                if e.name == name:  # that add-on is not installed/written: skip it, but not its broken imports
                    continue
                raise
            module.register(sub)
    return parser


def _heatmap_parser(sub) -> None:
    h = sub.add_parser("heatmap", help="liquidation levels of SYMBOL at a time (from the warehouse)")
    h.add_argument("symbol")
    h.add_argument("--at", help="UTC time, e.g. 2026-01-05T12:00 (default: the latest snapshot)")
    h.add_argument("--variant", default=variants.DEFAULT,
                   help=f"one of {', '.join(variants.NAMES)} (default {variants.DEFAULT})")
    h.add_argument("--format", choices=("table", "json", "png", "html"), default="table")
    h.add_argument("--out", help="output file for png/html (default under the reports directory)")
    h.add_argument("--top", type=positive_int, default=10, help="levels per side in the table (default 10)")
    h.add_argument("--min-usd", type=non_negative_float, default=DUST_USD,
                   help=f"json: leave out levels below this notional (default {DUST_USD:g} USD; 0 keeps all)")
    h.add_argument("--scale", choices=("percentile", "fixed"), default=None,
                   help="png/html colour scale (default LIQ_HEATMAP_COLOR_SCALE, else percentile)")
    h.add_argument("--warehouse", help="DuckDB file (default LIQ_WAREHOUSE)")
    h.add_argument("--now", action="store_true", help="live: warehouse baseline + Binance REST signals (liq now)")
    h.add_argument("--base-url", default=None, help="with --now: fapi base URL")
    h.add_argument("--budget", type=positive_float, default=1.0, help="with --now: seconds allowed for REST calls")
    h.set_defaults(func=cmd_heatmap)


def _zones_parser(sub) -> None:
    z = sub.add_parser("zones", help="liquidation zones of SYMBOL at the end of a day")
    z.add_argument("symbol")
    z.add_argument("--day", help="YYYY-MM-DD (default: the latest materialized day)")
    z.add_argument("--variant", default=variants.DEFAULT)
    z.add_argument("--format", choices=("table", "json"), default="table")
    z.add_argument("--top", type=positive_int, default=5, help="zones per side (default 5)")
    z.add_argument("--warehouse", help="DuckDB file (default LIQ_WAREHOUSE)")
    z.set_defaults(func=cmd_zones)


def _other_parsers(sub) -> None:
    w = sub.add_parser("write-answers", help="write the answer files of every materialized heatmap and zones "
                       "partition (for days materialized before they existed)")
    w.add_argument("--warehouse", help="DuckDB file (default LIQ_WAREHOUSE)")
    w.set_defaults(func=cmd_write_answers)

    s = sub.add_parser("simulate", help="write a simulated market (archive mirror + ground truth)")
    s.add_argument("--symbols", default=",".join(config.DEFAULT_SYMBOLS))
    s.add_argument("--days", type=positive_int, default=45)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--out", default=str(config.sim_archive_dir()))
    s.add_argument("--start", default=config.DEFAULT_START_DATE.isoformat())
    s.add_argument("--trades-per-day", type=positive_int, default=None, help="aggTrades per symbol-day (simulator default)")
    s.add_argument("--scenario", default="calm", help="calm (default), trending or cascade")
    s.add_argument("--taker-open-share", type=float, default=None,
                   help="probability that a speculative opener takes liquidity (0.5 = no order-flow signal)")
    s.add_argument("--figures", action="store_true", help="print the realism figures of the simulated market")
    s.set_defaults(func=cmd_simulate)

    d = sub.add_parser("demo", help="simulate, materialize every asset, print where to look")
    d.add_argument("--days", type=positive_int, default=config.DEMO_DAYS,
                   help=f"simulated days from LIQ_START_DATE (default {config.DEMO_DAYS}: one month, one report)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--model-days", type=positive_int, default=None,
                   help="days modelled at the end of the range (default: all but the first week of warm-up)")
    d.add_argument("--scenario", default="calm", help="simulated market: calm (default), trending or cascade")
    d.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `liq`; returns the exit code (0 ok, 2 usage or nothing to show)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The add-on modules import pandas & co (~0.5 s): load them only when the command is not built in.
    fast = bool(argv) and argv[0] in BUILTIN_COMMANDS
    parser = build_parser(load_plugins=not fast, only=argv[0] if fast else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage / help
        return int(e.code or 0)
    try:
        config.validate_environment()  # a bad LIQ_* value: one line naming it, before any work
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away (`liq … | head`) shows up here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (CliError, config.ConfigError) as e:
        print(f"liq {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a DuckDB error on a malformed/partial warehouse: one line, not a traceback
        if isinstance(e, _duckdb().Error):
            print(f"liq {args.command}: warehouse error: {e}", file=sys.stderr)
            return EXIT_USAGE
        raise


def _silence_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so the interpreter's final flush
    does not print a BrokenPipeError traceback."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured in tests): nothing to silence
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
