"""A person's path through the Dagster UI, in a real browser (Debian chromium driven by playwright):
launch a backfill of two heatmap partitions from the asset page, wait for it through GraphQL, find
the heatmap picture on the asset page, and check that each partition of the one-run backfill shows the
picture and report of its own day. The screenshot is kept under data/e2e/.

Run with `make test-e2e` (installs chromium with apt when missing). In the plain `make test` run it is
skipped when no chromium is installed.
"""

from __future__ import annotations

import shutil
import time
from urllib.parse import quote

import pytest

from liq_pipeline.model.variants import DEFAULT as DEFAULT_VARIANT
from liq_pipeline_tests.support.ui import (
    BROWSER_FLAGS,
    FIRST,
    REPO,
    SYMBOL,
    DagsterUI,
    chromium_path,
    prepare,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (`make test-e2e` installs it)"),
]

BACKFILL = """query { partitionBackfillsOrError(limit: 1) { ... on PartitionBackfills {
  results { id status partitionNames } } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status runs(limit: 10) { runId status } } } }"""
TERMINAL = {"COMPLETED_SUCCESS", "COMPLETED", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = prepare(root)
    server = DagsterUI(env, root / "dagster.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _wait_for_backfill(ui: DagsterUI, backfill_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = ui.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if state["status"] in TERMINAL and all(r["status"] not in ("QUEUED", "STARTING", "STARTED") for r in state["runs"]):
            return state
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} not finished after {timeout_s} s")


def test_backfill_two_partitions_from_the_ui_and_see_the_heatmap(ui, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    days = [FIRST.replace(day=2).isoformat(), FIRST.replace(day=3).isoformat()]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=BROWSER_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{ui.url}/assets/liquidation_heatmap", wait_until="networkidle")

            # Materialize… → two dates × the symbol → Launch backfill, as a user does it.
            page.get_by_role("button", name="Materialize…").click()
            dates = page.get_by_placeholder("ex: 2026-01-01", exact=False)
            dates.fill(f"[{days[0]}...{days[1]}]")
            dates.press("Enter")
            dialog = page.get_by_role("dialog")
            dialog.get_by_role("button", name="All").nth(1).click()  # every configured symbol (one here)
            expect(dialog.get_by_text("2 partitions")).to_be_visible()
            dialog.get_by_role("button", name="Launch backfill").click()
            expect(page.get_by_text("Created backfill", exact=False)).to_be_visible(timeout=30_000)

            latest = ui.graphql(BACKFILL)["partitionBackfillsOrError"]["results"][0]
            assert sorted(latest["partitionNames"]) == sorted(f"{d}|{SYMBOL}" for d in days)
            # Nobody watches the page while the run works: a blank page keeps the UI's live queries (chromium's
            # and the webserver's CPU) out of the wait.
            page.goto("about:blank")
            state = _wait_for_backfill(ui, latest["id"])
            assert state["status"] == "COMPLETED_SUCCESS", state

            # The asset page lists the materialization metadata; the heatmap entry opens the PNG.
            page.goto(f"{ui.url}/assets/liquidation_heatmap", wait_until="networkidle")
            row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="heatmap", exact=True))
            expect(row).to_be_visible(timeout=30_000)
            # The latest materialization the page shows is the newest day of the range (assets/event_order.py).
            expect(page.get_by_role("row").filter(has=page.get_by_role("cell", name="partition", exact=True)).first
                   ).to_contain_text(f"{SYMBOL} {days[-1]}")
            page.screenshot(path=str(tmp_path / "asset_page.png"), full_page=True)
            row.get_by_text("[Show Markdown]").click()
            picture = page.get_by_role("dialog").locator("img[src^='data:image/png']")
            expect(picture).to_be_visible(timeout=30_000)
            assert picture.evaluate("img => img.naturalWidth") >= 800  # decoded, not a broken image
            page.wait_for_timeout(1_000)  # let the dialog's fade-in finish before the screenshot
            shot = tmp_path / "liquidation_heatmap_in_dagster_ui.png"
            page.screenshot(path=str(shot))
            page.keyboard.press("Escape")

            # One run covered both days; each partition still shows its own day's picture and report.
            for day in days:
                key = f"{day}|{SYMBOL}"
                page.goto(f"{ui.url}/assets/liquidation_heatmap?view=partitions&partition={quote(key)}",
                          wait_until="networkidle")
                meta = lambda label: page.get_by_role("row").filter(  # noqa: E731
                    has=page.get_by_role("cell", name=label, exact=True))
                expect(meta("partition")).to_contain_text(f"{SYMBOL} {day}", timeout=30_000)
                expect(meta("report")).to_contain_text(f"heatmap-{SYMBOL}-{day}.html")
                meta("heatmap").get_by_text("[Show Markdown]").click()
                img = page.get_by_role("dialog").locator("img[src^='data:image/png']")
                expect(img).to_have_attribute("alt", f"{SYMBOL} {day} liquidation heatmap ({DEFAULT_VARIANT})", timeout=30_000)
                page.keyboard.press("Escape")
        finally:
            browser.close()
    kept = REPO / "data" / "e2e"
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, kept / shot.name)
    assert shot.stat().st_size > 50_000
