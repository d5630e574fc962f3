"""The demo's custom dashboard (notebooks/hospital-dashboard.ipynb) at a real link, and a
dashboard server that must not outlive an owner killed outright."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from p2p2p.samples.hospital import build_hospital_store

from ..helpers import NOTEBOOKS, SCREENSHOTS, rows_of
from ..helpers.browser import browser_page
from ..helpers.sharing import Relay, Share

NOTEBOOK = NOTEBOOKS / "hospital-dashboard.ipynb"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def hospital_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    # A twentieth of the demo's size: the same tables, sites and years, built fast.
    return build_hospital_store(tmp_path_factory.mktemp("hospital") / "hospital.duckdb", 0.05).path


@pytest.fixture(scope="module")
def hospital(
    relay: Relay, hospital_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Share]:
    process = Share(
        hospital_store, relay.url, tmp_path_factory.mktemp("owner"), "--dashboard", str(NOTEBOOK)
    )
    yield process
    process.stop()


def voila_pids(share_id: str) -> list[int]:
    """Voila processes serving this share (found by the base URL on their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"voila" in cmdline and f"--Voila.base_url=/s/{share_id}/".encode() in cmdline:
            found.append(int(entry.name))
    return found


def cases_in(store: str, year: int, site: str | None = None) -> int:
    sql = (
        "SELECT count(*) FROM cases c JOIN sites s USING (site_id) "
        "WHERE year(c.admitted) = ? AND (? IS NULL OR s.name = ?)"
    )
    return int(rows_of(store, sql, [year, site, site])[0][0])


def test_the_hospital_dashboard_on_a_phone(hospital: Share, hospital_store: str) -> None:
    with browser_page(390, 844) as page:
        page.goto(hospital.link, wait_until="domcontentloaded", timeout=120_000)
        page.get_by_text("top materials by spend, All sites 2025").wait_for(timeout=120_000)
        text = page.locator("body").inner_text()
        # Headline figures computed from the store through the link, for the year shown.
        assert "Regional hospital group" in text, text[:600]
        assert f"{cases_in(hospital_store, 2025):,}" in page.locator("body").inner_text()
        assert "material spend" in text and "€" in text
        # Friendly headers, amounts grouped, no type labels for a finance reader.
        top = page.locator(".p2p2p-result-table").first.inner_text()
        assert "Spend (€)" in top and "int64" not in top and "string" not in top
        assert text.count("Notes") == 1  # one notes section, not a heading and a panel
        # Viewer-facing only: the authoring notes are comments, not shown.
        assert "current_share" not in text
        # A viewer picks a site: both parameterised queries run again for it.
        page.locator("select").first.select_option("Westerby Community Hospital")
        page.get_by_text("top materials by spend, Westerby Community Hospital 2025").wait_for(
            timeout=60_000
        )
        # The headline cards follow the site picked.
        westerby = cases_in(hospital_store, 2025, "Westerby Community Hospital")
        page.locator(".widget-html", has_text="cases").get_by_text(
            f"{westerby:,}", exact=True
        ).first.wait_for(timeout=60_000)
        # The building blocks: the explorer (with the owner's labels) and the SQL box.
        page.locator(".p2p2p-table-name", has_text="Materials used per case").wait_for(
            timeout=60_000
        )
        page.locator(".p2p2p-table-name", has_text="Cases").first.click()
        page.locator(".p2p2p-x-table th button", has_text="Theatre minutes").wait_for(
            timeout=60_000
        )
        page.get_by_placeholder("SELECT * FROM").wait_for(timeout=60_000)
        page.locator(".p2p2p-notes, .p2p2p-note, textarea").first.wait_for(timeout=60_000)


def test_killing_the_owner_stops_its_dashboard_server(
    relay: Relay, hospital_store: str, tmp_path: Path
) -> None:
    owner = Share(hospital_store, relay.url, tmp_path / "owner", "--dashboard", "--name", "killed")
    share_id = owner.info["share_id"]
    try:
        assert voila_pids(share_id), "the share's dashboard server is not running"
        with browser_page(390, 844) as page:
            page.goto(owner.link, wait_until="domcontentloaded", timeout=120_000)
            page.locator(".p2p2p-dashboard").wait_for(timeout=120_000)
            # No Ctrl+C, no cleanup: the owner process is simply gone. The open page
            # hears it from the relay, which dropped the owner's tunnel.
            os.kill(owner.proc.pid, signal.SIGKILL)
            owner.proc.wait(timeout=10)
            page.locator(".p2p2p-offline").wait_for(timeout=20_000)
            assert "This share is offline" in page.locator(".p2p2p-offline").inner_text()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "dashboard-offline-phone.png"))
        deadline = time.monotonic() + 30
        while voila_pids(share_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not voila_pids(share_id), "Voila kept running after its owner was killed"
        # And the link says offline rather than serving anything.
        answer = httpx.get(owner.link, timeout=10)
        assert answer.status_code in (404, 502, 503) and "offline" in answer.text.lower()
    finally:
        owner.stop()
        for pid in voila_pids(share_id):
            os.kill(pid, signal.SIGKILL)
