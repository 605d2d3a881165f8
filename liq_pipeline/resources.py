"""Dagster resources: the DuckDB warehouse and the market-data source (simulated, local mirror, Binance)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from liq_pipeline import config

SOURCE_KINDS = ("simulated", "mirror", "binance")


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
    kline_interval: str = "1m"
    mark_kline_interval: str = "1m"
    #: "aggTrades" (default) or "klines": build volume profiles from klines on purpose (≈10x cheaper).
    profile_source: str = "aggTrades"

    def validate(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"market source kind must be one of {SOURCE_KINDS}, not {self.kind!r}")
        for name in ("kline_interval", "mark_kline_interval"):
            if getattr(self, name) not in config.KLINE_INTERVALS:
                raise ValueError(f"{name} must be one of {config.KLINE_INTERVALS}, not {getattr(self, name)!r}")
        if self.kind == "mirror" and not self.mirror_dir:
            raise ValueError("market source 'mirror' needs mirror_dir (LIQ_MIRROR_DIR)")
        if self.profile_source not in ("aggTrades", "klines"):
            raise ValueError(f"profile_source must be 'aggTrades' or 'klines', not {self.profile_source!r}")

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

        self.validate()
        if self.kind == "binance":
            return ArchiveClient(base_url=self.base_url, cache_dir=Path(self.cache_dir))
        mirror = Path(self.sim_dir if self.kind == "simulated" else self.mirror_dir)
        return ArchiveClient(mirror_dir=mirror, cache_dir=Path(self.cache_dir))


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
            kline_interval=env("LIQ_KLINE_INTERVAL") or "1m",
            mark_kline_interval=env("LIQ_MARK_KLINE_INTERVAL") or "1m",
            profile_source=env("LIQ_PROFILE_SOURCE") or "aggTrades",
        ),
    }
