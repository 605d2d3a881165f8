"""The one Definitions object of liq_pipeline: assets, checks, jobs, schedules, sensors and resources.

Every module is imported by name here, so the arrows are visible to a reader and to the import-graph test.
"""

import dagster as dg

from liq_pipeline import schedules
from liq_pipeline.assets import flow, heatmap, live, model, raw, truth, validation
from liq_pipeline.resources import default_resources

#: Every module of the thin Dagster layer, in pipeline order; each contributes its assets and asset checks.
ASSET_MODULES = (raw, truth, flow, model, heatmap, validation, live)


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
        jobs=list(schedules.JOBS),
        schedules=[schedules.daily_refresh_schedule, schedules.monthly_validation_schedule],
        sensors=[live.archive_day_published_sensor, schedules.zones_after_heatmap_sensor],
        resources=default_resources(),
        executor=_executor(),
    )


#: What a step process imports besides these definitions before its step starts: the instance's storage classes
#: (SQLite, and Postgres for the production instance), the file-system layer of its state storage, and the
#: libraries the steps' code imports where it uses them (pictures, the flow fit, scoring). Preloaded
#: once in the fork server, they cost each step process nothing (measured: 0.5 s of CPU less per step). A module
#: that is not installed (dagster_postgres without the dev extras) is skipped by the fork server.
STEP_PRELOAD = ("dagster._core.storage.runs.sqlite", "dagster._core.storage.event_log.sqlite",
                "dagster._core.storage.schedules.sqlite", "dagster._core.instance.factory", "dagster_postgres",
                "upath", "fsspec", "matplotlib.pyplot", "scipy.optimize", "scipy.stats")


def _executor():
    """One DuckDB file has one writer: steps of a run execute one after another, in process. With Parquet
    partitions there is no lock, so the steps of a run go to parallel processes, forked from a server that has
    imported these definitions once (without the preload, a run launched by a code server preloads only
    Dagster's executor and every step process imported liq_pipeline anew: about 4 s of CPU per step)."""
    from liq_pipeline import config

    if config.storage() == "parquet":
        preload = [__name__, *STEP_PRELOAD]
        return dg.multiprocess_executor.configured({"max_concurrent": config.max_concurrent_partitions(),
                                                    "start_method": {"forkserver": {"preload_modules": preload}}})
    return dg.in_process_executor


defs = build_definitions()
