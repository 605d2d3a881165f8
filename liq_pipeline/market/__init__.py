"""The outside world: Binance archive and REST clients, file formats, and the market simulator."""
