"""`liq score-real`: the real-data scorecard (liq_pipeline/apps/scorecard.py) from the command line.

The chain's settings are environment variables read when the Definitions load, so this command sets them
(LIQ_SOURCE=mirror, the mirror, a separate LIQ_DATA_DIR, ...) before it imports anything that reads them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_ERROR = 0, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    from liq_pipeline.apps import scorecard

    p = subparsers.add_parser(
        "score-real", help="run the chain on a real kline-only mirror in place and score it against realized liquidations")
    p.add_argument("--mirror", default=None,
                   help=f"the mirror folder (default ${scorecard.REAL_DATA_ENV}, else "
                        f"{scorecard.DEFAULT_REAL_DATA} next to the repository)")
    p.add_argument("--liquidations", default=None,
                   help="per-bar realized liquidations (default: realized_liquidations_1h.csv in the mirror)")
    p.add_argument("--data-dir", default=str(scorecard.DEFAULT_DATA_DIR),
                   help=f"where the warehouse and reports go (default {scorecard.DEFAULT_DATA_DIR}; never the demo's)")
    p.add_argument("--symbol", type=str.upper, default="BTCUSDT")
    p.add_argument("--start", type=dt.date.fromisoformat, default=None, help="first day (default: the mirror's first)")
    p.add_argument("--end", type=dt.date.fromisoformat, default=None, help="last day (default: the mirror's last)")
    p.add_argument("--warm-up-days", type=int, default=scorecard.WARM_UP_DAYS,
                   help=f"days that only build the volume profile before scoring starts (default {scorecard.WARM_UP_DAYS})")
    p.add_argument("--json", action="store_true", help="print the scorecard as JSON")
    p.set_defaults(func=score_real_command)


def score_real_command(args: argparse.Namespace) -> int:
    from liq_pipeline.apps import scorecard

    mirror = Path(args.mirror).expanduser().resolve() if args.mirror else scorecard.real_data_dir()
    try:
        run = scorecard.plan_run(mirror, Path(args.data_dir), args.symbol,
                                 Path(args.liquidations) if args.liquidations else None, args.start, args.end,
                                 args.warm_up_days)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if run.liquidations is None:
        print(f"error: {mirror}: no realized_liquidations_1h.csv; pass --liquidations", file=sys.stderr)
        return EXIT_ERROR
    os.environ.update(run.env())
    t0 = time.perf_counter()
    log = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the JSON

    def say(message: str) -> None:
        print(message, file=log, flush=True)

    say(f"score-real: {run.symbol} {run.first_day} … {run.last_day} from {mirror} (read in place; "
        f"{run.layout.kline_interval} klines, {run.layout.mark_interval} mark klines); warehouse {run.warehouse}; "
        f"scored from {run.score_from}")
    import duckdb

    # Imported first: a variant that learns from public liquidations (walk-forward, up to each day) reads them.
    run.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(run.warehouse)) as con:
        name, rows, understood = scorecard.import_realized(con, run)
    say(f"imported {name}: {rows:,} bars; " + "; ".join(understood))
    try:
        chain = scorecard.run_chain(run, say)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    with duckdb.connect(str(run.warehouse)) as con:
        card = scorecard.score(con, run)
    card.flags = chain.flag_summary()
    card.timings = {s.label: round(s.seconds, 1) for s in chain.stages}
    card.timings["total"] = round(time.perf_counter() - t0, 1)
    js, txt = scorecard.write_scorecard(card, run.data_dir / "reports")
    if args.json:
        import json

        print(json.dumps(card.as_dict(), indent=2))
    else:
        print()
        print(scorecard.format_scorecard(card))
    say(f"\nwritten: {js} and {txt.name}; {card.timings['total']:.0f} s in all")
    return EXIT_OK
