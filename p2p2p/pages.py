"""The HTML a browser gets from a share or a relay: the landing page and the error pages.

Everything shown is escaped (names and columns come from the owner's store, but a page
must never depend on that being benign). No scripts, no external resources, and every
page goes out with ``HEADERS``, whoever serves it (the owner's API or the relay).
"""

from __future__ import annotations

import html
from typing import Any

__all__ = [
    "BAD_TOKEN",
    "BUSY",
    "HEADERS",
    "INVITED_ONLY",
    "NO_DASHBOARD",
    "OFFLINE",
    "SIGNIN_HEADERS",
    "landing",
    "problem",
    "signin",
]

# Sent with every page: no script may run, nothing is fetched from elsewhere, no other
# page may frame it, the link (with its token) never leaks as a Referer, and nothing is
# cached.
HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}

# The sign-in page runs one script, the owner's own (/.p2p2p/signin.js), and talks to
# nothing but the share.
SIGNIN_HEADERS = {
    **HEADERS,
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}

STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:56rem;padding:1rem;"
    "color:#1f2328}h1{font-size:1.4rem;margin:.2rem 0}.muted{color:#59636e}"
    ".badge{display:inline-block;padding:0 .5em;border-radius:1em;color:#fff;"
    "background:#1a7f37;font-size:.8rem;vertical-align:middle}"
    "table{border-collapse:collapse;margin:.3rem 0 1rem}td,th{padding:.2rem .6rem;"
    "border-bottom:1px solid #d1d9e0;text-align:left}td.n{text-align:right}"
    "code{font-size:.85em;word-break:break-all}"
)


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<meta name=referrer content=no-referrer><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><body>{body}</body></html>"
    ).encode()


def landing(info: dict[str, Any], owner_fingerprint: str, schema: dict[str, Any]) -> bytes:
    name = str(info.get("title") or info.get("name", "share"))
    rows = "".join(
        f"<tr><td>{html.escape(str(r.get('name', '')))}</td>"
        f"<td class=muted>{html.escape(str(r.get('kind', '')))}</td>"
        f"<td class=n>{'' if r.get('rows') is None else format(int(r['rows']), ',')}</td>"
        f"<td class=muted>{html.escape(', '.join(str(c.get('name', '')) for c in r.get('columns', [])))}</td></tr>"
        for r in schema.get("relations", [])
    )
    body = (
        f"<h1>{html.escape(name)} <span class=badge>live</span></h1>"
        f"<p class=muted>Shared read-only from its owner's machine. Owner key "
        f"<code>{html.escape(owner_fingerprint)}</code>.</p>"
        "<table><thead><tr><th>table</th><th></th><th>rows</th><th>columns</th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=4>no tables</td></tr>'}</tbody></table>"
        "<p class=muted>Query it from Python with <code>p2p2p.connect(link)</code> or from a "
        "notebook with <code>%%p2pquery</code>.</p>"
    )
    return _page(name, body)


def problem(title: str, message: str) -> bytes:
    return _page(title, f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>")


OFFLINE = problem(
    "This share is offline",
    "Its owner stopped sharing it, or is not connected right now, or the link is wrong. "
    "Nothing of the data is kept anywhere else.",
)
BAD_TOKEN = problem(
    "This link does not work",
    "Its access token is missing, wrong or has been revoked. Ask the owner for a new link.",
)
INVITED_ONLY = problem(
    "This share is for invited viewers",
    "Its owner opens it only to people whose key they listed. From Python or a notebook, "
    "connect with p2p2p.connect(link), which signs with your key; to be added, send the "
    "owner the public key that `p2p2p keys` prints; in a browser, open the invite link "
    "the owner sent you.",
)
NO_DASHBOARD = problem(
    "The dashboard is not running",
    "The owner's machine answered, but its dashboard did not. Try again in a moment.",
)
BUSY = _page(
    "Busy",
    "<meta http-equiv=refresh content=5><h1>Many people are looking right now</h1>"
    "<p>This dashboard has as many viewers as its owner allows. This page tries again by "
    "itself every few seconds.</p>",
)


def signin(name: str, share_id: str, enrolling: bool) -> bytes:
    """The page that signs a browser in to an identified share (``owner/signin.js``)."""
    what = (
        "Accepting the invitation with this browser's key."
        if enrolling
        else "This share is open to invited viewers. Signing in with this browser's key."
    )
    body = (
        f"<h1>{html.escape(name)}</h1><p>{html.escape(what)}</p>"
        '<p id="status" role="status">Signing in…</p>'
        '<p class="muted">This browser\'s key: <code id="key">…</code>. Its private half never '
        "leaves this browser. Not invited yet? Send the owner this fingerprint and ask for an "
        "invite link, then open it in this browser.</p>"
        f'<script type="module" src="/s/{html.escape(share_id)}/.p2p2p/signin.js"></script>'
    )
    return _page(name, body)
