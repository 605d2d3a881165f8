"""`liq import-liquidations` and `liq backtest`: load realized liquidations a user has, and score the heatmap
against them. Registered into the main `liq` CLI with `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from liq_pipeline import config
from liq_pipeline.cli import args as cli_args
from liq_pipeline.model import variants as variant_registry

EXIT_OK, EXIT_ERROR = 0, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `import-liquidations` and `backtest` to the `liq` sub-command parser."""
    imp = subparsers.add_parser(
        "import-liquidations",
        help="load realized liquidations (forceOrder JSON lines, liquidationSnapshot CSV, per-bar totals)")
    imp.add_argument("path", help="a file, or a folder whose files are all imported")
    imp.add_argument("--format", choices=("auto", "forceorder", "snapshot", "bars"), default="auto",
                     help="file format (default: detected from the content)")
    imp.add_argument("--symbol", type=str.upper, default=None,
                     help="keep only this symbol; files that name no symbol (bar files without a symbol column, "
                          "snapshot CSVs not named <SYMBOL>-liquidationSnapshot-<date>.csv) default to the one "
                          "configured symbol (LIQ_SYMBOLS) and need --symbol when several are configured")
    imp.add_argument("--bar-seconds", type=cli_args.positive_int, default=None,
                     help="width of a bar in per-bar files (default: the smallest timestamp spacing)")
    imp.add_argument("--warehouse", default=None, help="DuckDB file (default LIQ_WAREHOUSE)")
    imp.set_defaults(func=import_command)

    bt = subparsers.add_parser("backtest", help="score heatmap snapshots against realized liquidations, per bar")
    bt.add_argument("symbol", type=str.upper)
    bt.add_argument("--start", required=True, type=cli_args.date, help="first day, YYYY-MM-DD")
    bt.add_argument("--end", required=True, type=cli_args.date, help="last day (inclusive), YYYY-MM-DD")
    bt.add_argument("--variant", choices=variant_registry.NAMES, default=None, help="one variant (default: all)")
    bt.add_argument("--bar-minutes", type=cli_args.positive_int, default=60, help="bar length in minutes (default 60)")
    bt.add_argument("--top-k", type=cli_args.positive_int, default=None, help="cells flagged by the top-K test (default 10 %% of cells)")
    bt.add_argument("--source", choices=("auto", "truth", "events", "bars"), default="auto",
                    help="realized liquidations: simulator truth, imported/recorded events, or per-bar totals")
    bt.add_argument("--json", action="store_true", help="print the metrics as JSON")
    bt.add_argument("--warehouse", default=None, help="DuckDB file (default LIQ_WAREHOUSE)")
    bt.set_defaults(func=backtest_command)

    tab = subparsers.add_parser(
        "validation-table",
        help="the yardstick table (overlap, ceiling, distance, backtest vs baselines) of stored monthly reports")
    tab.add_argument("months", nargs="*", help="YYYY-MM (default: every report in the reports folder)")
    tab.add_argument("--markdown", action="store_true", help="one markdown table with every column (for the README)")
    tab.add_argument("--reports", default=None, help="folder of validation-<YYYY-MM>.json (default <data dir>/reports)")
    tab.set_defaults(func=table_command)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _connect(warehouse: str | None, must_exist: bool):
    import duckdb

    path = Path(warehouse) if warehouse else config.warehouse_path()
    if must_exist and not path.is_file():
        raise FileNotFoundError(f"no warehouse at {path} (materialize the pipeline first or pass --warehouse)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path))
    except duckdb.IOException as e:
        raise OSError(f"cannot open {path}: {e} (is a Dagster run or another process writing to it?)") from e


def import_command(args: argparse.Namespace) -> int:
    """Import one file or every file of a folder; prints one line per file."""
    from liq_pipeline.market import liquidation_imports as li

    target = Path(args.path)
    if not target.exists():
        return _error(f"{target}: no such file or folder")
    files = sorted(p for p in target.iterdir() if p.is_file() and not p.name.startswith(".")) if target.is_dir() else [target]
    if not files:
        return _error(f"{target}: the folder holds no files")
    try:
        con = _connect(args.warehouse, must_exist=False)
    except OSError as e:
        return _error(str(e))
    failures = 0
    with con:
        for path in files:
            try:
                r = li.import_liquidation_file(con, path, args.format, args.symbol, args.bar_seconds)
            except li.LiquidationImportError as e:
                print(f"error: {e}", file=sys.stderr)
                failures += 1
                continue
            span = f"{r.first_time} … {r.last_time}" if r.rows else "no rows"
            replaced = f" (replacing {r.replaced:,} rows of an earlier import)" if r.replaced else ""
            print(f"{path.name}: {r.rows:,} rows ({r.format}) → {r.table} [{', '.join(r.symbols) or '-'}] {span}"
                  f"{replaced}")
            for line in r.understood:
                print(f"  {line}")
    return EXIT_ERROR if failures else EXIT_OK


def _fmt(value, pattern: str = "{:.3f}") -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else pattern.format(value)


def backtest_command(args: argparse.Namespace) -> int:
    """Run the backtest for each requested variant and print its scores (table or JSON); exit 2 with one
    line when there is nothing to score (unknown symbol, no heatmap or no realized liquidations in range)."""
    from liq_pipeline.validation.backtest import BacktestInputError, backtest, check_inputs

    if args.end < args.start:
        print(f"liq backtest: --end {args.end} is before --start {args.start}", file=sys.stderr)
        return EXIT_ERROR
    try:
        con = _connect(args.warehouse, must_exist=True)
    except OSError as e:
        return _error(str(e))
    variants = [args.variant] if args.variant else list(variant_registry.NAMES)
    try:
        with con:
            check_inputs(con, args.symbol, args.start, args.end, variants, args.source, args.bar_minutes)
            results = {v: backtest(con, args.symbol, args.start, args.end, v, args.bar_minutes, args.top_k,
                                   args.source).metrics for v in variants}
    except (BacktestInputError, ValueError) as e:
        return _error(str(e))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return EXIT_OK
    some = next(iter(results.values()))
    minutes = "/".join(str(m) for m in some.get("candle_minutes", [])) or "-"
    print(f"{args.symbol} {args.start} … {args.end}, {args.bar_minutes}-minute bars from {minutes}-minute "
          f"{some.get('price_series', '-')}-price candles, realized: {some.get('realized_source', '-')}")
    print("Spearman ρ per (bar, side) cell; partial ρ = the map's ρ given bar range and side excursion; "
          "recall = share of realized notional in the top-10 % cells")
    header = (f"{'variant':<12} {'bars':>5} {'map ρ':>6} {'lev-only':>8} {'range':>6} {'excurs.':>7} "
              f"{'partial':>7} {'recall':>6} {'strongest baseline':>18} {'lift ρ':>7} {'FP':>4} {'missed':>6}  status")
    print(header)
    for variant, m in results.items():
        base = m.get("baselines", {})
        rho = {n: (base.get(n, {}).get("spearman") or {}).get("r") for n in ("leverage_only", "bar_range", "side_excursion")}
        top = m.get("top_k_model", {})
        print(f"{variant:<12} {m.get('bars_scored', 0):>5} {_fmt((m.get('spearman') or {}).get('r')):>6} "
              f"{_fmt(rho['leverage_only']):>8} {_fmt(rho['bar_range']):>6} {_fmt(rho['side_excursion']):>7} "
              f"{_fmt((m.get('partial_spearman') or {}).get('r')):>7} {_fmt(top.get('notional_recall'), '{:.2f}'):>6} "
              f"{m.get('strongest_baseline') or '-':>18} {_fmt(m.get('lift_spearman'), '{:+.3f}'):>7} "
              f"{top.get('false_positives', '-'):>4} {_fmt(m.get('realized_share_where_map_zero'), '{:.1%}'):>6}  "
              f"{m.get('status', '')}")
    notes = {m[k] for m in results.values() for k in ("note", "price_note") if m.get(k)}
    for note in sorted(notes):
        print(f"note: {note}")
    return EXIT_OK


def table_command(args: argparse.Namespace) -> int:
    """Print the yardstick table of the stored monthly reports (text, or markdown with every column)."""
    from liq_pipeline.validation.report import (
        YARDSTICK_COLUMNS,
        yardstick_markdown,
        yardstick_rows,
        yardstick_text,
    )

    folder = Path(args.reports) if args.reports else config.reports_dir()
    paths = [folder / f"validation-{m}.json" for m in args.months] if args.months else \
        sorted(folder.glob("validation-*.json"))
    missing = [p for p in paths if not p.is_file()]
    if missing or not paths:
        return _error(f"no validation report {missing[0] if missing else f'in {folder}'} (materialize "
                      "validation_report, e.g. with make demo)")
    try:
        reports = [json.loads(p.read_text()) for p in paths]
    except (OSError, ValueError) as e:
        return _error(f"cannot read the validation reports: {e}")
    if args.markdown:
        print(yardstick_markdown([row for r in reports for row in yardstick_rows(r)], YARDSTICK_COLUMNS))
        return EXIT_OK
    for report in reports:
        print(f"validation {report.get('month')}")
        print("\n".join(yardstick_text(report)))
    return EXIT_OK
