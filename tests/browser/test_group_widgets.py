"""A group of stores as a coordinator sees it: who is online, and who answered a fan-out
(the widgets' HTML, rendered in Chromium)."""

from __future__ import annotations

from pathlib import Path

import duckdb

import p2p2p
from p2p2p.client.federation import StoreGroup
from p2p2p.widgets.sources import GroupStatus, SourcesTable

from ..helpers import SCREENSHOTS
from ..helpers.browser import browser_page
from ..helpers.sharing import Relay, Share


def site(path: Path, cases: int) -> str:
    con = duckdb.connect(str(path))
    con.execute(
        f"CREATE TABLE cases AS SELECT i AS case_id, i * 2.5 AS cost FROM range({cases}) t(i)"
    )
    con.close()
    return str(path)


def test_group_status_and_sources_in_a_browser(relay: Relay, tmp_path: Path) -> None:
    owners = {
        name: Share(
            site(tmp_path / f"{name}.duckdb", n), relay.url, tmp_path / name, "--name", name
        )
        for name, n in (("brig", 10), ("sion", 20), ("visp", 30))
    }
    group = StoreGroup({name: owner.link for name, owner in owners.items()}, "sites")
    try:
        owners["visp"].stop()  # one site goes home for the night
        status = GroupStatus(group)
        states = {row["name"]: row["state"] for row in status.rows}
        assert states == {"brig": "online", "sion": "online", "visp": "offline"}
        assert "2 of 3 stores reachable" in status.table.value
        assert "visp: offline" in repr(status)
        group.query("SELECT count(*) AS n, sum(cost) AS cost FROM cases")
        answered = SourcesTable(group.last_info)
        assert "2 of 3 stores answered" in answered.value and "offline" in answered.value
        with browser_page(560, 360) as page:
            page.set_content(
                '<body style="font-family:sans-serif;padding:12px">'
                + status.table.value
                + "<hr>"
                + answered.value
                + "</body>"
            )
            links = page.locator("a")
            assert links.count() == 3 and "/s/" in (links.first.get_attribute("href") or "")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "group-status.png"))
    finally:
        group.close()
        for owner in owners.values():
            owner.stop()
    assert p2p2p.StoreGroup is StoreGroup
