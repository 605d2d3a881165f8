"""Dagster asset `flow_book` (group model): the book engine's day (pipeline/flow_day.py) for each partition.

Per symbol-day and variant: the book of D−1 (model.flow_book) and, for the learned variant, the parameters
learned at the end of D−1 (model.flow_parameters) → run the day → store the end books, the snapshots
(model.flow_snapshots, which liquidation_heatmap shows), the per-step consumption and the parameters learned
from public liquidations up to the end of D (used by D+1). Reads only public tables, never truth.*.
"""

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.assets.event_order import newest_partition_last
from liq_pipeline.assets.window_guard import earlier_days, require_earlier_days
from liq_pipeline.config import FLOW
from liq_pipeline.pipeline.flow_day import materialize_flow_day
from liq_pipeline.warehouse.readers.flow import SIDES

GROUP = "model"


# ---------------------------------------------------------------------------------------------- asset
@dg.asset(partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
          backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[*(dg.AssetKey(k) for k in ("agg_trades", "klines", "mark_price_klines", "open_interest",
                                           "funding_rates", "premium_index_klines")),
                # The ofi/hybrid split rules read ofi_bins of D−1. Declared on the same day: a previous-day mapping
                # across assets makes Dagster split a backfill into more runs, and the same-day edge already orders
                # ofi_bins before flow_book in a range run (D−1 is written before D is read).
                dg.AssetKey("ofi_bins"),
                dg.AssetDep("flow_book", partition_mapping=partitions.previous_day)])  # evolves D−1's book
@newest_partition_last
def flow_book(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """The book of position cohorts of every variant (model/flow.py, one engine; a variant is a set of rules,
    model/variants.py), evolved through the day from D−1's book: opens at traded prices split by the
    variant's rule (the seed's 50/50, OFI, funding, hybrid; flow's crowding signals), closes by a survival
    model (flow) or only where OI falls (the seed's rules), consumption at each cell's own liquidation price,
    funding paid out of isolated margin. Learns the flow variant's leverage mix and leveraged share per side
    from the public liquidations of the trailing window (model.flow_parameters); days of a run are processed
    in order. Fails, writing nothing, while another run writes D−1's book (assets/window_guard.py)."""
    summary, learned, flags, books = [], [], {}, []
    for symbol, day in partitions.symbol_days(context):
        with duckdb.get_connection() as con:
            # Never from a cold start while another run writes D−1's book (model.flow_parameters: a row every
            # day, where an emptied book has none). A D−1 nobody computes is a cold start, flagged: that is how
            # the model's history begins, also after warm-up days whose raw data is there (demo, scorecard).
            require_earlier_days(context, con, asset="flow_book", table="model.flow_parameters", symbol=symbol,
                                 day=day, days=earlier_days(day - dt.timedelta(days=1), day), raw_days=False)
            out = materialize_flow_day(con, symbol, day)
        res, p = out["result"], out["parameters"]
        summary.append({"symbol": symbol, "day": str(day), "mix_used": out["mix_used"].source,
                        "book_usd": round(res.end_book.total_usd), "opened_usd": round(float(res.opened_usd.sum())),
                        "closed_usd": round(float(res.closed_usd.sum())),
                        "consumed_usd": round(float(res.consumed_usd.sum())),
                        "book_long_share": round(res.end_book.long_share(), 4),
                        "half_life_h_used": round(out["survival_used"][0], 1),
                        "half_life_h_learned": round(float(p.loc[p["parameter"] == "half_life_hours", "value"].iloc[0]), 1),
                        "half_life_source": p.loc[p["parameter"] == "half_life_hours", "source"].iloc[0],
                        "realized_source": out["realized_source"]})
        w = p[p["parameter"].str.startswith("weight_") | (p["parameter"] == "near_liquidation_share")]
        near = w.loc[w["parameter"] == "near_liquidation_share", "source"]
        learned.append(f"**{symbol} {day}** ({near.iloc[0] if len(near) else 'prior'}): " + "; ".join(
            f"{side}: " + ", ".join(f"{r.parameter.removeprefix('weight_')} {r.value:.3f}"
                                    for r in w[w["side"] == side].itertuples()) for side in SIDES))
        flags[f"{symbol} {day}"] = out["flags"]
        books += [f"| {symbol} | {day} | {v} | {r.end_book.total_usd:,.0f} | {r.end_book.long_share():.3f} | "
                  f"{r.opened_usd.sum():,.0f} | {r.closed_usd.sum():,.0f} | {r.consumed_usd.sum():,.0f} |"
                  for v, r in out["books"].items()]
        # Drop the day's books and frames before the next day is computed: held across the loop they doubled
        # the step's peak memory (issue 29, docs/benchmarks.md#what-held-the-memory-of-the-30-day-backfill).
        del out, res, p, w
    cols = list(summary[0]) if summary else []
    table = "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                       + ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in summary])
    return dg.MaterializeResult(metadata={
        "summary": dg.MetadataValue.md(table),
        "books": dg.MetadataValue.md("| symbol | day | variant | book USD | long share | opened USD | closed USD | "
                                     "consumed USD |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(books)),
        "learned": dg.MetadataValue.md("\n\n".join(learned)),
        "flags": dg.MetadataValue.json(flags),
        "priors": dg.MetadataValue.json({k: v for k, v in FLOW.__dict__.items()}),
    })
