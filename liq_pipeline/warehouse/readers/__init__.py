"""Typed readers of the warehouse: one module per input set, each next to the tables it reads (DDL in
warehouse/schema.py). They return dataclasses or numpy/pandas columns; nothing above warehouse/ writes SQL
that reads a table."""
