"""A dashboard's first view drawn from the page itself (dashboards/preview.js), in real
Chromium through a real relay, owner and Voila.

Voila's widget scripts are held back by the test (the request for ``voila.js`` waits
until the test lets it go), so what the viewer sees before the widgets connect is what
the page alone can show: the preview. Then the live widget takes over from it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from ..helpers import SCREENSHOTS
from ..helpers.browser import chromium
from ..helpers.sharing import Relay, Share

pytestmark = pytest.mark.timeout(600)
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
VOILA_JS = re.compile(r"/voila/static/voila\.js")
ROWS_JS = """(root) => [...root.querySelectorAll('.p2p2p-x-table tbody tr')].map(
  (tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent))"""
PREVIEW_ROWS_JS = f"""() => {{
  const root = window.__p2p2p_preview;
  return root ? ({ROWS_JS})(root) : null;
}}"""
LIVE_ROWS_JS = f"() => ({ROWS_JS})(document.querySelector('.p2p2p-dashboard'))"


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("preview") / "odd.duckdb")
    con = duckdb.connect(path)
    con.execute(
        f"""CREATE TABLE ledger AS SELECT
            i AS entry_id,
            CASE WHEN i = 0 THEN '{HOSTILE.replace("'", "''")}' ELSE 'entry ' || i END AS memo,
            (i * 1000.25)::DECIMAL(12, 2) AS amount,
            CASE WHEN i % 2 = 0 THEN NULL ELSE i * 7 END AS visits,
            ['a', 'b', 'c'][1 + i % 3] AS team
        FROM range(60) t(i)"""
    )
    con.close()
    return path


@pytest.fixture(scope="module")
def odd_share(
    relay: Relay, odd_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Share]:
    process = Share(
        odd_store, relay.url, tmp_path_factory.mktemp("owner"), "--dashboard", "--name", "ledger"
    )
    yield process
    process.stop()


class HeldBack:
    """A page whose Voila scripts wait until ``release``: the page alone, meanwhile."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        self.held: list[Any] = []
        self.sockets: list[str] = []
        self.page.on("websocket", lambda ws: self.sockets.append(ws.url))
        self.page.route(VOILA_JS, lambda route: self.held.append(route))

    def open(self, url: str) -> Any:
        # Not waiting for DOMContentLoaded: the held script keeps the page from finishing.
        response = self.page.goto(url, wait_until="commit", timeout=120_000)
        # The page now carries its first rows in its HTML: no cache may keep it.
        assert "no-store" in response.headers["cache-control"]
        return self.page

    def release(self) -> None:
        for route in self.held:
            route.continue_()
        self.held.clear()
        self.page.unroute(VOILA_JS)


def preview_rows(page: Any) -> list[list[str]]:
    page.wait_for_function(
        "() => window.__p2p2p_preview?.querySelector('.p2p2p-x-table tbody tr')",
        timeout=120_000,
    )
    rows: list[list[str]] = page.evaluate(PREVIEW_ROWS_JS)
    return rows


def live_rows(page: Any) -> list[list[str]]:
    page.locator(".p2p2p-dashboard .p2p2p-x-table tbody tr").first.wait_for(timeout=120_000)
    rows: list[list[str]] = page.evaluate(LIVE_ROWS_JS)
    return rows


def test_the_first_rows_show_before_the_widgets_connect_and_the_live_table_takes_over(
    dashboard: Share,
) -> None:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1024, "height": 1366})
        held = HeldBack(context)
        page = held.open(dashboard.link)
        early = preview_rows(page)
        # The page alone: no kernel websocket yet, Voila's spinner out of sight.
        assert not [u for u in held.sockets if "/channels" in u] and held.held
        assert len(early) == 50 and early[0][1] == "1"  # ✎, then sale_id 1
        shown = page.evaluate("() => window.__p2p2p_preview.textContent")
        assert "sales" in shown and "Connecting to the live dashboard" in shown
        assert page.evaluate("getComputedStyle(document.getElementById('loading')).display") == (
            "none"
        )
        # It is a picture: selectors for the dashboard's parts find none of it, and a
        # click on it goes nowhere.
        assert page.locator(".p2p2p-x-table").count() == 0
        assert page.evaluate("document.querySelector('.p2p2p-preview').inert") is True
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dashboard-preview-tablet.png"))
        held.release()
        # The live explorer shows the same rows, and the preview is gone.
        assert live_rows(page) == early
        page.wait_for_function(
            "() => !document.querySelector('.p2p2p-preview') && "
            "!document.documentElement.classList.contains('p2p2p-previewing')",
            timeout=30_000,
        )
        assert page.evaluate("performance.getEntriesByName('p2p2p-preview').length") == 1
        # The live table is the one that answers: a click turns its page.
        page.get_by_role("button", name="Next ▶").click()
        page.get_by_text("rows 51–100 of").wait_for(timeout=60_000)
        context.close()


def test_an_address_with_a_view_opens_that_view_without_a_preview_of_another(
    dashboard: Share,
) -> None:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        view = urllib.parse.urlencode({"_table": "regions"})
        page.goto(f"{dashboard.link}&{view}", wait_until="domcontentloaded", timeout=120_000)
        page.locator(".p2p2p-x-title", has_text="regions").wait_for(timeout=120_000)
        # No preview of the default table (sales) ever drew.
        assert page.evaluate("window.__p2p2p_preview === undefined")
        assert page.evaluate("performance.getEntriesByName('p2p2p-preview').length") == 0
        context.close()


def test_the_preview_shows_values_exactly_and_hostile_ones_as_text(odd_share: Share) -> None:
    with chromium() as browser:
        for locale, amount in (("en-US", "1,000.25"), ("de-DE", "1.000,25")):
            context = browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
            dialogs: list[str] = []
            held = HeldBack(context)
            held.page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
            page = held.open(odd_share.link)
            early = preview_rows(page)
            first, second = early[0], early[1]
            assert first[2] == HOSTILE and first[4] == "NULL"  # text, never markup
            assert second[3] == amount and second[4] == "7"  # exact, grouped, integers
            images = page.evaluate("() => window.__p2p2p_preview.querySelectorAll('img').length")
            assert images == 0 and page.locator("img[src=x]").count() == 0
            if locale == "en-US":
                page.screenshot(path=str(SCREENSHOTS / "dashboard-preview-phone.png"))
            held.release()
            assert live_rows(page) == early
            assert page.title() != "pwned" and dialogs == []
            context.close()
