"""`liq serve`: a local, read-only web page over the warehouse (Starlette + uvicorn, which the Dagster
webserver already ships; plotly.js from the plotly package, served locally: no CDN, no network).

Routes: `/` the page (serve_page.html + serve_page.js; its state lives in the URL), `/api/catalog` what is
materialized, `/api/view` the heatmap of a lookback (apps/serve_data.py), `/api/instant` the liquidation map
of one instant, `/static/plotly.min.js`. Each request reads the answer files the heatmap asset writes
(docs/answer-files.md) and opens the warehouse read-only only for what they do not hold, so the page keeps
answering while a Dagster run holds the write lock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

HERE = Path(__file__).parent
DEFAULT_PORT = 8050


def build_app(database: str | None = None, storage: str | None = None, parquet_root: str | None = None,
              clock=None, live_client=None, live_budget_s: float = 1.0):
    """The Starlette application over one warehouse (defaults: LIQ_WAREHOUSE / LIQ_STORAGE). `clock` returns
    the current naive UTC time (tests pin it to tell live from stale). `live_client` (a FapiClient factory)
    enables /api/now, the live layer's map from Binance REST; without it the page makes no network call."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from liq_pipeline import config
    from liq_pipeline.apps import serve_data as sd
    from liq_pipeline.warehouse.answer_files import AnswerFileError
    from liq_pipeline.warehouse.answer_view import AnswerSource

    storage = storage or config.storage()
    database = str(database or config.warehouse_path())
    parquet_root = parquet_root or (config.parquet_root() if storage == "parquet" else "")
    now = clock or (lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    page = (HERE / "serve_page.html").read_text(encoding="utf-8").replace(
        "/*SCRIPT*/", (HERE / "serve_page.js").read_text(encoding="utf-8"))
    plotly_js: list[bytes] = []

    def answer(fn):
        async def endpoint(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                with AnswerSource(database, storage, parquet_root) as src:
                    body = fn(src, dict(request.query_params))
            except (sd.ViewError, FileNotFoundError, AnswerFileError) as e:
                return JSONResponse({"error": str(e)}, status_code={FileNotFoundError: 404, AnswerFileError: 503}.get(
                    type(e), 400))
            except Exception as e:  # a locked or malformed warehouse: said on the page, not a bare 500
                return JSONResponse({"error": f"{type(e).__name__}: {e}"}, status_code=503)
            return JSONResponse(body, headers={"Server-Timing": f"app;dur={(time.perf_counter() - t0) * 1000:.1f}"})
        return endpoint

    def catalog(src, params):
        return sd.catalog_json(src.materialized(), now())

    def view(src, params):
        catalog = src.materialized()
        return sd.view(src, sd.parse_query(params, catalog), now(), catalog)

    def instant(src, params):
        q = sd.parse_query(params, src.materialized())
        at = sd.parse_time(params["at"]) if params.get("at") else q.end
        return sd.instant(src, q, at)

    def live(src, params):
        if live_client is None:
            return {"enabled": False, "label": "live map off: `liq serve --live` fetches it from Binance REST"}
        symbol = (params.get("symbol") or "").upper()
        if symbol not in {m.symbol for m in src.materialized()}:
            raise sd.ViewError(f"no heatmap for symbol {symbol!r}")
        with live_client() as client:
            try:
                return {"enabled": True, **sd.live_now(src.connection(), symbol, client, live_budget_s, now())}
            except LookupError as e:  # no baseline in the warehouse, or neither REST nor the fallback answered
                return {"enabled": True, "available": False, "label": f"live map unavailable: {e}"}

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def plotly(request: Request) -> Response:
        if not plotly_js:
            from plotly.offline import get_plotlyjs

            plotly_js.append(get_plotlyjs().encode())
        return Response(plotly_js[0], media_type="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})

    return Starlette(routes=[Route("/", index), Route("/api/catalog", answer(catalog)),
                             Route("/api/view", answer(view)), Route("/api/instant", answer(instant)),
                             Route("/api/now", answer(live)),
                             Route("/static/plotly.min.js", plotly),
                             Route("/favicon.ico", lambda request: Response(status_code=204))])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `liq serve` to the `liq` sub-commands."""
    s = subparsers.add_parser("serve", help="the interactive heatmap page on http://127.0.0.1:PORT (read-only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT})")
    s.add_argument("--warehouse", default=None, help="DuckDB file (default LIQ_WAREHOUSE)")
    s.add_argument("--live", action="store_true",
                   help="also show the live map (warehouse baseline + Binance REST signals, as `liq now`)")
    s.add_argument("--base-url", default=None, help="with --live: fapi base URL (default LIQ_FAPI_URL or Binance)")
    s.add_argument("--budget", type=float, default=1.0, help="with --live: seconds allowed for the REST calls")
    s.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import socket

    import uvicorn

    from liq_pipeline import config
    from liq_pipeline.warehouse.readonly import AnswerError as CliError

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: a TCP port is 1-65535")
    warehouse = Path(args.warehouse or config.warehouse_path())
    if config.storage() == "duckdb" and not warehouse.exists():
        raise CliError(f"warehouse {warehouse} does not exist: run `make demo`, or pass --warehouse FILE")
    with socket.socket() as probe:  # a clear message instead of uvicorn's bind error after the banner
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as e:
            raise CliError(f"port {args.port} on 127.0.0.1 is not free ({e.strerror}): choose another with --port") from None
    live_client = None
    if args.live:
        from liq_pipeline.market.rest import FapiClient

        def live_client():
            return FapiClient.from_env(base_url=args.base_url, timeout_s=max(args.budget, 0.1), max_retries=1,
                                       backoff_s=0.05)
    app = build_app(args.warehouse, live_client=live_client, live_budget_s=args.budget)
    print(f"liq serve: http://127.0.0.1:{args.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0
