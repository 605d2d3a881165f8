"""The outside world: Binance archive and REST clients, file formats, imports and recordings (the simulator
lives in `liq_pipeline.sim`)."""
