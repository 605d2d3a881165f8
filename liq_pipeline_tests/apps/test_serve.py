"""`liq serve` over a small simulated market (4 days of BTCUSDT, raw → model → heatmap): the HTTP answers
(lookback, range, leverage filter, instant map, stale labelling, clear errors), and the page in a real
browser (Debian's chromium driven by playwright; skipped with the reason when chromium is not installed):
what is drawn and what the controls change.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import requests

from liq_pipeline_tests.support.shared_market import LAST, SYMBOL, copy_market
from liq_pipeline_tests.support.ui import BROWSER_FLAGS, chromium_path, free_port

LATEST = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time())  # the last snapshot: midnight after LAST


@pytest.fixture(scope="module")
def market(shared_market, tmp_path_factory):
    """A copy of the run's shared market (one test stores realized liquidations in it)."""
    copy = copy_market(shared_market, tmp_path_factory.mktemp("serve") / "market")
    mp = copy.env()
    yield copy.db
    mp.undo()


class Server:
    """The app under uvicorn in a thread on a free 127.0.0.1 port."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "liq serve did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **params):
        return requests.get(self.url + path, params=params, timeout=30)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(market):
    from liq_pipeline.apps.serve import build_app

    s = Server(build_app(str(market), storage="duckdb", clock=lambda: LATEST + dt.timedelta(days=3)))
    yield s
    s.stop()


def _totals(body):
    return body["sides"]["long"]["total_usd"], body["sides"]["short"]["total_usd"]


def test_catalog_lists_what_is_materialized_and_calls_old_data_not_live(server):
    c = server.get("/api/catalog").json()
    assert c["symbols"] == [SYMBOL]
    assert "flow" in c["leverage_variants"] and "hybrid" not in c["leverage_variants"]  # the filter's variants
    flow = next(e for e in c["entries"] if e["variant"] == "flow")
    assert flow["latest"] == LATEST.isoformat() and flow["live"] is False
    assert "not live" in flow["latest_label"] and "3 days old" in flow["latest_label"]
    assert "now" not in flow["latest_label"]


def test_fresh_data_is_labelled_live_with_its_age(market):
    from liq_pipeline.apps import serve_data as sd

    label = sd.latest_label(LATEST, LATEST + dt.timedelta(minutes=7))
    assert label["live"] is True and label["latest_label"] == "live: snapshot 7 min old"


def test_lookback_sets_the_time_range_across_day_partitions(server):
    day = server.get("/api/view", symbol=SYMBOL, lookback="1d").json()
    three = server.get("/api/view", symbol=SYMBOL, lookback="3d").json()
    assert (day["start"], day["end"]) == ((LATEST - dt.timedelta(days=1)).isoformat(), LATEST.isoformat())
    assert three["start"] == (LATEST - dt.timedelta(days=3)).isoformat()
    assert len(three["times"]) == 3 * len(day["times"])  # three day partitions, every snapshot
    assert three["times"][0] > three["start"] and three["times"][-1] == LATEST.isoformat()
    assert day["shape"][1] == len(day["times"]) and day["candles"]["t"] and day["mark"]["t"]
    assert day["totals_last"]["long_usd"] > 0 and day["totals_last"]["short_usd"] > 0


def test_a_date_range_covers_whole_days(server):
    v = server.get("/api/view", symbol=SYMBOL, lookback="range", **{"from": "2026-01-02", "to": "2026-01-03"}).json()
    assert (v["start"], v["end"]) == ("2026-01-02T00:00:00", "2026-01-04T00:00:00")
    assert v["times"][0] > "2026-01-02T00:00:00" and v["times"][-1] == "2026-01-04T00:00:00"


def test_leverage_filter_keeps_the_share_of_the_selected_buckets(server):
    everything = server.get("/api/instant", symbol=SYMBOL, lookback="1d").json()
    high = server.get("/api/instant", symbol=SYMBOL, lookback="1d", lev="50,75,125").json()
    low = server.get("/api/instant", symbol=SYMBOL, lookback="1d", lev="1.5,3,5,10,20").json()
    all_long, all_short = _totals(everything)
    assert 0 < _totals(high)[0] < all_long and 0 < _totals(low)[0] < all_long
    # The buckets partition the book: the two selections add up to the whole (at a day end it is exact).
    assert _totals(high)[0] + _totals(low)[0] == pytest.approx(all_long, rel=1e-6)
    assert _totals(high)[1] + _totals(low)[1] == pytest.approx(all_short, rel=1e-6)


def test_instant_map_is_cumulative_from_the_mark_with_zones(server):
    m = server.get("/api/instant", symbol=SYMBOL, lookback="1d", at="2026-01-03T12:07").json()
    assert m["time"] == "2026-01-03T12:00:00"  # the snapshot at or before the instant
    longs, shorts = m["sides"]["long"], m["sides"]["short"]
    assert all(p < m["mark"] for p in longs["price"]) and all(p > m["mark"] for p in shorts["price"])
    assert longs["cumulative_usd"][-1] == pytest.approx(longs["total_usd"], rel=1e-6)
    assert longs["cumulative_usd"] == sorted(longs["cumulative_usd"])
    for z in m["zones"]:
        assert z["low"] <= z["peak"] <= z["high"]
        if z["kind"] == "band":
            assert z["high"] - z["low"] <= 0.0101 * m["mark"]


@pytest.mark.parametrize(("params", "words"), [
    ({"symbol": "DOGEUSDT"}, "materialized symbols are BTCUSDT"),
    ({"lookback": "2y"}, "lookback '2y'"),
    ({"lookback": "range", "from": "2026-01-03", "to": "2026-01-01"}, "before"),
    ({"lookback": "range", "from": "yesterday", "to": "2026-01-01"}, "must be a date"),
    ({"lev": "4"}, "not among the book's leverage buckets"),
    ({"variant": "hybrid", "lev": "10"}, "the seed's fixed mix"),
    ({"end": "soon"}, "not an ISO time"),
])
def test_bad_requests_are_answered_in_words(server, params, words):
    r = server.get("/api/view", **params)
    assert r.status_code == 400 and words in r.json()["error"]


def test_a_missing_warehouse_is_said_on_the_page(tmp_path):
    from liq_pipeline.apps.serve import build_app

    s = Server(build_app(str(tmp_path / "none.duckdb"), storage="duckdb"))
    try:
        r = s.get("/api/view")
        assert r.status_code == 404 and "does not exist" in r.json()["error"]
    finally:
        s.stop()


def test_serve_command_refuses_a_busy_port_or_a_missing_warehouse_in_one_line(tmp_path, capsys):
    import socket

    from liq_pipeline.cli import main as cli

    missing = tmp_path / "none.duckdb"
    assert cli.main(["serve", "--warehouse", str(missing)]) == 2
    assert f"warehouse {missing} does not exist" in capsys.readouterr().err
    existing = tmp_path / "w.duckdb"
    existing.touch()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["serve", "--warehouse", str(existing), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is not free" in err and "Traceback" not in err
    assert cli.main(["serve", "--port", "70000"]) == 2


def test_plotly_is_served_locally(server):
    r = server.get("/static/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000 and b"plotly" in r.content[:2000].lower()
    page = server.get("/").text
    assert '<script src="/static/plotly.min.js">' in page and "cdn" not in page.lower()


def test_realized_liquidations_in_the_window_are_overlaid(market, server):
    import duckdb

    from liq_pipeline.warehouse.schema import ensure_tables

    rows = [("2026-01-04 10:00:00", "long", 80_000.0, 2e5), ("2026-01-04 11:00:00", "short", 90_000.0, 1e5),
            ("2026-01-02 11:00:00", "short", 90_000.0, 5e5)]  # the last one is outside a 1-day window
    with duckdb.connect(str(market)) as con:
        ensure_tables(con, "raw.realized_liquidations")
        con.execute("DELETE FROM raw.realized_liquidations")
        for t, side, price, usd in rows:
            con.execute("INSERT INTO raw.realized_liquidations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'test')",
                        [SYMBOL, t[:10], t, t, side, price, price, usd / price, usd])
    try:
        v = server.get("/api/view", symbol=SYMBOL, lookback="1d").json()
        assert v["realized"]["count"] == 2 and v["realized"]["total_usd"] == pytest.approx(3e5)
        assert sorted(zip(v["realized"]["price"], v["realized"]["side"], strict=True)) == [(80_000.0, 1), (90_000.0, -1)]
    finally:
        with duckdb.connect(str(market)) as con:
            con.execute("DELETE FROM raw.realized_liquidations")


def test_live_map_is_off_unless_asked(server):
    n = server.get("/api/now", symbol=SYMBOL).json()
    assert n["enabled"] is False and "--live" in n["label"]


def _live_server(market, base_url: str, clock_ms):
    from liq_pipeline.apps.serve import build_app
    from liq_pipeline.market.rest import FapiClient

    def client():
        return FapiClient(base_url=base_url, clock=lambda: clock_ms() / 1000, sleep=lambda s: None, timeout_s=1.0,
                          max_retries=0)

    now = lambda: dt.datetime.fromtimestamp(clock_ms() / 1000 + 5, dt.UTC).replace(tzinfo=None)  # noqa: E731
    return Server(build_app(str(market), storage="duckdb", clock=now, live_client=client, live_budget_s=1.0))


def test_live_map_from_rest_is_labelled_with_its_age(market):
    import duckdb

    from liq_pipeline_tests.support.fake_exchange import FakeExchange, MarketData

    with duckdb.connect(str(market), read_only=True) as con:  # the exchange trades where the market left off
        last = con.execute("SELECT arg_max(close, open_time) FROM raw.mark_price_klines").fetchone()[0]
    with FakeExchange(MarketData(base_price=float(last))) as exchange:
        s = _live_server(market, exchange.url, lambda: exchange.now_ms)
        try:
            n = s.get("/api/now", symbol=SYMBOL).json()
        finally:
            s.stop()
    assert n["enabled"] and n["available"], n
    assert n["label"].startswith("live map (hybrid on REST signals) as of") and "5 s old" not in n["label"]
    assert n["age_s"] == pytest.approx(5, abs=1)
    assert n["sides"]["long"]["total_usd"] > 0 and all(p < n["mark"] for p in n["sides"]["long"]["price"])


def test_live_map_unavailable_is_said_and_nothing_stale_is_shown_as_now(market):
    s = _live_server(market, "http://127.0.0.1:9", lambda: time.time() * 1000)
    try:
        n = s.get("/api/now", symbol=SYMBOL).json()
    finally:
        s.stop()
    assert n["enabled"] and n["available"] is False and "sides" not in n
    assert "unavailable" in n["label"]


# ---------------------------------------------------------------------------------------------- browser
needs_chromium = pytest.mark.skipif(chromium_path() is None,
                                    reason="chromium is not installed (`apt-get install chromium`, or `make test-e2e`)")


@pytest.mark.slow  # a browser
@needs_chromium
def test_page_draws_the_heatmap_and_its_controls_change_it(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server.url}/?symbol={SYMBOL}&lookback=1d", wait_until="networkidle")
            page.wait_for_function("window.__liq.instant !== null")

            drawn = page.evaluate("""() => { const gd = document.getElementById('heatmap');
                return {types: gd.data.map(t => t.type), names: gd.data.map(t => t.name),
                        range: gd.layout.xaxis.range, ticks: gd.data[0].colorbar.ticktext,
                        ytitle: gd.layout.yaxis.title.text}; }""")
            assert drawn["types"][:3] == ["heatmap", "candlestick", "scatter"]
            assert "mark price" in drawn["names"] and any(n.startswith("long cumulative") for n in drawn["names"])
            assert all(t.startswith("$") for t in drawn["ticks"]) and drawn["ticks"]  # the colour bar in USD
            assert drawn["ytitle"] == "liquidation price (USDT)"
            day_range = [dt.datetime.fromisoformat(x[:19]) for x in drawn["range"]]
            assert day_range[1] - day_range[0] == dt.timedelta(days=1)
            assert "not live" in page.locator("#status").inner_text()

            # The lookback: 3d widens the x range, and the URL holds it.
            page.get_by_role("button", name="3d", exact=True).click()
            page.wait_for_function("window.__liq.view.lookback === '3d' && window.__liq.instant !== null")
            r3 = page.evaluate("document.getElementById('heatmap').layout.xaxis.range")
            span = dt.datetime.fromisoformat(r3[1][:19]) - dt.datetime.fromisoformat(r3[0][:19])
            assert span == dt.timedelta(days=3) and "lookback=3d" in page.url

            # The leverage filter: unticking the high buckets lowers the totals shown.
            before = page.locator("#totals").inner_text()
            loads = page.evaluate("window.__liq.loads")
            for lev in ("50", "75", "125"):
                page.locator(f"#lev input[value='{lev}']").uncheck()
            page.wait_for_function(f"window.__liq.loads >= {loads + 3}")
            # The third reload counts when it starts; wait until its answer is drawn (it fails on a timeout
            # if the filter never reaches the page's state).
            page.wait_for_function("JSON.stringify(window.__liq.view.leverages) === '[1.5,3,5,10,20]'")
            page.wait_for_load_state("networkidle")
            after = page.locator("#totals").inner_text()
            assert after != before and "lev=" in page.url
            totals = page.evaluate("[window.__liq.instant.sides.long.total_usd, window.__liq.view.leverages]")
            assert totals[1] == [1.5, 3, 5, 10, 20]

            # A click on the heatmap picks the instant under the pointer.
            box = page.locator("#heatmap .nsewdrag").first.bounding_box()
            before_click = page.evaluate("window.__liq.instant.time")
            page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
            page.wait_for_function(f"window.__liq.instant.time !== '{before_click}'")
            clicked = dt.datetime.fromisoformat(page.evaluate("window.__liq.instant.time"))
            assert LATEST - dt.timedelta(days=3) < clicked < LATEST - dt.timedelta(days=1)

            # The instant slider moves the cumulative panel's instant; the URL keeps it.
            page.locator("#instant").fill("10")
            page.locator("#instant").dispatch_event("change")
            page.wait_for_function("window.__liq.instant.time === window.__liq.view.times[10]")
            assert "at=" in page.url

            # Reloading the URL restores the same view.
            page.goto(page.url, wait_until="networkidle")
            page.wait_for_function("window.__liq.instant !== null")
            assert page.evaluate("window.__liq.view.lookback") == "3d"
            assert page.evaluate("window.__liq.view.leverages") == [1.5, 3, 5, 10, 20]
            page.screenshot(path=str(tmp_path / "serve.png"))

            # A fixed-mix variant: the filter is disabled and the page says why.
            page.locator("#variant").select_option("hybrid")
            page.wait_for_function("window.__liq.view && window.__liq.view.variant === 'hybrid'")
            assert "leverage filter off for hybrid" in page.locator("#lev-note").inner_text()
            assert page.locator("#lev input").first.is_disabled() and "lev=" not in page.url
        finally:
            browser.close()
