"""`liq realism`: the stylized facts of a simulated market beside the real development window, with a
simultaneous band from real windows of the same length and a PASS/FAIL verdict (sim/facts.py).

Exit code 0 when every statistic passes, 1 when one fails or cannot be decided, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from liq_pipeline.sim.facts import HeldOut

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
#: Simulated days left out by default: the book starts empty (as the demo's warm-up week).
WARM_UP_DAYS = 7


def register(subparsers: argparse._SubParsersAction) -> None:
    from liq_pipeline import config
    from liq_pipeline.apps.scorecard import DEFAULT_REAL_DATA, REAL_DATA_ENV
    from liq_pipeline.sim.episodes import EPISODES

    p = subparsers.add_parser("realism", help="compare a simulated market's stylized facts with a real window")
    p.add_argument("sim_dir", nargs="?", default=None,
                   help=f"a simulated archive written by `liq simulate` (default {config.sim_archive_dir()})")
    p.add_argument("--real", default=None,
                   help=f"a real kline-only mirror with realized_liquidations_1h.csv (default ${REAL_DATA_ENV}, "
                        f"else {DEFAULT_REAL_DATA} next to the repository)")
    p.add_argument("--symbol", type=str.upper, default="BTCUSDT", help="simulated symbol to judge (default BTCUSDT)")
    p.add_argument("--real-symbol", type=str.upper, default="BTCUSDT", help="symbol of the real mirror")
    p.add_argument("--skip-days", type=int, default=WARM_UP_DAYS,
                   help=f"simulated days left out at the start while the book fills (default {WARM_UP_DAYS})")
    p.add_argument("--episode", choices=sorted(EPISODES), default=None,
                   help="compare with one real episode of the window only (bands from its days): "
                        + "; ".join(f"{e.name} = {e.what}" for e in EPISODES.values()).replace("%", "%%"))
    p.add_argument("--resamples", type=int, default=None,
                   help="resampled real windows (moving-block bootstrap) behind each band")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=realism_command)


def realism_command(args: argparse.Namespace) -> int:
    from liq_pipeline import config
    from liq_pipeline.apps.scorecard import real_data_dir
    from liq_pipeline.sim import fact_series, facts
    from liq_pipeline.sim.episodes import EPISODES

    sim_dir = Path(args.sim_dir) if args.sim_dir else config.sim_archive_dir()
    real_dir = Path(args.real).expanduser().resolve() if args.real else real_data_dir()
    resamples = facts.BOOTSTRAP_RESAMPLES if args.resamples is None else args.resamples
    if resamples < 20:
        print(f"liq realism: --resamples {resamples} is too few for a 95 % band (at least 20)", file=sys.stderr)
        return EXIT_ERROR
    try:
        simulated = fact_series.load_simulated(sim_dir, args.symbol, args.skip_days)
        episode = EPISODES[args.episode] if args.episode else None
        real = fact_series.load_real(real_dir, args.real_symbol, first_day=episode and episode.first_day,
                                     last_day=episode and episode.last_day)
    except (FileNotFoundError, ValueError) as e:
        print(f"liq realism: {e}", file=sys.stderr)
        return EXIT_ERROR
    # An episode is too short to resample by weeks: its days are the blocks.
    block_days = 1 if episode else facts.BLOCK_DAYS
    rows, band = facts.compare_with_bands(simulated, real, resamples=resamples, block_days=block_days)
    failed = [r.name for r in rows if r.verdict != "PASS"]
    held = facts.held_out_real(facts.fact_rows(real, 1), simulated.days, resamples, block_days=block_days)
    if args.json:
        print(json.dumps({"simulated": str(sim_dir), "real": str(real_dir), "symbol": args.symbol,
                          "episode": args.episode, "block_days": block_days, "window_days": band.window_days,
                          "coverage_all_statistics": facts.BAND_COVERAGE, "sd_multiplier": band.k,
                          "binance_share_of_three": fact_series.BINANCE_SHARE_OF_THREE,
                          "statistics": [{"name": r.name, "simulated": r.simulated, "real": r.real,
                                          "band": list(r.band), "verdict": r.verdict} for r in rows],
                          "real_held_out": held and {"windows": held.windows, "all_pass": held.all_pass,
                                                     "failures": held.failures,
                                                     "failed_counts": list(held.failed_counts)}}, indent=1))
    else:
        print(f"{args.symbol}: {simulated.days} simulated days ({sim_dir}) vs {args.real_symbol}: {real.days} real days "
              f"({real_dir})")
        unit = "day" if block_days == 1 else f"{block_days} days"
        if episode:
            print(f"real episode: {episode.what} (the `{episode.scenario}` scenario's)")
        print(f"band: a real window of {band.window_days} days falls inside all {len(rows)} at once with probability "
              f"{facts.BAND_COVERAGE:.0%} (simultaneous prediction band, mean +- {band.k:.2f} sd on each statistic's "
              f"scale); mean, sd and correlation from {resamples} real windows built by a moving-block bootstrap "
              f"of real days, blocks of {unit} starting on any day")
        share = fact_series.BINANCE_SHARE_OF_THREE
        print(f"real liquidations are Binance + Bybit + OKX scaled by {share} "
              f"(assumption: Binance alone runs at ~{share}x the three-exchange series); simulated: {share} x the "
              f"capped forceOrder stream + {1 - share:.1f} x every liquidation (the uncapped feeds), at the stream's total")
        print(facts.format_table(rows, band_label=f"band ({band.window_days}-day real windows)"))
        print(f"{len(rows) - len(failed)}/{len(rows)} pass" + (f"; not passing: {', '.join(failed)}" if failed else ""))
        print(_held_out_line(held, band.window_days, len(rows), facts.BAND_COVERAGE))
    return EXIT_FAILED if failed else EXIT_OK


def _held_out_line(held: HeldOut | None, window_days: int, n_stats: int, coverage: float) -> str:
    """How the real market does on the same test: what a FAIL is worth (facts.held_out_real)."""
    if held is None:
        return f"the real window is too short to hold out {window_days} days and band them with the rest"
    median = sorted(held.failed_counts)[len(held.failed_counts) // 2]
    return (f"the real market on the same test: {held.all_pass}/{held.windows} of its own {window_days}-day windows, "
            f"each held out and banded with the days outside it, pass all {n_stats} (nominal "
            f"{coverage:.0%}; median {median} failing)")
