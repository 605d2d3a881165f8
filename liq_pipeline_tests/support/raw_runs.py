"""Raw ingestion through Dagster on a temporary warehouse: the resources over a mirror or an archive server,
one materialization on an ephemeral instance, and what a failed run said (its step error and causes)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from liq_pipeline.resources import MarketSource

DAY = dt.date(2026, 1, 5)


def key(day: dt.date = DAY, symbol: str = "BTCUSDT") -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day.isoformat(), "symbol": symbol})


def mirror_resources(tmp_path, mirror) -> dict:
    return {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
            "market": MarketSource(kind="mirror", mirror_dir=str(mirror), cache_dir=str(tmp_path / "cache"))}


def http_resources(tmp_path, url: str, cache: str = "cache") -> dict:
    return {"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")),
            "market": MarketSource(kind="binance", base_url=url, cache_dir=str(tmp_path / cache),
                                   state_dir=str(tmp_path / "state"))}


def materialize(res, assets, partition=None):
    return dg.materialize(assets, resources=res, partition_key=partition or key(),
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def failure_message(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE")]
    assert failures, "expected a failed step"
    error, parts = failures[0].event_specific_data.error, []
    while error is not None:  # the step's error, then what caused it
        parts.append(str(error.message))
        error = error.cause
    return "\n".join(parts)


def rows(res, table: str, day: dt.date = DAY) -> int:
    with res["duckdb"].get_connection() as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE day = ?", [day]).fetchone()[0]
