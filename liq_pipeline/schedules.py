"""Jobs and schedules: the daily refresh of yesterday's partitions (raw → model → heatmap, every symbol) and the
monthly validation report.

The daily tick targets the newest day the source can serve: the simulated mirror and a local mirror have
yesterday; data.binance.vision publishes a day about 1.5–2 days late (binance-data.md §1.3), so for the
`binance` source the tick requests today−2 and never a later day. A day that is still missing when the run
starts fails the raw assets with "not yet published" and is picked up by a later tick or by the live
layer's archive_day_published_sensor.
"""

# No `from __future__ import annotations`: Dagster inspects the resource annotations at definition time.
import datetime as dt

import dagster as dg

from liq_pipeline import config, partitions
from liq_pipeline.assets.symbol_checks import checks_for_symbol
from liq_pipeline.resources import MarketSource

#: Days between a day and the first daily tick that may request it from data.binance.vision.
BINANCE_PUBLICATION_LAG_DAYS = 2

#: The stages of a backfill, as `make demo` runs them: each run carries its stage's name in the run list.
ingest_job = dg.define_asset_job(
    "ingest_job", selection=dg.AssetSelection.groups("raw", "truth"),
    description="Raw archive files (and, for the simulated source, its ground truth) for a symbol × day range.",
)
volume_profile_job = dg.define_asset_job(
    "volume_profile_job", selection=dg.AssetSelection.assets("volume_profile_daily"),
    description="Daily volume profiles from the raw trades.",
)
model_job = dg.define_asset_job(
    "model_job", selection=dg.AssetSelection.groups("model") - dg.AssetSelection.assets("volume_profile_daily"),
    description="Baseline, OFI, position distributions and liquidation levels (the daily profiles must exist).",
)
heatmap_job = dg.define_asset_job(
    "heatmap_job", selection=dg.AssetSelection.groups("heatmap"),
    description="The liquidation heatmap evolved through the range, and the end-of-day zones.",
)

daily_refresh_job = dg.define_asset_job(
    "daily_refresh_job",
    selection=dg.AssetSelection.groups("raw", "model", "heatmap"),
    description="Raw archive files → volume profiles → positions → levels → heatmap for one symbol-day.",
)

monthly_validation_job = dg.define_asset_job(
    "monthly_validation_job",
    selection=dg.AssetSelection.assets("validation_report"),
    description="The monthly validation report (grade, ground truth, backtest) and its checks.",
)

#: `liquidation_zones` is re-derived after its heatmap partitions are updated (its automation condition), e.g.
#: after a heatmap backfilled alone from its asset page. Dagster's implicit default_automation_condition_sensor
#: starts STOPPED, so the zones stayed stale until someone switched it on; this one runs by default under the
#: daemon of `make ui` and the production instance.
zones_after_heatmap_sensor = dg.AutomationConditionSensorDefinition(
    "zones_after_heatmap_sensor", target=dg.AssetSelection.assets("liquidation_zones"),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="Requests liquidation_zones for every heatmap partition updated without its zones.",
)

JOBS = (ingest_job, volume_profile_job, model_job, heatmap_job, daily_refresh_job, monthly_validation_job)

#: The code location `make ui` loads (workspace.yaml), and the name Dagster gives the repository of a
#: Definitions object.
CODE_LOCATION = "liq_pipeline"
REPOSITORY_LABEL = f"__repository__@{CODE_LOCATION}"


def code_location_tags() -> dict[str, str]:
    """Tags that file a run executed in process (the demo's stages) under its job in the code location, as a
    run launched from the UI or a schedule is: the job's Runs tab selects runs by this repository label, so
    untagged in-process runs showed only in the global Runs list. Overview's timeline needs the run's
    code-location origin too, which execute_in_process does not record: `file_under_code_location`."""
    return {".dagster/repository": REPOSITORY_LABEL}


def file_under_code_location(instance: dg.DagsterInstance, run_id: str, job_name: str) -> None:
    """Give a finished in-process run the code-location origin a run launched from the UI has: Overview's
    timeline draws only runs with one (the repository label tag alone fills the job's Runs tab). Uses
    Dagster's run-history migration call, which rewrites the stored origin and the label tag together."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin

    run = instance.get_run_by_id(run_id)
    if run is None:
        return
    origin = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(CODE_LOCATION), "__repository__")
    instance.run_storage.replace_job_origin(run, origin.get_job_origin(job_name))


def target_day(scheduled: dt.datetime, source_kind: str) -> dt.date:
    """The day a daily tick at `scheduled` (UTC) refreshes: yesterday, or today−2 for the Binance archive."""
    lag = BINANCE_PUBLICATION_LAG_DAYS if source_kind == "binance" else 1
    return scheduled.date() - dt.timedelta(days=lag)


def daily_run_requests(scheduled: dt.datetime, source_kind: str, today: dt.date,
                       job: dg.JobDefinition | None = None) -> list[dg.RunRequest] | dg.SkipReason:
    """One RunRequest per configured symbol for the tick's target day, or the reason to skip.

    `today` is the real UTC date (the scheduled time of a late-evaluated tick can lie in the past): the
    Binance source only ever asks for days ≤ today−2, so a tick evaluated ahead of time skips instead of
    hammering the archive with 404s. With the resolved `job`, each symbol's run selects its own checks only
    (symbol_checks.checks_for_symbol).
    """
    day = target_day(scheduled, source_kind)
    first = config.configured_start_date()
    if day < first:
        return dg.SkipReason(f"{day} is before the first partition day {first}")
    if partitions.LAST_DAY is not None and day > partitions.LAST_DAY:
        return dg.SkipReason(f"{day} is after the last partition day {partitions.LAST_DAY} (the end of the "
                             "simulated range, or LIQ_END_DATE)")
    if source_kind == "binance" and day > today - dt.timedelta(days=BINANCE_PUBLICATION_LAG_DAYS):
        return dg.SkipReason(f"{day} is not published on data.binance.vision yet (only days up to "
                             f"{today - dt.timedelta(days=BINANCE_PUBLICATION_LAG_DAYS)} are requested); a later tick takes it")
    def selection(symbol: str) -> dict:
        if job is None:
            return {}
        layer = job.asset_layer
        return {"asset_selection": sorted(layer.selected_asset_keys, key=lambda k: k.to_user_string()),
                "asset_check_keys": sorted(checks_for_symbol(layer.asset_graph.asset_check_keys, symbol),
                                           key=lambda k: k.name)}

    return [
        dg.RunRequest(
            run_key=f"daily:{day.isoformat()}:{symbol}",
            partition_key=partitions.key_for(symbol, day),
            tags={"liq/source": source_kind},
            **selection(symbol),
        )
        for symbol in partitions.symbols.get_partition_keys()
    ]


@dg.schedule(job=daily_refresh_job, cron_schedule="30 0 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext, market: MarketSource):
    """00:30 UTC: refresh the previous day (today−2 for the Binance archive) for every symbol."""
    scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    try:
        job = context.repository_def.get_job(daily_refresh_job.name)
    except dg.DagsterInvariantViolationError:  # evaluated without its repository (a bare test context)
        job = None
    return daily_run_requests(scheduled.astimezone(dt.UTC), market.kind, dt.datetime.now(dt.UTC).date(), job)


def previous_month(scheduled: dt.datetime) -> dt.date:
    """First day of the month before the one `scheduled` falls in."""
    return (scheduled.date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)


@dg.schedule(job=monthly_validation_job, cron_schedule="0 2 1 * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def monthly_validation_schedule(context: dg.ScheduleEvaluationContext):
    """02:00 UTC on the 1st: the validation report of the month that just ended."""
    scheduled = (context.scheduled_execution_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    month = previous_month(scheduled)
    key = month.isoformat()
    if key not in partitions.monthly.get_partition_keys(current_time=scheduled):
        return dg.SkipReason(f"{month:%Y-%m} is not a validation month (partitions start "
                             f"{config.configured_start_date():%Y-%m})")
    return dg.RunRequest(run_key=f"validation:{month:%Y-%m}", partition_key=key)
