"""Dagster assets `liquidation_heatmap` and `liquidation_zones` (group "heatmap").

Per symbol-day the computation is pipeline/heatmap_day.py (inputs read once, every variant evolved from
the previous day's end state, zones); these assets call it, write the rows (warehouse/heatmap_store.py)
and attach the pictures, the HTML report and the bookkeeping as metadata. Days of a run are processed in
order, so a backfill is one continuous heatmap.

No `from __future__ import annotations` here: Dagster 1.13 checks the `context` annotation of an asset
function as an object and rejects the string form.
"""

import contextvars
import datetime as dt
import functools
import tempfile
from concurrent.futures import Future
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from liq_pipeline import config, partitions
from liq_pipeline.assets.event_order import newest_partition_last
from liq_pipeline.config import MODEL
from liq_pipeline.model import variants
from liq_pipeline.model import zones as zn
from liq_pipeline.pipeline import workers
from liq_pipeline.pipeline.heatmap_day import (
    HeatmapDay,
    compute_heatmap_day,
    end_of_day_zones,
    picture_for,
    write_heatmap_day,
    zone_daily_vol,
    zones_for_state,
    zones_frame,
)
from liq_pipeline.warehouse import answer_store, heatmap_store

GROUP = "heatmap"
PICTURE_VARIANT = variants.DEFAULT


def zones_markdown(df: pd.DataFrame, n: int = 5) -> str:
    """Top-n zones per side as a markdown table."""
    lines = ["| side | rank | centroid | range | notional (USD) | distance to mark | share of side |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for r in df[df["zone_rank"] <= n].itertuples():
        lines.append(f"| {r.side} | {r.zone_rank} | {r.centroid_price:,.2f} | {r.price_low:,.2f} – "
                     f"{r.price_high:,.2f} | {r.notional_usd:,.0f} | {r.distance_pct:+.2f} % | {r.share_of_side:.1%} |")
    return "\n".join(lines) if len(lines) > 2 else "no zones"


# ---------------------------------------------------------------------------------------------- assets
def _rows_and_files_together(asset_fn):
    """Make a run's heatmap rows and its files (pictures, HTML report) succeed or fail together.

    Before any work the reports folder must accept a file (else: fail, nothing written). Every partition's
    previous rows are kept aside (`keep_previous_rows`) before they are replaced; if anything later fails,
    e.g. the report cannot be written, they are put back, so the table still matches the last successful
    materialization.
    """
    @functools.wraps(asset_fn)
    def wrapper(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        reports = config.reports_dir()
        try:
            reports.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=reports, prefix=".write-test-"):
                pass
        except OSError as e:
            raise dg.Failure(f"{e.strerror or e}: the reports folder {reports} does not accept files; nothing "
                             "was written (the heatmap rows and the report are written together)") from e
        with tempfile.TemporaryDirectory(prefix="liq-heatmap-previous-") as tmp:
            kept: list[tuple[str, dt.date, Path]] = []
            token = _PREVIOUS_ROWS.set((Path(tmp), kept))
            try:
                return asset_fn(context, duckdb)
            except BaseException:
                with duckdb.get_connection() as con:
                    for symbol, day, path in reversed(kept):
                        heatmap_store.restore_heatmap_day(con, symbol, day, path)
                        answer_store.write_heatmap_answer(con, answer_store.folder_of(duckdb), symbol, day)
                if kept:
                    context.log.error(f"run failed after writing rows: the previous rows of {len(kept)} partitions "
                                      "were put back")
                raise
            finally:
                _PREVIOUS_ROWS.reset(token)
    return wrapper


_PREVIOUS_ROWS: contextvars.ContextVar = contextvars.ContextVar("heatmap_previous_rows")


def keep_previous_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> None:
    """Save the partition's current rows so `_rows_and_files_together` can put them back on failure."""
    folder, kept = _PREVIOUS_ROWS.get()
    if any(s == symbol and d == day for s, d, _ in kept):
        return
    path = folder / f"{symbol}-{day}.parquet"
    heatmap_store.copy_heatmap_partition(con, symbol, day, path)
    kept.append((symbol, day, path))


@dg.asset(
    partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[*(dg.AssetKey(k) for k in ("position_distribution", "liquidation_levels", "open_interest",
                                     "mark_price_klines", "klines", "agg_trades", "flow_book")),
          dg.AssetDep("liquidation_heatmap", partition_mapping=partitions.previous_day)],  # starts from D−1's end
)
@newest_partition_last
@_rows_and_files_together
def liquidation_heatmap(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Liquidation levels over time: every variant's book (flow_book, the one engine) as snapshots every
    `heatmap_step_minutes` (15 by default) by liquidation price, with the day's mark path; the pictures, the
    HTML report and the zones of the default variant in the metadata."""
    total_rows = 0
    per_day: dict[tuple[str, dt.date], dict] = {}
    previous: dict[str, HeatmapDay] = {}  # the day before, per symbol: its end state starts the next day
    if workers.workers() > 1:  # the drawing processes find plotly.min.js there and do not race to write it
        from liq_pipeline.plots.report import write_plotly_js

        write_plotly_js(config.reports_dir())
    for symbol, day in partitions.symbol_days(context):
        with duckdb.get_connection() as con:
            result = previous[symbol] = compute_heatmap_day(con, symbol, day, previous=previous.get(symbol))
            keep_previous_rows(con, symbol, day)
            n = write_heatmap_day(con, result)
            vol = zone_daily_vol(con, symbol, day)
            answer_store.write_heatmap_answer(con, answer_store.folder_of(duckdb), symbol, day)  # for `liq heatmap`
        total_rows += n
        per_day[(symbol, day)] = day_metadata(result, n, vol)
        context.log.info(f"{symbol} {day}: {n} heatmap rows; " + "; ".join(per_day[(symbol, day)]["flags"].data))
    for day_md in per_day.values():
        collect_drawn(day_md)
    # Each partition of a range run shows its own day's pictures, zones and report (partitions.py).
    metadata = partitions.attach_per_partition(context, per_day)
    days = sorted({d for _, d in per_day})
    metadata.update({
        "run_range": f"{days[0]}…{days[-1]}, {len(per_day)} symbol-days, {total_rows:,} rows in this run",
        "symbol_days": len(per_day),
        "step_minutes": MODEL.heatmap_step_minutes,
        "half_life_hours": str(MODEL.heatmap_half_life_hours),
        "grid": result.grid.describe(),
    })
    return dg.MaterializeResult(metadata=metadata)


def collect_drawn(metadata: dict) -> dict:
    """Put the drawn pictures and report path in place of the pending drawing (day_metadata), in place."""
    for key, value in metadata.items():
        if isinstance(value, Future):
            drawn = value.result()[key]
            metadata[key] = dg.MetadataValue.path(drawn) if key == "report" else dg.MetadataValue.md(drawn)
    return metadata


def day_metadata(result: HeatmapDay, rows: int, vol: float | None = None) -> dict:
    """One partition's metadata: its heatmap and liquidation-map pictures, its HTML report (every variant),
    its zones, the bookkeeping of every variant and the data flags. The pictures and the report are drawn
    by pipeline/workers.py (at once, or in a drawing process): pending until `collect_drawn`."""
    inp = result.inputs
    mark = inp.end_mark
    pictures = {}
    zones_df = None
    for v, r in result.variants.items():
        z = zones_frame(zones_for_state(r.evolution.end_state, result.grid, mark, vol)) if np.isfinite(mark) else None
        pictures[v] = picture_for(result, v, z)
        if v == PICTURE_VARIANT:
            zones_df = z
    pic_variant = PICTURE_VARIANT if PICTURE_VARIANT in pictures else next(iter(pictures))
    pic = pictures[pic_variant]
    metadata: dict = {"partition": f"{inp.symbol} {inp.day}", "rows": rows}
    if result.variants[pic_variant].evolution.notional_usd.size or pic.mark_price.size:
        from liq_pipeline.plots.report import draw_heatmap_day

        drawn = workers.submit(draw_heatmap_day, pic, list(pictures.values()), pic_variant, config.reports_dir())
        metadata.update({"heatmap": drawn, "liquidation_map": drawn, "report": drawn})
    if zones_df is not None:
        metadata["top_zones"] = dg.MetadataValue.md(f"{inp.symbol} {inp.day}, end of day ({pic_variant})\n\n"
                                                    + zones_markdown(zones_df))
    summaries = [{"variant": v, "start_state": r.start_state,
                  "end_notional_usd": round(r.evolution.end_state.total_usd),
                  "added_usd": round(float(r.evolution.added_usd.sum())),
                  "shrunk_usd": round(float(r.evolution.shrunk_usd.sum())),
                  "consumed_long_usd": round(float(r.evolution.consumed_long_usd.sum())),
                  "consumed_short_usd": round(float(r.evolution.consumed_short_usd.sum()))}
                 for v, r in result.variants.items()]
    metadata.update({
        "mark_source": inp.mark_source,
        "start_state": dg.MetadataValue.json({s["variant"]: s["start_state"] for s in summaries}),
        "summary": dg.MetadataValue.md(_markdown_table(summaries)),
        "flags": dg.MetadataValue.json([f"consumption on {inp.mark_source}"] + result.flags),
    })
    return metadata


def _markdown_table(records: list[dict]) -> str:
    """Records as a markdown table (pandas.to_markdown would need the optional tabulate package)."""
    if not records:
        return "nothing materialized"
    cols = list(records[0])
    fmt = lambda v: f"{v:,}" if isinstance(v, int | float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in records])


@dg.asset(
    partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
    backfill_policy=dg.BackfillPolicy.single_run(), deps=[liquidation_heatmap],
    # A heatmap backfilled from its asset page alone left its zones stale: the automation sensor re-derives
    # them for every heatmap partition updated (eager() would look at the latest day only, not a backfill).
    automation_condition=(dg.AutomationCondition.any_deps_updated().since_last_handled()
                          & ~dg.AutomationCondition.any_deps_missing() & ~dg.AutomationCondition.any_deps_in_progress()
                          & ~dg.AutomationCondition.in_progress()).with_label("after its heatmap"),
)
@newest_partition_last
def liquidation_zones(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Liquidation zones at the end of each day: weighted DBSCAN per side and variant on the last heatmap
    snapshot (model/zones.py: eps 0.25 % of price, a zone seeds where the notional within eps is 1.5× the
    side's average); ranked by notional."""
    total = 0
    per_day: dict[tuple[str, dt.date], dict] = {}
    for symbol, day in partitions.symbol_days(context):
        with duckdb.get_connection() as con:
            rows, mark_table = end_of_day_zones(con, symbol, day)
            n = heatmap_store.write_zones(con, symbol, day, rows)
            answer_store.write_zones_answer(con, answer_store.folder_of(duckdb), symbol, day)  # for `liq zones`
        total += n
        per_day[(symbol, day)] = {
            "partition": f"{symbol} {day}", "rows": n, "mark_source": mark_table,
            f"top_zones_{PICTURE_VARIANT}": dg.MetadataValue.md(
                f"{symbol} {day}, end of day\n\n" + zones_markdown(rows[rows["variant"] == PICTURE_VARIANT])),
        }
    metadata = partitions.attach_per_partition(context, per_day)
    metadata.update({"run_rows": total, "eps_rel": zn.DEFAULT_EPS_REL, "density_ratio": zn.DEFAULT_DENSITY_RATIO})
    return dg.MaterializeResult(metadata=metadata)
