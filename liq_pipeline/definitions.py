"""The one Definitions object of liq_pipeline: assets, checks, jobs, schedules, sensors and resources."""

import importlib

import dagster as dg

from liq_pipeline.resources import default_resources

#: Every module of the thin Dagster layer; each contributes its assets and asset checks.
ASSET_MODULES = (
    "liq_pipeline.assets.raw",
    "liq_pipeline.assets.truth",
    "liq_pipeline.assets.flow",
    "liq_pipeline.assets.model",
    "liq_pipeline.assets.heatmap",
    "liq_pipeline.assets.validation",
    "liq_pipeline.assets.live",
)


def _modules():
    return [importlib.import_module(name) for name in ASSET_MODULES]


def _collect(kind: type, modules) -> list:
    found = []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, kind) and value not in found:
                found.append(value)
    return found


def build_definitions() -> dg.Definitions:
    modules = _modules()
    schedule_module = importlib.import_module("liq_pipeline.schedules")
    return dg.Definitions(
        assets=dg.load_assets_from_modules(modules),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        jobs=list(schedule_module.JOBS),
        schedules=_collect(dg.ScheduleDefinition, [schedule_module]),
        sensors=_collect(dg.SensorDefinition, modules + [schedule_module]),
        resources=default_resources(),
        executor=_executor(),
    )


def _executor():
    """One DuckDB file has one writer: steps of a run execute one after another, in process. With Parquet
    partitions there is no lock, so the steps of a run go to parallel processes."""
    from liq_pipeline import config

    if config.storage() == "parquet":
        return dg.multiprocess_executor.configured({"max_concurrent": config.max_concurrent_partitions(),
                                                    "start_method": {"forkserver": {}}})
    return dg.in_process_executor


defs = build_definitions()
