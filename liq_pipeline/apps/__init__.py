"""Applications over the warehouse: the `liq serve` web page."""
