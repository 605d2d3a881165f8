"""The demo's warm-up days in the Dagster UI: recorded as such, not shown as "Missing".

`make demo` models all but the first week of its simulated range (apps/demo.py, WARM_UP_DAYS): those days
only give the volume profile its history, and the heatmap starts one day later still (it starts from the
model's previous day). Without a record, the UI showed them as "Missing", like a real gap. Before the
model stage runs, each warm-up symbol-day of the model and heatmap assets gets one materialization
reported to the instance with no rows behind it and metadata that says so (`warm_up`, `rows` = 0); it is
reported before the real runs, so it never becomes an asset's latest materialization. Materializing such a
day later (from the UI) computes it and replaces the record.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

#: The jobs whose assets the demo starts after the warm-up, and how many days after the model's first
#: day each starts (the heatmap needs the model's previous day).
WARM_UP_JOBS = {"model_job": 0, "heatmap_job": 1}


def warm_up_days(first_day: dt.date, first_modelled: dt.date) -> list[dt.date]:
    return [first_day + dt.timedelta(days=i) for i in range((first_modelled - first_day).days)]


def record_warm_up(defs: dg.Definitions, instance: dg.DagsterInstance, symbols: tuple[str, ...],
                   first_day: dt.date, first_model: dt.date) -> int:
    """Report the warm-up symbol-days of every model_job and heatmap_job asset; returns how many."""
    from liq_pipeline import partitions

    n = 0
    for job_name, offset in WARM_UP_JOBS.items():
        starts = first_model + dt.timedelta(days=offset)
        days = warm_up_days(first_day, starts)
        keys = sorted(defs.resolve_job_def(job_name).asset_layer.executable_asset_keys, key=lambda k: k.to_user_string())
        for key in keys:
            for day in days:
                for symbol in symbols:
                    instance.report_runless_asset_event(dg.AssetMaterialization(
                        key, partition=partitions.key_for(symbol, day), metadata={
                            "warm_up": f"warm-up: no map yet ({symbol} {day}); the demo models from {starts}, "
                                       f"after {len(days)} days of history for the volume profile",
                            "rows": 0, "partition": f"{symbol} {day}"}))
                    n += 1
    return n
