"""A browser in identified mode, in real Chromium: an invite link enrolls this browser's
key, and the dashboard then shows only that viewer's tables; a fresh browser profile with
the share's own link gets nothing; removing the viewer signs the browser out."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import pytest

from p2p2p.client import parse_link

from ..helpers import SCREENSHOTS
from ..helpers.browser import browser_page
from ..helpers.sharing import Relay, Share, cli, origin_of

pytestmark = pytest.mark.timeout(600)


def test_an_invited_browser_signs_in_and_a_fresh_one_cannot(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    home = tmp_path / "owner"
    owner = Share(sample_store, relay.url, home, "--dashboard", "--name", "clinic", "--require-key")
    try:
        link = parse_link(owner.link)
        own = f"{origin_of(link.share_id, relay.url)}/s/{link.share_id}/"
        made = cli(
            home, "viewers", "invite", "clinic", "auditor", "--tables", "regions,yearly", "--json"
        )
        assert made.returncode == 0, made.stderr
        invite = json.loads(made.stdout)["invite"]

        with browser_page(1024, 900) as fresh:
            # The share's own link, token and all, in a browser nobody invited.
            fresh.goto(owner.link, wait_until="domcontentloaded", timeout=60_000)
            fresh.locator("body[data-signin=refused]").wait_for(timeout=30_000)
            said = fresh.locator("#status").inner_text()
            assert "not a viewer of this share" in said
            assert "sales" not in fresh.content()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            fresh.screenshot(path=str(SCREENSHOTS / "signin-refused.png"))

        with browser_page(1024, 900) as page:
            # A browser whose clock is days off signs in all the same: every time that
            # counts (challenge, session, invite) is the owner's.
            page.clock.set_system_time(datetime.datetime.now() + datetime.timedelta(days=3))
            page.goto(invite, wait_until="domcontentloaded", timeout=60_000)
            # Enrolled, then on to the dashboard, which runs for this viewer only.
            page.locator(".p2p2p-table-name", has_text="regions").wait_for(timeout=120_000)
            assert page.url == own
            names = page.locator(".p2p2p-table-name").all_inner_texts()
            assert any("yearly" in n for n in names), names
            assert not any("sales" in n or "products" in n for n in names), names
            listing = json.loads(cli(home, "viewers", "list", "clinic", "--json").stdout)
            assert [v["name"] for v in listing["viewers"]] == ["auditor"]
            assert listing["viewers"][0]["via"] == "browser invite"  # the owner sees how
            # The invite is used up: opening it again (even here) enrolls nobody.
            # A reload signs in again with the same browser key, by challenge.
            page.reload(wait_until="domcontentloaded")
            page.locator(".p2p2p-table-name", has_text="regions").wait_for(timeout=120_000)

            removed = cli(home, "viewers", "remove", "clinic", "auditor")
            assert removed.returncode == 0, removed.stderr
            time.sleep(0.3)
            page.reload(wait_until="domcontentloaded")
            page.locator("body[data-signin=refused]").wait_for(timeout=30_000)
            assert "not a viewer" in page.locator("#status").inner_text()
    finally:
        owner.stop()
