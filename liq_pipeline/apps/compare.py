"""`liq compare`: every variant on several simulated markets, scored with the validation yardsticks, in one
command a user can rerun.

For each scenario/seed pair (`calm/7`, or `calm/7/no-ofi` for the same market without the order-flow
signal: the simulator's `taker_open_share` = 0.5) the pair's market is simulated into its own data dir
(`<data dir>/compare/<pair>/`, a current simulation is reused) and the chain is materialized there by the
demo's machinery (`demo.run_demo`, without the monthly report), one process per pair. The process then
scores every variant on the days after the warm-up with the validation yardsticks, unchanged:
`truth.ground_truth_accuracy` per day (overlap at 0.1 % bins, the oracle ceiling, long-share error) and
`backtest.backtest` over the scored days (map ρ, side-excursion ρ, partial ρ, top-10 % recall, realized
notional where the map = 0). The parent gathers the pairs into one table (`report.yardstick_rows`) and the
pairwise comparisons (`report.paired_difference`: the mean daily difference of overlap / ceiling with a
90 % bootstrap interval over (pair, symbol, day)), and writes `<data dir>/reports/compare.json` and
`compare.md`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from liq_pipeline import config
from liq_pipeline.model import variants

EXIT_OK, EXIT_ERROR = 0, 2
DEFAULT_PAIRS = ("calm/7", "trending/11", "cascade/13")
DEFAULT_DAYS, DEFAULT_WARM_UP = 16, 7
#: The simulator's taker share of speculative opens when the order-flow signal is off (its docstring).
NO_OFI_TAKER_OPEN_SHARE = 0.5
NO_OFI = "no-ofi"
#: The figure the pairwise comparisons are made on (per day, from truth.ground_truth_accuracy): overlap /
#: ceiling within ±10 % of the mark, the window a trader reads (the primary figure).
MEASURE = "overlap_over_ceiling_10pct"
CHALLENGER = variants.DEFAULT
#: (challenger, baseline) of the OFI target: ofi beats volume_5050 with the signal on, no harm with it off.
OFI_PAIR = variants.OFI_PAIR
#: Child processes inherit the caller's environment minus what would point them at another market.
_PAIR_ENV_DROP = ("LIQ_SOURCE", "LIQ_WAREHOUSE", "LIQ_SIM_DIR", "LIQ_PROFILE_SOURCE", "LIQ_STORAGE",
                  "LIQ_PARQUET_ROOT")


class CompareInputError(ValueError):
    """A pair spec or option `liq compare` cannot run with."""


@dataclass(frozen=True)
class Pair:
    """One simulated market: scenario, seed, and whether the simulator's order-flow signal is on."""

    scenario: str
    seed: int
    ofi_signal: bool = True

    @property
    def label(self) -> str:
        return f"{self.scenario}/{self.seed}" + ("" if self.ofi_signal else f"/{NO_OFI}")

    @property
    def dirname(self) -> str:
        return self.label.replace("/", "-")

    @property
    def taker_open_share(self) -> float | None:
        """The simulator override: None keeps the scenario's (the signal on), 0.5 turns it off."""
        return None if self.ofi_signal else NO_OFI_TAKER_OPEN_SHARE


def parse_pair(spec: str) -> Pair:
    """`scenario/seed` or `scenario/seed/no-ofi` → Pair; CompareInputError with one sentence otherwise."""
    from liq_pipeline.sim import SCENARIOS

    parts = spec.strip().split("/")
    usage = f"pair {spec!r} is not scenario/seed[/{NO_OFI}] (e.g. calm/7 or calm/7/{NO_OFI})"
    if len(parts) not in (2, 3) or not all(parts):
        raise CompareInputError(usage)
    scenario, seed_text = parts[0].lower(), parts[1]
    if len(parts) == 3 and parts[2].lower() != NO_OFI:
        raise CompareInputError(f"{usage}: the third part can only be {NO_OFI!r}")
    if scenario not in SCENARIOS:
        raise CompareInputError(f"unknown scenario {parts[0]!r} in pair {spec!r}: choose one of {', '.join(SCENARIOS)}")
    try:
        seed = int(seed_text)
    except ValueError:
        raise CompareInputError(f"{usage}: seed {seed_text!r} is not a whole number") from None
    if seed < 0:
        raise CompareInputError(f"{usage}: seed {seed} is negative")
    return Pair(scenario, seed, ofi_signal=len(parts) == 2)


def scored_days(start: dt.date, days: int, warm_up: int) -> tuple[dt.date, dt.date]:
    """First and last scored day: the days after the `warm_up` first ones of a `days`-day market."""
    if warm_up < 1 or days < warm_up + 2:
        raise CompareInputError(f"--days {days} leaves fewer than 2 scored days after a warm-up of {warm_up} "
                                "(need days ≥ warm-up + 2 and warm-up ≥ 1)")
    return start + dt.timedelta(days=warm_up), start + dt.timedelta(days=days - 1)


# =====================================================================================================
# One pair, in its own process: materialize, then score
# =====================================================================================================

def score_warehouse(con, symbols, first: dt.date, last: dt.date, variants: tuple[str, ...] = variants.NAMES) -> dict:
    """Every variant of every symbol of a materialized warehouse on the days first..last, with the
    validation yardsticks: per symbol, `variants` (per variant the day means of the ground-truth figures,
    report.GROUND_TRUTH_FIGURES, and the backtest metrics over the range) and `ground_truth_daily` (the
    rows of truth.ground_truth_accuracy, one per day and variant). Same shape as a monthly report's
    symbol entry, so report.yardstick_rows reads it."""
    from liq_pipeline.validation.backtest import backtest
    from liq_pipeline.validation.report import GROUND_TRUTH_FIGURES, _mean, clean_for_json
    from liq_pipeline.validation.truth import ground_truth_accuracy

    out = {}
    for symbol in symbols:
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        gt_rows = [row for d in days for row in ground_truth_accuracy(con, symbol, d, variants)]
        per_variant = {}
        for variant in variants:
            v_gt = [r for r in gt_rows if r["variant"] == variant]
            entry: dict = {"backtest": backtest(con, symbol, first, last, variant).metrics}
            if v_gt:
                entry["ground_truth"] = {k: _mean(r.get(k) for r in v_gt) for k in GROUND_TRUTH_FIGURES} | {
                    "days": len(v_gt)}
            per_variant[variant] = entry
        out[symbol] = clean_for_json({"variants": per_variant, "ground_truth_daily": gt_rows})
    return out


def run_pair(pair: Pair, days: int, warm_up: int, result_path: Path, score_only: bool = False) -> int:
    """In a process whose LIQ_DATA_DIR is the pair's: simulate (or reuse) and materialize the chain with
    demo.run_demo, score it (score_warehouse) and write the result JSON. Returns an exit code."""
    import duckdb

    from liq_pipeline.apps.demo import run_demo

    symbols = tuple(config.configured_symbols())
    start = config.configured_start_date()
    first, last = scored_days(start, days, warm_up)
    t0 = time.time()
    if not score_only:
        # Every variant is modelled from the first day (flow's book fills and calibrates during the warm-up,
        # the seed variants' profile window grows); only the days after the warm-up are scored.
        code = run_demo(days=days, seed=pair.seed, model_days=days - 1, scenario=pair.scenario,
                        taker_open_share=pair.taker_open_share, validate=False)
        if code:
            return code
    elif not config.warehouse_path().is_file() or not (config.sim_archive_dir() / "simulation.json").is_file():
        return _error(f"--score-only: {pair.label} has no materialized market in {config.data_dir()} (run it "
                      "once without --score-only)")
    t1 = time.time()
    manifest = json.loads((config.sim_archive_dir() / "simulation.json").read_text())
    # Not read-only: the yardsticks create the tables they read when missing (validation.common).
    with duckdb.connect(str(config.warehouse_path())) as con:
        symbols_scored = score_warehouse(con, symbols, first, last)
    result = {"pair": pair.label, "scenario": pair.scenario, "seed": pair.seed, "ofi_signal": pair.ofi_signal,
              "taker_open_share": manifest.get("config", {}).get("taker_open_share"), "days": days,
              "warm_up": warm_up, "scored": [first.isoformat(), last.isoformat()],
              "seconds": {"materialize": round(t1 - t0, 1), "score": round(time.time() - t1, 1)},
              "symbols": symbols_scored}
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, allow_nan=False, default=str))
    tmp.replace(result_path)
    print(f"scored {pair.label} {first}…{last} in {time.time() - t1:.0f} s", flush=True)
    return EXIT_OK


def _pair_env(pair_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PAIR_ENV_DROP}
    env["LIQ_DATA_DIR"] = str(pair_dir)
    # Its own Dagster instance: two pairs in parallel never share a run database.
    env["DAGSTER_HOME"] = str(pair_dir / "dagster_home")
    return env


def run_pairs(pairs: list[Pair], days: int, warm_up: int, root: Path, jobs: int = 1,
              score_only: bool = False, stream=None) -> list[dict]:
    """Run each pair in its own process (`jobs` at a time), the output of each in <pair dir>/compare.log,
    progress on `stream` (stderr: stdout is the table); returns the results in the order of `pairs`.
    RuntimeError naming the pair and its log when one fails."""
    stream = stream or sys.stderr
    pending = list(pairs)
    running: list[tuple[Pair, subprocess.Popen, float, object]] = []
    failed: list[str] = []
    while pending or running:
        while pending and len(running) < jobs:
            pair = pending.pop(0)
            pair_dir = (root / pair.dirname).resolve()
            pair_dir.mkdir(parents=True, exist_ok=True)
            log = (pair_dir / "compare.log").open("w")
            cmd = [sys.executable, "-m", "liq_pipeline.apps.compare", "--pair-worker", pair.label,
                   "--days", str(days), "--warm-up", str(warm_up)] + (["--score-only"] if score_only else [])
            print(f"{pair.label}: started (log {pair_dir / 'compare.log'})", file=stream, flush=True)
            proc = subprocess.Popen(cmd, env=_pair_env(pair_dir), stdout=log, stderr=subprocess.STDOUT)
            running.append((pair, proc, time.time(), log))
        time.sleep(1.0)
        for item in list(running):
            pair, proc, t, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            ok = proc.returncode == 0
            print(f"{pair.label}: {'done' if ok else f'FAILED (exit {proc.returncode})'} in {time.time() - t:.0f} s",
                  file=stream, flush=True)
            if not ok:
                failed.append(f"{pair.label} (see {root / pair.dirname / 'compare.log'})")
    if failed:
        raise RuntimeError(f"pair run failed: {', '.join(failed)}")
    return [json.loads((root / p.dirname / "result.json").read_text()) for p in pairs]


# =====================================================================================================
# The table and the comparisons, from the pair results (plain dicts)
# =====================================================================================================

#: Columns of the comparison table: key of report.yardstick_rows (plus `pair`), header, format.
COLUMNS = (
    ("pair", "scenario / seed", "{}"), ("symbol", "symbol", "{}"), ("variant", "variant", "{}"),
    ("overlap", "overlap", "{:.3f}"), ("ceiling", "ceiling", "{:.3f}"),
    ("overlap_over_ceiling_10pct", "overlap / ceiling ±10 % (primary)", "{:.0%}"),
    ("overlap_over_ceiling", "overlap / ceiling", "{:.0%}"), ("long_share_error", "long-share error", "{:.3f}"),
    ("long_share_error_constant_half", "constant-0.5 error", "{:.3f}"), ("map_rho", "map ρ", "{:.3f}"), ("side_excursion_rho", "excursion ρ", "{:.3f}"),
    ("partial_rho", "partial ρ", "{:+.3f}"), ("recall", "top-10 % recall", "{:.2f}"),
    ("side_excursion_recall", "recall excursion", "{:.2f}"), ("missed", "realized where map = 0", "{:.1%}"),
)


def table_rows(results: list[dict]) -> list[dict]:
    """One row per pair × symbol × variant (report.yardstick_rows on each pair's result)."""
    from liq_pipeline.validation.report import yardstick_rows

    rows = []
    for result in results:
        for row in yardstick_rows({"month": result["pair"], "symbols": result["symbols"]}):
            rows.append(row | {"pair": result["pair"]})
    return rows


def daily_measure(results: list[dict], variant: str, measure: str = MEASURE) -> dict[tuple, float]:
    """{(pair, symbol, day): figure} of one variant over every pair's scored days (finite values only)."""
    out = {}
    for result in results:
        for symbol, sym in result["symbols"].items():
            for row in sym.get("ground_truth_daily", []):
                value = row.get(measure)
                if row["variant"] == variant and value is not None and math.isfinite(value):
                    out[(result["pair"], symbol, row["day"])] = value
    return out


def verdict(low: float | None, high: float | None) -> str:
    """"beats" only when the interval lies above zero; "worse" below; otherwise no difference shown."""
    if low is None or high is None:
        return "inconclusive (fewer than 2 weeks)"
    if low > 0:
        return "beats"
    if high < 0:
        return "worse"
    return "no difference shown"


def comparison(results: list[dict], challenger: str, baseline: str, scope: str, measure: str = MEASURE) -> dict:
    """challenger − baseline on `measure` over the (pair, symbol, day) units of `results`: the mean with
    its 90 % bootstrap interval (report.paired_difference) and the verdict."""
    from liq_pipeline.validation.report import paired_difference

    keys, interval = paired_difference(daily_measure(results, challenger, measure),
                                       daily_measure(results, baseline, measure))
    return {"challenger": challenger, "baseline": baseline, "measure": measure, "scope": scope,
            "pairs": sorted({k[0] for k in keys}), "units": len(keys), **interval.as_dict(),
            "verdict": verdict(interval.low, interval.high)}


def comparisons(results: list[dict]) -> list[dict]:
    """flow − each seed variant (over the pairs with the OFI signal on, then per pair); ofi − volume_5050
    with the signal on and with it off (pooled, then per pair)."""
    on = [r for r in results if r.get("ofi_signal", True)]
    off = [r for r in results if not r.get("ofi_signal", True)]
    out = []
    for baseline in variants.SEED:
        if on:
            out.append(comparison(on, CHALLENGER, baseline, "all pairs, OFI signal on"))
        if len(results) > 1:
            out += [comparison([r], CHALLENGER, baseline, r["pair"]) for r in results]
    for group, label in ((on, "OFI signal on"), (off, "OFI signal off")):
        if group:
            out.append(comparison(group, *OFI_PAIR, f"all pairs, {label}"))
            if len(group) > 1:
                out += [comparison([r], *OFI_PAIR, r["pair"]) for r in group]
    return out


def _recall_ratio(row: dict) -> float | None:
    r, base = row.get("recall"), row.get("side_excursion_recall")
    return r / base if r is not None and base else None


def _long_share_margin(row: dict) -> float | None:
    """The constant-0.5 predictor's long-share error minus the row's (> 0: the row beats the constant)."""
    e, c = row.get("long_share_error"), row.get("long_share_error_constant_half")
    return c - e if e is not None and c is not None else None


#: The model targets for `flow` per pair × symbol on the calibrated simulator (issue 26; "flow beats every seed
#: variant" is the block-bootstrap comparison below them): text, figure of a table row, test, format.
TARGETS = (
    ("overlap ≥ 0.85 of the oracle ceiling (±10 % of the mark)", lambda r: r.get("overlap_over_ceiling_10pct"),
     lambda v: v >= 0.85, "{:.0%}"),
    ("long-share error below the constant-0.5 predictor's", _long_share_margin, lambda v: v > 0, "{:+.3f}"),
    ("partial Spearman beyond range and side excursion ≥ +0.35", lambda r: r.get("partial_rho"),
     lambda v: v >= 0.35, "{:+.3f}"),
    ("top-10 % notional recall ≥ 1.2× the side-excursion baseline's", _recall_ratio, lambda v: v >= 1.2, "×{:.2f}"),
    ("at most 5 % of realized notional where the map predicted nothing", lambda r: r.get("missed"),
     lambda v: v <= 0.05, "{:.1%}"),
)


def targets(results: list[dict], rows: list[dict], cmp_: list[dict]) -> list[str]:
    """One line per target of the issue: in how many pair × symbol the `flow` row meets it (pairs with the
    OFI signal on), its range; then the comparison targets from the pooled comparisons."""
    on = {r["pair"] for r in results if r.get("ofi_signal", True)}
    flow = [r for r in rows if r["variant"] == CHALLENGER and r["pair"] in on]
    lines = []
    for text, figure, test, pattern in TARGETS:
        values = [v for v in (figure(r) for r in flow) if v is not None and math.isfinite(v)]
        if not values:
            continue
        met = sum(bool(test(v)) for v in values)
        lines.append(f"- {CHALLENGER}: {text}: {'met' if met == len(values) else '**not met**'} (met in {met} of "
                     f"{len(values)} pair × symbol; {pattern.format(min(values))} to {pattern.format(max(values))})")
    pooled = {(c["challenger"], c["baseline"], c["scope"]): c for c in cmp_ if c["scope"].startswith("all pairs")}
    flow_cmp = [c for (ch, _, scope), c in pooled.items() if ch == CHALLENGER and scope.endswith("on")]
    if flow_cmp:
        beaten = [c["baseline"] for c in flow_cmp if c["verdict"] == "beats"]
        others = [f"{c['baseline']}: {c['verdict']}" for c in flow_cmp if c["verdict"] != "beats"]
        lines.append(f"- {CHALLENGER} beats every seed variant on overlap / ceiling (interval excluding zero, pairs "
                     f"with the OFI signal on): {'met' if not others else '**not met**'} (beats "
                     f"{', '.join(beaten) or 'none'}{'; ' + ', '.join(others) if others else ''})")
    on_c = pooled.get((*OFI_PAIR, "all pairs, OFI signal on"))
    off_c = pooled.get((*OFI_PAIR, "all pairs, OFI signal off"))
    if on_c:
        lines.append(f"- {OFI_PAIR[0]} beats {OFI_PAIR[1]} with the simulator's OFI signal on: "
                     f"{'met' if on_c['verdict'] == 'beats' else '**not met**'} ({on_c['verdict']})")
    if off_c:
        lines.append(f"- {OFI_PAIR[0]} does not hurt with the signal off: "
                     f"{'**not met**' if off_c['verdict'] == 'worse' else 'met'} ({off_c['verdict']})")
    return lines


def _cell(value, pattern: str) -> str:
    from liq_pipeline.validation.report import fmt

    return value if isinstance(value, str) else fmt(value, pattern)


def markdown(results: list[dict], rows: list[dict], cmp_: list[dict]) -> str:
    """The table and the comparisons as markdown, ready to paste into the README."""
    if not results:
        return "(no pair results)"
    r0 = results[0]
    symbols = sorted({s for r in results for s in r["symbols"]})
    head = (f"{r0['days']} simulated days per pair, the first {r0['warm_up']} as warm-up, scored on days "
            f"{r0['warm_up'] + 1}–{r0['days']}, {', '.join(symbols)}; overlap of the end-of-day levels at 0.1 % "
            "bins; backtest over 1-hour bars (`liq compare`, figures as they came out)")
    lines = [head, "", "| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(k), f) for k, _, f in COLUMNS) + " |" for r in rows]
    lines += ["", "Differences of overlap / ceiling per (pair, symbol, day), mean and 90 % block-bootstrap interval "
              "(whole ISO weeks of each pair and symbol resampled: the book carries over from day to day; "
              "\"beats\" only when the interval excludes zero):", "",
              "| challenger − baseline | scope | days | mean | 90 % interval | verdict |", "|---|---|---|---|---|---|"]
    for c in cmp_:
        interval = "–" if c["low"] is None else f"[{c['low']:+.4f}, {c['high']:+.4f}]"
        lines.append(f"| {c['challenger']} − {c['baseline']} | {c['scope']} | {c['units']} | "
                     f"{_cell(c['mean'], '{:+.4f}')} | {interval} | {c['verdict']} |")
    goals = targets(results, rows, cmp_)
    if goals:
        lines += ["", "Against the model targets (issue 26):", "", *goals]
    return "\n".join(lines)


def text_table(rows: list[dict]) -> list[str]:
    """The rows as aligned text lines, header first."""
    cells = [[h for _, h, _ in COLUMNS]] + [[_cell(r.get(k), f) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in cells]


def write_outputs(results: list[dict], reports_dir: Path) -> tuple[dict, str, list[dict], list[dict]]:
    """Build the table and the comparisons, write compare.json and compare.md into `reports_dir`."""
    rows = table_rows(results)
    cmp_ = comparisons(results)
    md = markdown(results, rows, cmp_)
    out = {"generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
           "measure": MEASURE, "rows": rows, "comparisons": cmp_, "targets": targets(results, rows, cmp_),
           "pairs": results}
    reports_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("compare.json", json.dumps(out, indent=1, allow_nan=False, default=str)),
                       ("compare.md", md + "\n")):
        tmp = reports_dir / f"{name}.tmp"
        tmp.write_text(text)
        tmp.replace(reports_dir / name)
    return out, md, rows, cmp_


# =====================================================================================================
# The command
# =====================================================================================================

def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `compare` to the `liq` sub-command parser."""
    c = subparsers.add_parser(
        "compare", help="every variant on several simulated markets, scored with the validation yardsticks")
    _add_options(c)
    c.add_argument("--jobs", type=int, choices=(1, 2), default=1, help="pairs run at the same time (default 1)")
    c.add_argument("--markdown", action="store_true", help="print the markdown (also written to compare.md)")
    c.set_defaults(func=compare_command)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", nargs="*", default=list(DEFAULT_PAIRS),
                        help=f"scenario/seed[/{NO_OFI}] (default: {' '.join(DEFAULT_PAIRS)}); /{NO_OFI} simulates the "
                             f"scenario and seed with the order-flow signal off (taker_open_share "
                             f"{NO_OFI_TAKER_OPEN_SHARE})")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"simulated days per pair (default {DEFAULT_DAYS})")
    parser.add_argument("--warm-up", type=int, default=DEFAULT_WARM_UP,
                        help=f"first days not scored (default {DEFAULT_WARM_UP})")
    parser.add_argument("--score-only", action="store_true",
                        help="score the pairs' warehouses as they are (no simulation, no materialization)")


def _error(message: str) -> int:
    print(f"liq compare: {message}", file=sys.stderr)
    return EXIT_ERROR


def compare_command(args: argparse.Namespace) -> int:
    """Run the pairs, print the table and the comparisons, write compare.json / compare.md."""
    try:
        pairs = [parse_pair(s) for s in args.pairs]
        scored_days(config.configured_start_date(), args.days, args.warm_up)
    except CompareInputError as e:
        return _error(str(e))
    if len({p.label for p in pairs}) < len(pairs):
        return _error(f"a pair is listed twice: {' '.join(p.label for p in pairs)}")
    root = config.data_dir() / "compare"
    t0 = time.time()
    try:
        results = run_pairs(pairs, args.days, args.warm_up, root, args.jobs, args.score_only)
    except (RuntimeError, OSError, ValueError) as e:
        return _error(str(e))
    _, md, rows, cmp_ = write_outputs(results, config.reports_dir())
    if args.markdown:
        print(md)
    else:
        print("\n".join(text_table(rows)))
        print()
        for c in cmp_:
            interval = "–" if c["low"] is None else f"[{c['low']:+.4f}, {c['high']:+.4f}]"
            print(f"{c['challenger']} − {c['baseline']} ({c['scope']}, {c['units']} days): "
                  f"{_cell(c['mean'], '{:+.4f}')} {interval}: {c['verdict']}")
        print()
        print("\n".join(targets(results, rows, cmp_)))
    print(f"\nwritten {config.reports_dir() / 'compare.json'} and compare.md ({time.time() - t0:.0f} s)", file=sys.stderr)
    return EXIT_OK


def _worker(argv: list[str]) -> int:
    """`python -m liq_pipeline.apps.compare --pair-worker PAIR …`: one pair in this process."""
    parser = argparse.ArgumentParser(prog="liq compare --pair-worker")
    parser.add_argument("--pair-worker", required=True)
    _add_options(parser)
    args = parser.parse_args(argv)
    try:
        pair = parse_pair(args.pair_worker)
    except CompareInputError as e:
        return _error(str(e))
    return run_pair(pair, args.days, args.warm_up, config.data_dir() / "result.json", args.score_only)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
