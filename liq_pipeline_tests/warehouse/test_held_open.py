"""resource.held_open: while the warehouse is held open, the resource's connections join it (no reopening,
what one writes the next reads), closing them leaves it open, and at the end the file is released."""

from __future__ import annotations

import duckdb
import pytest

from liq_pipeline.warehouse.resource import WarehouseResource, held_open


def test_resource_connections_join_the_open_warehouse_and_it_is_released_after(tmp_path):
    db = str(tmp_path / "liq.duckdb")
    resource = WarehouseResource(database=db)
    with held_open(db) as anchor:
        anchor.execute("CREATE TABLE t AS SELECT 1 AS x")
        with resource.get_connection() as con:
            con.execute("INSERT INTO t VALUES (2)")
        with resource.get_connection() as con:  # the first one's close did not close the database
            assert con.execute("SELECT sum(x) FROM t").fetchone() == (3,)
        # Joined, not reopened: DuckDB refuses a second open of the file with another configuration.
        with pytest.raises(duckdb.ConnectionException, match="different configuration"):
            duckdb.connect(db, config={"threads": 1})
        assert anchor.execute("SELECT count(*) FROM t").fetchone() == (2,)
    with duckdb.connect(db, read_only=True, config={"threads": 1}) as con:  # released: any configuration opens it
        assert con.execute("SELECT sum(x) FROM t").fetchone() == (3,)
