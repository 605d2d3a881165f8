"""liq_pipeline: liquidation heatmaps for Binance USD-M perpetual futures, built as Dagster assets."""

__version__ = "0.1.0"
