"""Exploring a table in a real browser through a real relay, owner and Voila: facets,
filters, sort and pages give the rows the same SQL gives; the view lives in the address
and comes back in a fresh browser; exports are the view; values hostile or exact show as
they are; numbers are grouped for the browser's locale."""

from __future__ import annotations

import csv
import io
import json
import urllib.parse
from typing import Any

import duckdb
import pytest

from ..helpers import SCREENSHOTS, rows_of
from ..helpers.browser import chromium
from ..helpers.sharing import Relay, Share

pytestmark = pytest.mark.timeout(900)
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def local(store: str, sql: str) -> list[tuple[Any, ...]]:
    return rows_of(store, sql)


def opened(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded", timeout=120_000)
    page.locator(".p2p2p-x-table tbody tr").first.wait_for(timeout=120_000)
    return page


def column(page: Any, index: int) -> list[str]:
    """The texts of a column of the shown page (1 = the ✎, 2 = the first column)."""
    return page.locator(f".p2p2p-x-table tbody tr td:nth-child({index})").all_inner_texts()


def settled(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelector('.p2p2p-x-main')?.getAttribute('aria-busy') === 'false'",
        timeout=60_000,
    )
    page.wait_for_timeout(300)


def test_facet_filter_sort_page_export_and_the_address(dashboard: Share, sample_store: str) -> None:
    with chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1440, "height": 900}, accept_downloads=True
        )
        page = opened(context, dashboard.link)
        assert "?t=" not in page.url
        title = page.locator(".p2p2p-x-title")
        assert title.inner_text().startswith("sales · 20,000 rows")  # the largest table first
        # A facet value is one click: only that region, counted over the whole table.
        north = local(sample_store, "SELECT count(*) FROM sales WHERE region = 'north'")[0][0]
        page.locator(".p2p2p-x-facet button", has_text="north").click()
        page.get_by_text(f"{north:,} rows of 20,000").wait_for(timeout=60_000)
        settled(page)
        assert set(column(page, 3)) == {"north"}
        # A filter typed in: amounts above 900.
        page.get_by_label("filter column").select_option("amount")
        page.get_by_label("filter operator").select_option("gt")
        page.get_by_label("filter value").fill("900")
        page.get_by_role("button", name="Add filter").click()
        where = "region = 'north' AND amount > 900"
        count = local(sample_store, f"SELECT count(*) FROM sales WHERE {where}")[0][0]
        page.get_by_text(f"{count:,} rows of 20,000").wait_for(timeout=60_000)
        # Sort by a header click, twice for descending, over all matching rows.
        header = page.locator(".p2p2p-x-table th button", has_text="amount")
        header.click()
        settled(page)
        page.locator(".p2p2p-x-table th button", has_text="amount").click()
        page.locator(".p2p2p-x-table th button", has_text="amount ▼").wait_for(timeout=60_000)
        settled(page)
        expected = local(
            sample_store,
            f"SELECT sale_id, amount FROM sales WHERE {where} "
            "ORDER BY amount DESC NULLS LAST, sale_id LIMIT 50 OFFSET 50",
        )
        page.get_by_role("button", name="Next ▶").click()
        page.get_by_text(f"rows 51–{min(100, count)} of {count:,}").wait_for(timeout=60_000)
        settled(page)
        shown = list(zip(column(page, 2), column(page, 8), strict=True))
        # Ids as they are (an id of 11,664 reads like an amount); amounts grouped.
        assert shown == [(str(i), f"{a:,.2f}") for i, a in expected]
        # The address holds the view, and never the token.
        address = page.url
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(address).query)
        assert query["_table"] == ["sales"] and query["region"] == ["north"]
        assert query["amount__gt"] == ["900"] and query["_sort_desc"] == ["amount"]
        assert query["_page"] == ["2"] and "t" not in query
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("document.querySelector('.p2p2p-dashboard').scrollIntoView()")
        page.screenshot(path=str(SCREENSHOTS / "explorer-desktop.png"))
        # Export what is shown (the whole view, not just this page), exactly.
        with page.expect_download(timeout=60_000) as download:
            page.locator(".p2p2p-x-export", has_text="CSV").click()
        rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
        everything = local(
            sample_store,
            f"SELECT * FROM sales WHERE {where} ORDER BY amount DESC NULLS LAST, sale_id",
        )
        assert len(rows) == 1 + len(everything)
        assert [tuple(r) for r in rows[1:4]] == [tuple(str(v) for v in r) for r in everything[:3]]
        assert download.value.suggested_filename == "sales.csv"
        with page.expect_download(timeout=60_000) as download:
            page.locator(".p2p2p-x-export", has_text="JSON").click()
        records = json.loads(download.value.path().read_text())
        assert len(records) == len(everything) and records[0]["region"] == "north"
        page.get_by_text(f"Exported {len(everything):,} rows as sales.json").wait_for()
        # "Open as SQL": the view's statement in the SQL box, run there.
        page.get_by_role("button", name="Open as SQL").click()
        box = page.get_by_placeholder("SELECT * FROM")
        page.wait_for_function(
            "() => document.querySelector('textarea')?.value.includes('ORDER BY')", timeout=60_000
        )
        assert '"amount" > 900' in box.input_value() and "OFFSET 50" in box.input_value()
        context.close()

        # Someone else's browser, with the link: the sent view opens as it was.
        other = browser.new_context(viewport={"width": 1024, "height": 1366})
        joined = dashboard.link + "&" + urllib.parse.urlsplit(address).query
        page = opened(other, joined)
        page.get_by_text(f"rows 51–{min(100, count)} of {count:,}").wait_for(timeout=60_000)
        settled(page)
        assert list(zip(column(page, 2), column(page, 8), strict=True)) == shown
        assert "?t=" not in page.url and "amount__gt=900" in page.url
        # A mangled address names what is wrong and still shows the table.
        page.goto(address.replace("amount__gt", "nosuch__gt"), wait_until="domcontentloaded")
        page.get_by_text("sales has no column 'nosuch'").wait_for(timeout=120_000)
        other.close()


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("odd") / "odd.duckdb")
    con = duckdb.connect(path)
    con.execute(
        f"""CREATE TABLE ledger AS SELECT * FROM (VALUES
            (1, '{HOSTILE.replace("'", "''")}', 1870125.50::DECIMAL(12,2), NULL::BIGINT,
             DATE '2024-02-29', TIMESTAMPTZ '2024-03-01 10:30:00+00',
             123456789012345678901234::HUGEINT),
            (2, 'plain', 0.10::DECIMAL(12,2), 7::BIGINT, NULL, NULL, -1::HUGEINT),
            (3, 'plain', NULL, 12345678::BIGINT, DATE '2024-01-01', NULL, 0::HUGEINT)
        ) v(entry_id, memo, amount, visits, booked, stamped, big)"""
    )
    # The owner's words for a column: its label, and how its numbers read.
    con.execute("COMMENT ON COLUMN ledger.amount IS 'Amount paid [EUR]'")
    con.execute("COMMENT ON TABLE ledger IS 'General ledger'")
    con.close()
    return path


def test_exact_values_hostile_text_and_the_locale(
    relay: Relay, odd_store: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    share = Share(
        odd_store, relay.url, tmp_path_factory.mktemp("owner"), "--dashboard", "--no-export"
    )
    try:
        with chromium() as browser:
            for locale, amount, visits in (
                ("en-US", "€1,870,125.50", "12,345,678"),
                ("de-DE", "1.870.125,50\xa0€", "12.345.678"),
            ):
                context = browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
                dialogs: list[str] = []
                page = context.new_page()
                page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
                page.goto(share.link, wait_until="domcontentloaded", timeout=120_000)
                page.locator(".p2p2p-x-table tbody tr").first.wait_for(timeout=120_000)
                settled(page)
                cells = page.locator(".p2p2p-x-table tbody tr").all_inner_texts()
                first, second, third = (c.split("\t") for c in cells)
                assert HOSTILE in first[2]  # the text itself, never markup
                assert first[3] == amount
                assert second[3] == ("€0.10" if locale == "en-US" else "0,10\xa0€")
                headers = page.locator(".p2p2p-x-table th").all_inner_texts()
                assert "Amount paid" in headers and "amount" not in headers
                assert page.locator(".p2p2p-table-name").inner_text().startswith("General ledger")
                assert first[4] == "NULL" and third[4] == visits  # integers stay integers
                assert first[5] == "2024-02-29" and first[6] == "2024-03-01 10:30:00+00:00"
                big = (
                    "123,456,789,012,345,678,901,234"
                    if locale == "en-US"
                    else "123.456.789.012.345.678.901.234"
                )
                assert first[7] == big  # past what a float holds, digit for digit
                # The hostile value as a facet, and as a filter chip: still only text. On a
                # phone the facets are folded under one line, the table first.
                assert not page.locator(".p2p2p-x-facet").first.is_visible()
                page.locator(".p2p2p-x-folder summary").click()
                page.locator(".p2p2p-x-facet button", has_text="<img").click()
                page.locator(".p2p2p-x-chip", has_text="<img").wait_for(timeout=60_000)
                settled(page)
                assert page.locator(".p2p2p-x img").count() == 0
                assert page.title() != "pwned" and not dialogs
                assert page.get_by_text("1 row of 3").count() == 1
                # The owner said --no-export: no download buttons at all.
                assert page.locator(".p2p2p-x-export").count() == 0
                assert page.get_by_role("button", name="Open as SQL").count() == 1
                if locale == "en-US":
                    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SCREENSHOTS / "explorer-phone.png"))
                context.close()
    finally:
        share.stop()
