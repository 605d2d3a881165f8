"""DuckDB warehouse: table definitions and the atomic partition write. The one place that knows table names."""
