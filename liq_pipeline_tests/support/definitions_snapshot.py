"""The Dagster definitions as sorted text, one line per fact: every partitions definition, asset (group, kinds,
partitions, automation, backfill policy), dependency (with its partition mapping), asset check, job,
schedule and sensor. Run as `python -m liq_pipeline_tests.support.definitions_snapshot` it prints the text for
the environment it runs in; the snapshot test runs it in a clean one (no LIQ_* settings of the caller)."""

from __future__ import annotations

import dagster as dg


def _partitions_names() -> dict[int, str]:
    from liq_pipeline import partitions

    return {id(getattr(partitions, n)): n for n in ("symbol_day", "daily", "symbols", "monthly")}


def _partitions(pdef, names: dict[int, str]) -> str:
    if pdef is None:
        return "-"
    return names.get(id(pdef), " ".join(str(pdef).split()))


def _mapping(mapping) -> str:
    if mapping is None:
        return "default"
    if isinstance(mapping, dg.MultiPartitionMapping):
        dims = ", ".join(f"{dim}<-{m.dimension_name}:{_mapping(m.partition_mapping)}"
                         for dim, m in sorted(mapping.downstream_mappings_by_upstream_dimension.items()))
        return f"Multi({dims})"
    if isinstance(mapping, dg.TimeWindowPartitionMapping):
        return f"TimeWindow({mapping.start_offset},{mapping.end_offset})"
    return type(mapping).__name__


def snapshot_lines(defs: dg.Definitions) -> list[str]:
    names = _partitions_names()
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    lines = []
    for pdef in graph.all_partitions_defs:
        lines.append(f"partitions {_partitions(pdef, names)}: {' '.join(str(pdef).split())}")
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        lines.append(f"asset {name} group={node.group_name} kinds={','.join(sorted(node.kinds)) or '-'} "
                     f"partitions={_partitions(node.partitions_def, names)} "
                     f"automation={node.automation_condition.get_label() if node.automation_condition else '-'} "
                     f"backfill={node.backfill_policy or '-'} materializable={node.is_materializable}")
        for parent in node.parent_keys:
            mapping = node.partition_mappings.get(parent)
            lines.append(f"dep {parent.to_user_string()} -> {name} mapping={_mapping(mapping)}")
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        deps = ",".join(sorted(d.asset_key.to_user_string() for d in spec.additional_deps)) or "-"
        lines.append(f"check {check_key.asset_key.to_user_string()}:{check_key.name} blocking={spec.blocking} "
                     f"additional_deps={deps}")
    for job in repo.get_all_jobs():
        if job.name.startswith("__ASSET_JOB"):
            continue  # Dagster's implicit job of every asset
        layer = job.asset_layer
        lines.append(f"job {job.name} partitions={_partitions(job.partitions_def, names)}")
        lines += [f"job {job.name} asset {k.to_user_string()}" for k in layer.selected_asset_keys]
        lines += [f"job {job.name} check {k.asset_key.to_user_string()}:{k.name}"
                  for k in layer.asset_graph.asset_check_keys if k.asset_key in layer.selected_asset_keys]
    for schedule in repo.schedule_defs:
        lines.append(f"schedule {schedule.name} cron={schedule.cron_schedule!r} tz={schedule.execution_timezone} "
                     f"job={schedule.job_name} default={schedule.default_status.value}")
    for sensor in repo.sensor_defs:
        jobs = ",".join(sorted(t.job_name for t in sensor.targets)) or "-"
        lines.append(f"sensor {sensor.name} type={type(sensor).__name__} every={sensor.minimum_interval_seconds}s "
                     f"jobs={jobs} default={sensor.default_status.value}")
    return sorted(lines)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    from liq_pipeline.definitions import defs

    print("\n".join(snapshot_lines(defs)))
