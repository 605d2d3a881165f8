"""Dagster resources: the DuckDB warehouse and the market-data source (simulated, local mirror, Binance)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from liq_pipeline import config

SOURCE_KINDS = config.SOURCE_KINDS


class MarketSource(dg.ConfigurableResource):
    """Where raw archive files come from.

    - `simulated` (default): the local mirror written by `liq simulate` (`sim_dir`), plus ground truth;
    - `mirror`: a local folder in the data.binance.vision layout (`mirror_dir`), no network;
    - `binance`: `base_url` (data.binance.vision by default), downloaded into `cache_dir`.
    Kline intervals are per source: 1m by default; 5m, 15m and 1h are accepted.
    """

    kind: str = "simulated"
    sim_dir: str = str(config.sim_archive_dir())
    mirror_dir: str = ""
    base_url: str = config.BINANCE_ARCHIVE_URL
    cache_dir: str = str(config.data_dir() / "cache")
    #: Small state shared by every step and process, e.g. a remembered HTTP 418 ban (market/ban.py).
    state_dir: str = str(config.data_dir() / "state")
    kline_interval: str = "1m"
    mark_kline_interval: str = "1m"
    #: Refuse archive zips without a .CHECKSUM sidecar (LIQ_REQUIRE_CHECKSUM=1); by default they are used with a
    #: warning in the run log and the materialization's metadata.
    require_checksum: bool = False
    #: "aggTrades" (default) or "klines": build volume profiles from klines on purpose (≈10x cheaper).
    profile_source: str = "aggTrades"

    def validate(self) -> None:
        """ConfigError (one line naming the variable and the accepted values) for an unusable setting."""
        def bad(variable: str, value: str, accepted: tuple[str, ...]) -> config.ConfigError:
            return config.ConfigError(f"{variable}={value!r} is not valid: expected one of {', '.join(accepted)}")

        if self.kind not in SOURCE_KINDS:
            raise bad("LIQ_SOURCE", self.kind, SOURCE_KINDS)
        for name, variable in (("kline_interval", "LIQ_KLINE_INTERVAL"), ("mark_kline_interval", "LIQ_MARK_KLINE_INTERVAL")):
            if getattr(self, name) not in config.KLINE_INTERVALS:
                raise bad(variable, getattr(self, name), config.KLINE_INTERVALS)
        if self.kind == "mirror" and not self.mirror_dir:
            raise config.ConfigError("LIQ_SOURCE=mirror needs LIQ_MIRROR_DIR: the folder that contains data/futures/um/...")
        if self.profile_source not in config.PROFILE_SOURCES:
            raise bad("LIQ_PROFILE_SOURCE", self.profile_source, config.PROFILE_SOURCES)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A bad setting fails the step once, when the resource starts, before any asset code (never retried).
        self.validate()

    @property
    def is_simulated(self) -> bool:
        return self.kind == "simulated"

    @property
    def truth_dir(self) -> Path:
        """Ground-truth files written by the simulator beside its mirror."""
        return Path(self.sim_dir) / "truth"

    def client(self):
        """An ArchiveClient reading from this source."""
        from liq_pipeline.market.archive import ArchiveClient
        from liq_pipeline.market.ban import BanMemory

        self.validate()
        if self.kind == "binance":
            return ArchiveClient(base_url=self.base_url, cache_dir=Path(self.cache_dir),
                                 ban_memory=BanMemory(Path(self.state_dir) / "http-bans.json"),
                                 require_checksum=self.require_checksum)
        mirror = Path(self.sim_dir if self.kind == "simulated" else self.mirror_dir)
        return ArchiveClient(mirror_dir=mirror, cache_dir=Path(self.cache_dir), require_checksum=self.require_checksum)


def default_resources() -> dict:
    """Resources configured from the environment (LIQ_SOURCE, LIQ_MIRROR_DIR, LIQ_WAREHOUSE, ...)."""
    import os

    env = os.environ.get
    from liq_pipeline.warehouse.resource import WarehouseResource

    return {
        "duckdb": WarehouseResource(database=str(config.warehouse_path()), storage=config.storage(),
                                    parquet_root=config.parquet_root()),
        "market": MarketSource(
            kind=env("LIQ_SOURCE") or "simulated",
            sim_dir=str(config.sim_archive_dir()),
            mirror_dir=env("LIQ_MIRROR_DIR") or "",
            base_url=env("LIQ_ARCHIVE_URL") or config.BINANCE_ARCHIVE_URL,
            cache_dir=str(config.data_dir() / "cache"),
            state_dir=str(config.data_dir() / "state"),
            kline_interval=env("LIQ_KLINE_INTERVAL") or "1m",
            mark_kline_interval=env("LIQ_MARK_KLINE_INTERVAL") or "1m",
            profile_source=env("LIQ_PROFILE_SOURCE") or "aggTrades",
            require_checksum=config.require_checksum(),
        ),
    }
