"""Applications over the pipeline and the warehouse: the demo, the real-data scorecard, the variant comparison
(they run the Dagster `Definitions`), the `liq serve` web page and the instance set-up. Nothing below them
imports an app."""
