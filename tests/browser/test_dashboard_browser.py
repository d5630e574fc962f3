"""The viewer's dashboard in a real browser: relay + owner + Voila, at phone, tablet and
desktop sizes."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from p2p2p.client import parse_link

from ..helpers import SCREENSHOTS
from ..helpers.browser import browser_page
from ..helpers.sharing import Relay, Share, cli, origin_of

pytestmark = pytest.mark.timeout(600)


def open_dashboard(page: object, link: str) -> float:
    started = time.monotonic()
    # Voila's page waits on a CDN font that is unreachable here: do not wait for "load".
    page.goto(link, wait_until="domcontentloaded", timeout=120_000)  # type: ignore[attr-defined]
    page.locator(".p2p2p-table-name", has_text="sales").wait_for(timeout=120_000)  # type: ignore[attr-defined]
    return time.monotonic() - started


def test_the_dashboard_at_three_sizes(dashboard: Share, relay: Relay) -> None:
    link = parse_link(dashboard.link)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in {
        "phone": (390, 844),
        "tablet": (1024, 1366),
        "desktop": (1440, 900),
    }.items():
        with browser_page(width, height) as page:
            seconds = open_dashboard(page, dashboard.link)
            print(f"time to first table ({size}): {seconds:.1f} s")
            # On the share's own origin, and the token left the address bar.
            assert page.url == f"{origin_of(link.share_id, relay.url)}/s/{link.share_id}/"
            text = page.locator(".p2p2p-dashboard").inner_text()
            assert "clinic" in text and "20,000 rows" in text and "regions" in text
            assert "north" in text  # values from the store: first rows and the chart
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOTS / f"dashboard-{size}.png"), full_page=True)


def test_a_viewer_asks_a_question_and_a_hostile_one_is_refused(dashboard: Share) -> None:
    with browser_page(1024, 900) as page:
        open_dashboard(page, dashboard.link)
        box = page.get_by_placeholder("SELECT * FROM")
        box.fill("SELECT count(*) AS northern FROM sales WHERE region = 'north'")
        page.get_by_role("button", name="Run").click()
        page.locator(".p2p2p-dashboard").get_by_text("5,057").or_(
            page.locator(".p2p2p-dashboard").get_by_text("5057")
        ).first.wait_for(timeout=60_000)
        box.fill("SELECT * FROM read_csv('/etc/passwd')")
        page.get_by_role("button", name="Run").click()
        error = page.locator(".p2p2p-sql-error")
        error.wait_for(timeout=60_000)
        assert "Not run" in error.inner_text() and "root:" not in page.content()


def test_no_jupyter_api_and_no_code_execution_for_viewers(dashboard: Share, relay: Relay) -> None:
    link = parse_link(dashboard.link)
    cookie = {"Cookie": f"p2p2p_t={link.token}"}
    for path in (
        "/api/kernels",
        "/api/contents",
        "/api/sessions",
        "/api/kernelspecs",
        "/tree",
        "/lab",
        "/voila/render/dashboard.ipynb",
        "/dashboard.ipynb",
    ):
        answer = httpx.get(f"{link.share_url}{path}", headers=cookie)
        assert answer.status_code == 404, (path, answer.status_code)
    # The page's own kernel: an execute request over its websocket is not run.
    with browser_page(1024, 900) as page:
        open_dashboard(page, dashboard.link)
        html = page.content()
    kernel_id = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", html)
    assert kernel_id, "the dashboard page names its kernel"
    marker = Path(f"/tmp/p2p2p-viewer-ran-{uuid.uuid4().hex}")
    url = f"ws://127.0.0.1:{relay.port}/s/{link.share_id}/api/kernels/{kernel_id.group(0)}/channels"
    msg_id = uuid.uuid4().hex
    with connect(url, additional_headers=cookie, origin=relay.url) as ws:  # type: ignore[arg-type]
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "session": uuid.uuid4().hex,
                        "username": "viewer",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {"code": f"open({str(marker)!r}, 'w').write('x')", "silent": False},
                }
            )
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # bounded: listen for any answer to it
            try:
                message = json.loads(ws.recv(timeout=1))
            except TimeoutError:
                continue
            assert message.get("parent_header", {}).get("msg_id") != msg_id, message
    assert not marker.exists()


def test_unsharing_shows_the_open_dashboard_offline(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    owner = Share(sample_store, relay.url, tmp_path / "owner", "--dashboard", "--name", "brief")
    try:
        with browser_page(390, 844) as page:
            open_dashboard(page, owner.link)
            owner.stop()
            started = time.monotonic()
            page.locator(".p2p2p-offline").wait_for(timeout=30_000)
            assert time.monotonic() - started < 15
            assert "This share is offline" in page.locator(".p2p2p-offline").inner_text()
    finally:
        owner.stop()


def test_the_owners_own_dashboard_with_current_share(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    import nbformat

    notebook = tmp_path / "findings.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import p2p2p\n"
            "store = p2p2p.current_share()\n"
            "n = int(store.query('SELECT count(*) AS n FROM sales')['n'][0])\n"
            "print(f'findings: {n} sales')"
        )
    ]
    nbformat.write(nb, notebook)
    home = tmp_path / "owner"
    owner = Share(sample_store, relay.url, home, "--dashboard", str(notebook), "--max-viewers", "1")
    try:
        link = parse_link(owner.link)
        with browser_page(1024, 900) as page:
            page.goto(owner.link, wait_until="domcontentloaded", timeout=120_000)
            page.get_by_text("findings: 20000 sales").wait_for(timeout=120_000)
            # One viewer is the cap here: the next one is told to wait, politely.
            busy = httpx.get(
                f"{link.share_url}/",
                headers={"Accept": "text/html", "Cookie": f"p2p2p_t={link.token}"},
            )
            assert busy.status_code == 503 and "Many people are looking" in busy.text
        # The dashboard's query went through the owner's audit log: an anonymous client
        # with the session it claimed written as a claim, not as who asked.
        lines = (home / "data" / "audit" / f"{link.share_id}.jsonl").read_text().splitlines()
        entries = [json.loads(line) for line in lines]
        mine = [e for e in entries if "count(*) AS n FROM sales" in e["statement"]]
        assert mine and all(e["client"] == "anonymous" for e in mine)
        assert all(len(e["claimed_session"]) == 16 for e in mine)
    finally:
        owner.stop()


BROWSER_KEY_JS = """async () => {
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open("p2p2p", 1); r.onsuccess = () => ok(r.result); r.onerror = no;
  });
  const pair = await new Promise((ok, no) => {
    const r = db.transaction("keys").objectStore("keys").get("identity");
    r.onsuccess = () => ok(r.result); r.onerror = no;
  });
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  let leaked = true;
  try { await crypto.subtle.exportKey("pkcs8", pair.privateKey); } catch (e) { leaked = false; }
  return {pub: btoa(String.fromCharCode(...raw)), extractable: pair.privateKey.extractable, leaked};
}"""


def test_a_viewer_signs_a_note_in_the_browser(dashboard: Share, tmp_path: Path) -> None:
    with browser_page(1024, 1200) as page:
        open_dashboard(page, dashboard.link)
        panel = page.locator(".p2p2p-notes")
        panel.get_by_text("signed with a key kept in this browser").wait_for(timeout=60_000)
        panel.get_by_placeholder("your name").fill("CFO")
        panel.locator("textarea").fill("Why is Q3 up?")
        panel.get_by_role("button", name="Post").click()
        panel.locator(".p2p2p-note", has_text="Why is Q3 up?").wait_for(timeout=60_000)
        assert "verified" in panel.locator(".p2p2p-note", has_text="Why is Q3 up?").inner_text()
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(SCREENSHOTS / "notes-panel.png"))
        key = page.evaluate(BROWSER_KEY_JS)
        assert key["extractable"] is False and key["leaked"] is False
        # The same browser keeps its key across visits (typing the share's address
        # without the token leads to its own origin, where the cookie and key live).
        open_dashboard(page, f"{parse_link(dashboard.link).share_url}/")
        panel = page.locator(".p2p2p-notes")
        panel.get_by_text("Why is Q3 up?").wait_for(timeout=60_000)
        assert page.evaluate(BROWSER_KEY_JS)["pub"] == key["pub"]

    exported = cli(dashboard.home, "notes", "export", "clinic")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    mine = [n for n in lines if n["body"] == "Why is Q3 up?"]
    import base64

    from p2p2p.identity import unb64

    assert mine and mine[0]["name"] == "CFO"
    assert unb64(mine[0]["author"]) == base64.b64decode(key["pub"])  # the browser's key
    path = tmp_path / "notes.jsonl"
    path.write_text(exported.stdout)
    # An auditor checks it with nothing but the export: the owner never had that key.
    checked = cli(tmp_path / "auditor", "notes", "verify", str(path))
    assert checked.returncode == 0, checked.stderr
