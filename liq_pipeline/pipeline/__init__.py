"""Plain functions between the warehouse and the model: load what a computation needs once, call the model,
return typed results. No Dagster here: assets, apps, the CLI, bench and tests call these."""
