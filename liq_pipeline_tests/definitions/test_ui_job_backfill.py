"""A backfill launched from a job page runs as that job; one launched from an asset page runs as Dagster's
`__ASSET_JOB` (issue 27, 4c).

Both go through the webserver's GraphQL mutation with the parameters the UI's launch dialog of Dagster 1.13
sends (read from its bundle): from a named job's page it adds `selector: {partitionSetName:
"<job>_partition_set"}`, from an asset page it sends the asset selection alone. The backfill daemon's
iteration then creates the runs, as under `make ui` (runs stay queued: nothing executes here).
"""

from __future__ import annotations

import logging

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, instance_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import execute_dagster_graphql

from liq_pipeline import partitions, schedules
from liq_pipeline.definitions import defs

LAUNCH = """mutation Launch($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
QUEUED = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
HEATMAP_GROUP = [{"path": ["liquidation_heatmap"]}, {"path": ["liquidation_zones"]}]


@pytest.fixture(scope="module")
def workspace():
    with instance_for_test(overrides=QUEUED) as instance:
        origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="liq_pipeline.definitions"),
                                             location_name=schedules.CODE_LOCATION)
        with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as process_context:
            yield instance, process_context


def _backfill_runs(instance, process_context, params: dict) -> list[dg.DagsterRun]:
    answer = execute_dagster_graphql(process_context.create_request_context(), LAUNCH, {"p": params}).data
    assert answer["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", answer
    backfill_id = answer["launchPartitionBackfill"]["backfillId"]
    list(execute_backfill_iteration(process_context, logging.getLogger("backfill-test")))
    return list(instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


def _days(n: int) -> list[str]:
    return [f"{day}|BTCUSDT" for day in partitions.daily.get_partition_keys()[3:3 + n]]


def test_a_backfill_from_the_job_page_runs_as_the_job_in_one_range_run(workspace):
    instance, process_context = workspace
    keys = _days(3)
    runs = _backfill_runs(instance, process_context, {
        "assetSelection": HEATMAP_GROUP, "partitionNames": keys, "fromFailure": False,
        "selector": {"partitionSetName": "heatmap_job_partition_set",
                     "repositorySelector": {"repositoryLocationName": schedules.CODE_LOCATION,
                                            "repositoryName": "__repository__"}}})
    assert [r.job_name for r in runs] == ["heatmap_job"]  # filed under the job: its Runs tab lists it
    run = runs[0]
    assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (keys[0], keys[-1])
    assert run.remote_job_origin.repository_origin.get_label() == schedules.REPOSITORY_LABEL
    assert run.asset_selection == {dg.AssetKey("liquidation_heatmap"), dg.AssetKey("liquidation_zones")}


def test_a_backfill_from_an_asset_page_runs_as_the_hidden_asset_job(workspace):
    """What docs/operations.md says: Dagster 1.13 files an asset-page backfill under __ASSET_JOB."""
    instance, process_context = workspace
    runs = _backfill_runs(instance, process_context,
                          {"assetSelection": HEATMAP_GROUP, "partitionNames": _days(2), "fromFailure": False})
    assert [r.job_name for r in runs] == ["__ASSET_JOB"]


def test_every_partitioned_asset_of_a_pipeline_group_has_a_named_job():
    """So each group can be backfilled from a job page (raw + truth: ingest_job; model: volume_profile_job and
    model_job; heatmap: heatmap_job)."""
    graph = defs.resolve_asset_graph()
    in_jobs = {key for job in schedules.JOBS for key in defs.resolve_job_def(job.name).asset_layer.selected_asset_keys}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.group_name in ("raw", "truth", "model", "heatmap") and node.partitions_def is not None:
            assert key in in_jobs, key
