"""The Kubernetes deployment files parse, name classes that exist in the pinned dagster-k8s and
dagster-postgres, and their configs validate against those classes' schemas. No cluster is needed."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


@pytest.fixture
def instance_config(tmp_path, monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(name, "x")
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    return config


def _configurable(entry: dict):
    cls = getattr(importlib.import_module(entry["module"]), entry["class"])
    result = validate_config(cls.config_type(), entry.get("config", {}))
    assert result.success, [e.message for e in result.errors]
    return cls


def test_production_instance_uses_k8s_runs_and_postgres_storage(instance_config):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    assert _configurable(instance_config["run_launcher"]) is K8sRunLauncher
    assert _configurable(instance_config["run_coordinator"]) is QueuedRunCoordinator
    assert set(instance_config["storage"]) == {"postgres"}
    importlib.import_module("dagster_postgres")  # the storage classes' package is installed
    assert instance_config["run_launcher"]["config"]["env_config_maps"] == ["liq-pipeline-env"]


def test_helm_values_run_the_definitions_with_parquet_storage():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "liq_pipeline.definitions"]
    importlib.import_module(deployment["dagsterApiGrpcArgs"][1])
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["LIQ_STORAGE"] == "parquet" and env["LIQ_PARQUET_ROOT"].startswith("s3://")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["postgresql"]["enabled"] is True


def test_production_instance_monitors_runs_and_names_the_installed_postgres_driver(instance_config):
    assert instance_config["run_monitoring"]["enabled"] is True
    # dagster-postgres depends on psycopg2; SQLAlchemy >= 2.1 maps a bare "postgresql" URL to psycopg 3.
    assert instance_config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    importlib.import_module("psycopg2")
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"


def test_the_local_instance_is_the_production_one_with_the_default_launcher(tmp_path):
    from liq_pipeline.deploy.prod_local import PRODUCTION_INSTANCE, local_instance_config
    from liq_pipeline.deploy.run_launcher import LocalRunLauncher

    production = yaml.safe_load(PRODUCTION_INSTANCE.read_text())
    local = local_instance_config(production, pg_port=54321, max_concurrent_runs=3)
    assert _configurable(local["run_launcher"]) is LocalRunLauncher
    assert local["run_coordinator"]["config"]["max_concurrent_runs"] == 3
    assert local["storage"]["postgres"]["postgres_db"]["port"] == 54321
    assert local["run_monitoring"]["enabled"] is True and local["run_monitoring"]["max_resume_run_attempts"] == 0
    same = {k for k in production if k not in ("run_launcher", "run_coordinator", "run_monitoring", "storage")}
    assert {k: local[k] for k in same} == {k: production[k] for k in same}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(local))
    dagster_instance_config(str(tmp_path))  # the whole file validates against Dagster's instance schema
    with pytest.raises(ValueError, match="max_concurrent_runs"):
        local_instance_config(production, pg_port=54321, max_concurrent_runs=1)


def test_production_queue_runs_one_run_per_symbol_at_a_time(instance_config):
    """Two days of one symbol side by side would start D from an unwritten D−1: the queue limits runs per
    `dagster/partition/symbol` value to one, in submission order."""
    limits = instance_config["run_coordinator"]["config"]["tag_concurrency_limits"]
    per_symbol = [x for x in limits if x["key"] == "dagster/partition/symbol"]
    assert per_symbol == [{"key": "dagster/partition/symbol", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
