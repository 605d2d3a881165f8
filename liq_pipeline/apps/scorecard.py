"""The real-data scorecard (`liq score-real`, `make score-real`): the whole chain on a local kline-only mirror
in its own data directory, the mirror's realized liquidations imported, and every variant's heatmap scored
against them with the backtest.

The mirror is read in place (LIQ_SOURCE=mirror) and everything generated goes to a separate LIQ_DATA_DIR,
never the demo's warehouse. The settings are environment variables read when the Definitions load, so the
chain must run in a process whose environment was set first: `run_chain` checks that it was.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liq_pipeline.market.mirror_layout import REAL_DATA_ENV, MirrorLayout, inspect_mirror
from liq_pipeline.model import variants

#: The development window of real BTCUSDT data, relative to the repository root (read in place, never copied).
DEFAULT_REAL_DATA = Path("..") / "shared" / "data" / "real-btcusdt-2025-12-05_2026-02-20"
#: Default data directory of the scorecard, beside the demo's `data/` folders but never its warehouse.
DEFAULT_DATA_DIR = Path("data") / "score-real"
#: Days at the start of the window that only warm up the volume profile (as the demo's WARM_UP_DAYS).
WARM_UP_DAYS = 7
#: Raw tables a kline-only mirror has (no aggTrades).
RAW_ASSETS = ("klines", "mark_price_klines", "open_interest", "funding_rates")
#: Dagster's per-event DEBUG lines would bury the progress lines; warnings and errors still print.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}



def repo_root() -> Path:
    """The repository (the folder that holds `liq_pipeline/`)."""
    return Path(__file__).resolve().parents[2]


def real_data_dir() -> Path:
    """`LIQ_REAL_DATA_DIR`, else `../shared/data/real-btcusdt-2025-12-05_2026-02-20` next to the repository."""
    configured = os.environ.get(REAL_DATA_ENV, "").strip()
    return Path(configured).expanduser().resolve() if configured else (repo_root() / DEFAULT_REAL_DATA).resolve()


@dataclass(frozen=True)
class RealRun:
    """One scorecard run: the mirror (read in place), its liquidation file, the days, the data directory."""

    mirror_dir: Path
    liquidations: Path | None
    layout: MirrorLayout
    data_dir: Path
    #: Days first_day .. score_from − 1 warm up the profile; score_from .. last_day are modelled and scored.
    score_from: dt.date
    first_day: dt.date
    last_day: dt.date

    @property
    def symbol(self) -> str:
        return self.layout.symbol

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse" / "liq.duckdb"

    def env(self) -> dict[str, str]:
        """The LIQ_* settings of the run (README "Pointing it at real Binance data")."""
        return {
            "LIQ_SOURCE": "mirror", "LIQ_MIRROR_DIR": str(Path(self.mirror_dir).resolve()),
            "LIQ_SYMBOLS": self.symbol, "LIQ_START_DATE": self.first_day.isoformat(),
            "LIQ_KLINE_INTERVAL": self.layout.kline_interval, "LIQ_MARK_KLINE_INTERVAL": self.layout.mark_interval,
            "LIQ_PROFILE_SOURCE": "klines", "LIQ_DATA_DIR": str(Path(self.data_dir).resolve()),
            "LIQ_WAREHOUSE": str(self.warehouse.resolve()), "LIQ_STORAGE": "duckdb",
        }


def plan_run(mirror_dir: Path, data_dir: Path, symbol: str = "BTCUSDT", liquidations: Path | None = None,
             first_day: dt.date | None = None, last_day: dt.date | None = None,
             warm_up_days: int = WARM_UP_DAYS) -> RealRun:
    """The run over [first_day, last_day] (default: every day of the mirror); the first `warm_up_days` only
    build the volume profile. `liquidations` defaults to `realized_liquidations_1h.csv` in the mirror."""
    layout = inspect_mirror(mirror_dir, symbol)
    first = first_day or layout.first_day
    last = last_day or layout.last_day
    if not layout.first_day <= first <= last <= layout.last_day:
        raise ValueError(f"days {first} … {last} are not inside the mirror's {layout.first_day} … {layout.last_day}")
    if warm_up_days < 1:
        raise ValueError("warm_up_days must be at least 1: the heatmap of a day starts from the levels of the day before")
    score_from = first + dt.timedelta(days=warm_up_days)
    if score_from > last:
        raise ValueError(f"{warm_up_days} warm-up days leave no day to score in {first} … {last}")
    if liquidations is None:
        default = Path(mirror_dir) / "realized_liquidations_1h.csv"
        liquidations = default if default.is_file() else None
    return RealRun(Path(mirror_dir), liquidations, layout, Path(data_dir), score_from, first, last)


def check_environment(run: RealRun) -> None:
    """Refuse to run when the process's settings or already-loaded partitions are not the run's."""
    import sys

    wrong = {k: os.environ.get(k) for k, v in run.env().items() if os.environ.get(k) != v}
    if wrong:
        raise RuntimeError(f"the environment is not set for this run ({', '.join(sorted(wrong))}): "
                           "call os.environ.update(run.env()) before importing liq_pipeline.definitions")
    if "liq_pipeline.partitions" in sys.modules:
        from liq_pipeline import partitions

        start = partitions.daily.start.date()
        if start > run.first_day or run.symbol not in partitions.symbols.get_partition_keys():
            raise RuntimeError("liq_pipeline.partitions was loaded with other settings (start "
                               f"{start}); run the scorecard in a fresh process (liq score-real)")


@dataclass
class StageTime:
    label: str
    first: dt.date
    last: dt.date
    seconds: float
    ok: bool


@dataclass
class ChainReport:
    """What the chain's runs reported: seconds per stage, and the model's flags per day (size prior,
    missing OI, mark fallbacks) from the materializations' metadata."""

    stages: list[StageTime] = field(default_factory=list)
    #: "<symbol> <day>" → the size-prior flag of liquidation_levels (days whose sizes are the prior).
    size_prior_days: dict[str, str] = field(default_factory=dict)
    #: "<symbol> <day>" → the flags of liquidation_heatmap for that day.
    heatmap_flags: dict[str, list[str]] = field(default_factory=dict)

    def flag_summary(self) -> dict[str, int]:
        """Days per kind of flag of liquidation_levels (the size prior) and liquidation_heatmap, numbers in a
        flag replaced by N so that kinds add up over days."""
        counts: dict[str, int] = {}
        for reason in self.size_prior_days.values():
            kind = "liquidation_levels " + re.sub(r"[\d.,$]+\d|\d", "N", reason)
            counts[kind] = counts.get(kind, 0) + 1
        for flags in self.heatmap_flags.values():
            for kind in {re.sub(r"[\d.,$]+\d|\d", "N", f) for f in flags}:
                counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _metadata(result, asset: str, key: str) -> dict:
    """`key` of every materialization of `asset` in the run, merged: a dict value is merged as it is, any
    other value is keyed by its partition ("SYMBOL day"; each partition carries its own day's metadata)."""
    out: dict = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.to_user_string() != asset or key not in mat.metadata:
            continue
        value = mat.metadata[key].value
        if isinstance(value, dict):
            out.update(value)
        elif value:
            date, _, symbol = str(mat.partition or "").partition("|")
            out[f"{symbol} {date}".strip()] = value
    return out


def run_chain(run: RealRun, progress: Callable[[str], None] = print) -> ChainReport:
    """Materialize raw → model → heatmap over the run's days through the real Definitions, one run per stage
    (days in order), on an ephemeral Dagster instance. Raises RuntimeError when a stage fails."""
    check_environment(run)
    warnings.filterwarnings("ignore", message=".*BackfillPolic.*")
    import dagster as dg

    from liq_pipeline.definitions import build_definitions

    run.warehouse.parent.mkdir(parents=True, exist_ok=True)
    defs = build_definitions()
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    resources = dict(defs.resources or {})
    instance = dg.DagsterInstance.ephemeral()
    model_from = run.score_from - dt.timedelta(days=1)  # the heatmap of day D starts from the levels of D − 1
    stages = [
        ("raw klines, mark klines, OI, funding", dg.AssetSelection.assets(*RAW_ASSETS), run.first_day),
        ("daily volume profiles", dg.AssetSelection.assets("volume_profile_daily"), run.first_day),
        ("baseline, OFI, distributions, levels",
         dg.AssetSelection.groups("model") - dg.AssetSelection.assets("volume_profile_daily"), model_from),
        ("heatmap and zones", dg.AssetSelection.groups("heatmap"), run.score_from),
    ]
    report = ChainReport()
    for label, selection, first in stages:
        t = time.perf_counter()
        tags = {"dagster/asset_partition_range_start": f"{first.isoformat()}|{run.symbol}",
                "dagster/asset_partition_range_end": f"{run.last_day.isoformat()}|{run.symbol}"}
        result = dg.materialize(assets, selection=selection, instance=instance, resources=resources, tags=tags,
                                run_config=QUIET, raise_on_error=False)
        stage = StageTime(label, first, run.last_day, time.perf_counter() - t, result.success)
        report.stages.append(stage)
        progress(f"{label:<40} {run.symbol} {first}…{run.last_day}: "
                 f"{'ok' if result.success else 'FAILED'} ({stage.seconds:.1f} s)")
        if not result.success:
            failures = [e for e in result.all_events if e.is_failure]
            reason = failures[0].message if failures else "see the run's events"
            raise RuntimeError(f"{label} failed: {reason}")
        report.size_prior_days.update(_metadata(result, "liquidation_levels", "size_prior_days"))
        report.heatmap_flags.update(_metadata(result, "liquidation_heatmap", "flags"))
    return report


# ------------------------------------------------------------------------------------------- scorecard
#: The model targets (issue 26, model v3) for the best variant on the development window: plain ρ at least
#: 0.03 above the side-excursion baseline's, partial ρ beyond range and excursion, top-10 % notional recall
#: against the excursion baseline's, and the realized share where the map predicted nothing.
TARGETS = {"rho_minus_excursion": 0.03, "partial_spearman": 0.50, "top10_recall_vs_excursion": 1.2,
           "empty_bar_share": 0.05}


@dataclass
class Scorecard:
    symbol: str
    first_scored_day: dt.date
    last_day: dt.date
    realized_file: str
    realized_rows: int
    variants: dict[str, dict] = field(default_factory=dict)
    learned: dict = field(default_factory=dict)
    #: Days per kind of model flag over the run (size prior, OI unknown, mark fallback, ...).
    flags: dict = field(default_factory=dict)
    #: The variant with the highest partial Spearman, and the model targets (TARGETS) checked on it.
    best_variant: str | None = None
    targets: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Seconds per stage of the run that produced it (filled by the command).
    timings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return _clean(asdict(self))


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def import_realized(con, run: RealRun) -> tuple[str, int, tuple[str, ...]]:
    """Import the run's liquidation file into the warehouse: (file name, rows, what was understood)."""
    from liq_pipeline.market import liquidation_imports as li

    if run.liquidations is None:
        raise FileNotFoundError(f"{run.mirror_dir}: no realized_liquidations_1h.csv (pass --liquidations)")
    result = li.import_liquidation_file(con, run.liquidations, symbol=run.symbol)
    return Path(run.liquidations).name, result.rows, result.understood


def _r(figure: dict | None) -> float | None:
    return (figure or {}).get("r")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b and math.isfinite(a) and math.isfinite(b) else None


def _variant_scores(metrics: dict) -> dict:
    """The scorecard's figures of one variant from the backtest's metrics (validation/backtest.py)."""
    from liq_pipeline.model.scoring import bootstrap_mean_interval

    base = metrics.get("baselines") or {}
    top = (metrics.get("top_k_model") or {}).get("notional_recall")
    recall = {name: ((base.get(name) or {}).get("top_k") or {}).get("notional_recall")
              for name in ("bar_range", "side_excursion", "leverage_only")}
    daily_partial = [d["partial_spearman"] for d in metrics.get("daily", []) if d.get("partial_spearman") is not None]
    interval = bootstrap_mean_interval(daily_partial) if daily_partial else None
    return {
        "status": metrics.get("status"),
        "bars_scored": metrics.get("bars_scored"),
        # Which candles priced the bars (mark, else last-price) and their minutes (validation/backtest.py).
        "price_series": metrics.get("price_series"),
        "candle_minutes": metrics.get("candle_minutes"),
        "spearman_map": _r(metrics.get("spearman")),
        "spearman_bar_range": _r((base.get("bar_range") or {}).get("spearman")),
        "spearman_side_excursion": _r((base.get("side_excursion") or {}).get("spearman")),
        "spearman_leverage_only": _r((base.get("leverage_only") or {}).get("spearman")),
        "partial_spearman": _r(metrics.get("partial_spearman")),
        "partial_spearman_p": (metrics.get("partial_spearman") or {}).get("p"),
        # The mean of the per-day partial ρ with a 90 % bootstrap interval over days (scoring.bootstrap_mean_interval).
        "partial_spearman_daily_mean": interval.mean if interval else None,
        "partial_spearman_daily_interval": [interval.low, interval.high] if interval else None,
        "spearman_long": _r(metrics.get("spearman_long")),
        "spearman_short": _r(metrics.get("spearman_short")),
        "top10_notional_recall_map": top,
        "top10_notional_recall_bar_range": recall["bar_range"],
        "top10_notional_recall_side_excursion": recall["side_excursion"],
        "top10_notional_recall_leverage_only": recall["leverage_only"],
        "top10_recall_vs_excursion": _ratio(top, recall["side_excursion"]),
        "realized_share_where_map_zero": metrics.get("realized_share_where_map_zero"),
        "realized_usd": (metrics.get("realized_long_usd") or 0.0) + (metrics.get("realized_short_usd") or 0.0),
        "predicted_in_range_usd": metrics.get("predicted_in_range_usd"),
    }


def targets_for(scores: dict) -> dict[str, dict]:
    """Each target of TARGETS: the variant's value, the threshold and whether it is met."""
    rho, exc = scores.get("spearman_map"), scores.get("spearman_side_excursion")
    checks = {
        "rho_minus_excursion": (rho - exc if rho is not None and exc is not None else None, ">="),
        "partial_spearman": (scores.get("partial_spearman"), ">="),
        "top10_recall_vs_excursion": (scores.get("top10_recall_vs_excursion"), ">="),
        "empty_bar_share": (scores.get("realized_share_where_map_zero"), "<="),
    }
    out = {}
    for name, (value, op) in checks.items():
        threshold = TARGETS[name]
        met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        out[name] = {"value": value, "target": f"{op} {threshold}", "met": met}
    return out


def learned_parameters(con, symbol: str, first: dt.date, last: dt.date) -> dict:
    """What a learning variant stored in model.flow_parameters (parameter, side, value, source) over the days:
    the values of the last day per side, and on how many days each source ("learned", "prior") gave them.
    Empty when no variant learns (the table is absent or has no row in the range)."""
    import pandas as pd

    from liq_pipeline.warehouse.readers.flow import parameter_rows

    rows = parameter_rows(con, symbol, first, last)
    if rows is None or rows.empty:
        return {}
    last = rows["day"].max()
    final = rows[rows["day"] == last]
    sources = rows[rows["parameter"] == "near_liquidation_share"].groupby("source")["day"].nunique()
    return {
        "as_of": pd.Timestamp(last).date().isoformat(),
        "values": {side: {r.parameter: (None if r.value is None or not math.isfinite(r.value) else float(r.value))
                          for r in g.itertuples()} for side, g in final.groupby("side")},
        "sources": {side: {r.parameter: r.source for r in g.itertuples()} for side, g in final.groupby("side")},
        "near_share_source_days": {str(k): int(v) for k, v in sources.items()},
    }


def what_the_model_learned(con, run: RealRun) -> dict:
    """What the models took from the data and what they assumed: the seed variants' fixed parameters
    (config.ModelParams: no fitted leverage mix, leveraged share or survival), the position sizes used, and
    whatever a learning variant stored (`learned_parameters`)."""
    from liq_pipeline.config import MODEL
    from liq_pipeline.warehouse.readers.marks import kline_trade_counts

    counted = kline_trade_counts(con, run.symbol, run.score_from, run.last_day)
    out = {
        "seed_leverage_mix": {f"{lev:g}x": w for lev, w in zip(MODEL.leverages, MODEL.leverage_weights, strict=True)},
        "seed_parameters": "fixed assumptions (config.ModelParams), not fitted: all open interest is placed as "
                           "leveraged positions, levels leave only when mark crosses them or OI falls"
                           + (f", half-life {MODEL.heatmap_half_life_hours} h" if MODEL.heatmap_half_life_hours else ""),
        "position_sizes": ("size prior (klines carry no trade counts)" if counted[0] == 0
                           else f"measured on {counted[0]:,} of {counted[1]:,} klines"),
    }
    learned = learned_parameters(con, run.symbol, run.score_from, run.last_day)
    if learned:
        out["learning_variant"] = learned
    return out


def score(con, run: RealRun, bar_minutes: int = 60) -> Scorecard:
    """Backtest every variant over the scored days against the imported per-bar liquidations."""
    from liq_pipeline.validation.backtest import backtest
    from liq_pipeline.warehouse.readers.realized import bar_rows

    rows = bar_rows(con, run.symbol, run.score_from, run.last_day + dt.timedelta(days=1))
    card = Scorecard(run.symbol, run.score_from, run.last_day,
                     Path(run.liquidations).name if run.liquidations else "", int(rows))
    for variant in variants.NAMES:
        result = backtest(con, run.symbol, run.score_from, run.last_day, variant, bar_minutes, None, "bars")
        card.variants[variant] = _variant_scores(result.metrics)
    card.learned = what_the_model_learned(con, run)
    ranked = [v for v, s in card.variants.items() if s.get("partial_spearman") is not None]
    if ranked:
        card.best_variant = max(ranked, key=lambda v: card.variants[v]["partial_spearman"])
        card.targets = targets_for(card.variants[card.best_variant])
    return card


def _natural(name: str) -> tuple:
    """Sort key that puts weight_2x before weight_10x."""
    number = re.search(r"\d+(?:\.\d+)?", name)
    return (re.sub(r"\d+(?:\.\d+)?", "#", name), float(number.group()) if number else 0.0)


def _f(value, spec: str = "+.3f") -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def format_scorecard(card: Scorecard) -> str:
    """The scorecard as text: Spearman of the map and of the baselines, partial Spearman, top-10 % notional
    recall, the realized share where the map predicted nothing, per variant; then the targets, what the
    model learned, the flags and the notes."""
    lines = [f"{card.symbol} {card.first_scored_day} … {card.last_day}: {card.realized_rows:,} realized bars "
             f"({card.realized_file}), 1-hour bars, (bar, side) cells",
             "",
             f"{'':<12} {'':>5} {'Spearman ρ':^31} {'partial ρ':>10} {'top-10 % notional recall':^27} "
             f"{'realized':>9}",
             f"{'variant':<12} {'bars':>5} {'map':>7} {'range':>7} {'excurs.':>7} {'lev.':>7} "
             f"{'map|r,e':>10} {'map':>6} {'range':>6} {'excurs.':>7} {'×exc':>5} {'map = 0':>9}"]
    for variant, s in card.variants.items():
        lines.append(
            f"{variant:<12} {s.get('bars_scored') or 0:>5} {_f(s['spearman_map']):>7} {_f(s['spearman_bar_range']):>7} "
            f"{_f(s['spearman_side_excursion']):>7} {_f(s['spearman_leverage_only']):>7} "
            f"{_f(s['partial_spearman']):>10} {_f(s['top10_notional_recall_map'], '.3f'):>6} "
            f"{_f(s['top10_notional_recall_bar_range'], '.3f'):>6} "
            f"{_f(s['top10_notional_recall_side_excursion'], '.3f'):>7} {_f(s['top10_recall_vs_excursion'], '.2f'):>5} "
            f"{_f(s['realized_share_where_map_zero'], '.1%'):>9}")
    if card.best_variant:
        lines += ["", f"targets (best variant by partial ρ: {card.best_variant})"]
        for name, t in card.targets.items():
            verdict = "-" if t["met"] is None else ("met" if t["met"] else "NOT met")
            lines.append(f"  {name:<28} {_f(t['value'], '.3f'):>7}  target {t['target']:<7} {verdict}")
        best = card.variants[card.best_variant]
        if best.get("partial_spearman_daily_interval"):
            lo, hi = best["partial_spearman_daily_interval"]
            lines.append(f"  per-day partial ρ: mean {_f(best['partial_spearman_daily_mean'])}, "
                         f"90 % bootstrap interval {_f(lo)} … {_f(hi)}")
    lines += ["", "what the model learned:",
              "  seed variants: leverage mix " + ", ".join(f"{k} {v:.0%}" for k, v in card.learned["seed_leverage_mix"].items())
              + "; " + card.learned["seed_parameters"],
              f"  position sizes: {card.learned['position_sizes']}"]
    learned = card.learned.get("learning_variant")
    if learned:
        # Fitted parameters and the priors standing in for them; the engine's bookkeeping stays in the JSON.
        for kind in ("learned", "prior"):
            for side, values in learned["values"].items():
                shown = {k: values[k] for k in sorted(values, key=_natural)
                         if learned["sources"][side].get(k) == kind}
                if shown:
                    lines.append(f"  learning variant, {kind}, {side}, as of {learned['as_of']}: "
                                 + ", ".join(f"{k} {_f(v, '.3g')}" for k, v in shown.items()))
        lines.append("  near-liquidation share from: " + ", ".join(f"{k} on {n} days"
                                                            for k, n in learned["near_share_source_days"].items()))
    else:
        lines.append("  no variant learns parameters from this data")
    lines += [f"flag on {n} days: {kind}" for kind, n in card.flags.items()]
    lines += [f"note: {n}" for n in card.notes]
    return "\n".join(lines)


def write_scorecard(card: Scorecard, reports_dir: Path) -> tuple[Path, Path]:
    """scorecard-<symbol>-<first>-<last>.json and .txt under `reports_dir`."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = f"scorecard-{card.symbol}-{card.first_scored_day}-{card.last_day}"
    js, txt = reports_dir / f"{stem}.json", reports_dir / f"{stem}.txt"
    js.write_text(json.dumps(card.as_dict(), indent=2) + "\n")
    txt.write_text(format_scorecard(card) + "\n")
    return js, txt
