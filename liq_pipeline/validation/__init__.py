"""Validation logic, no Dagster: the realized-liquidation backtest (`backtest`), accuracy against the
simulator's truth and its ceiling (`truth`), the seed tests over the warehouse (`seed`) and the monthly
report (`report`). `liq_pipeline.assets.validation` only wires these into Dagster checks and assets.
"""
