"""Forwarding to a share's local web app (its dashboard): the HTTP and WebSocket client.

A share may name an *upstream*, a web server on this machine's loopback (its Voila
process, ``owner.voila``, or one given with ``--upstream``). Viewers reach it only
through the share's path, after the gate (``owner.api.gate``); the upstream sees the
full path (``/s/<id>/…``), so it can be configured with that base URL and its links work
through the relay unchanged.

Our access cookie and the viewer's Authorization header never reach the upstream.
Browsers' Origin headers are rewritten to the upstream's own origin: the viewer was
already authenticated here, and the upstream's same-origin check cannot know the relay.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from ..errors import BadTarget

REQUEST_HEADERS = ("content-type", "accept", "cookie", "user-agent", "x-xsrftoken")
RESPONSE_HEADERS = ("content-type", "cache-control", "set-cookie", "location", "etag")
# Added to every page of a dashboard: no other page may frame it (a hostile page could
# otherwise overlay it and steer the viewer's clicks); scripts, styles, fonts, images and
# connections come from the share's own origin only, so a script that got into a page
# (a store value rendered as HTML, say) cannot send what it reads to another host by
# fetch, WebSocket, image, beacon or form, nor load code from elsewhere; Voila's
# template asks a public CDN for an icon font, which would tell that CDN who is looking
# at which share. Voila's pages run inline scripts and anywidget imports its modules
# from blob: URLs, so those two stay allowed (docs/security.md says what that leaves).
# And the viewer's address, which names the share, is not sent along with any request.
PAGE_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
MAX_WS_MESSAGE = 16 << 20
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_upstream(url: str) -> str:
    """An upstream must be plain HTTP on loopback: nothing else may be put behind a link."""
    parts = urllib.parse.urlsplit(url)
    if (
        parts.scheme != "http"
        or parts.hostname not in LOOPBACK_HOSTS
        or parts.path not in ("", "/")
    ):
        raise BadTarget(
            f"the dashboard server must be http://127.0.0.1:PORT on this machine, got {url!r}"
        )
    return f"http://{parts.netloc}"


def without_cookie(header: str, name: str) -> str:
    return "; ".join(
        part.strip()
        for part in header.split(";")
        if part.strip() and part.strip().partition("=")[0] != name
    )


def _headers(headers: dict[str, str], own_cookie: str, upstream: str) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k in REQUEST_HEADERS}
    if "cookie" in out:
        out["cookie"] = without_cookie(out["cookie"], own_cookie)
        if not out["cookie"]:
            del out["cookie"]
    if "origin" in headers:
        out["origin"] = upstream
    return out


def _target(upstream: str, share_id: str, path: str, query: str) -> str:
    rest = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k != "t"]
    suffix = "?" + urllib.parse.urlencode(rest) if rest else ""
    return f"{upstream}/s/{share_id}{path}{suffix}"


class Upstream:
    """One HTTP client for every share's upstream, on the owner's event loop."""

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=None), trust_env=False)
        return self._http

    async def request(
        self,
        upstream: str,
        share_id: str,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        own_cookie: str,
        added: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any], AsyncGenerator[bytes, None]]:
        """``added``: headers of ours for the upstream (after the viewer's are filtered,
        so a viewer can never send one of them itself)."""
        request = self.http().build_request(
            method,
            _target(upstream, share_id, path, query),
            headers={**_headers(headers, own_cookie, upstream), **(added or {})},
            content=body or None,
        )
        response = await self.http().send(request, stream=True)
        passed: dict[str, Any] = {}
        for key, value in response.headers.multi_items():
            key = key.lower()
            if key not in RESPONSE_HEADERS:
                continue
            if key == "location" and value.startswith(upstream):
                value = value[len(upstream) :]  # stays on the relay's address
            if key == "set-cookie":
                passed.setdefault(key, []).append(value)
            else:
                passed[key] = value
        if str(passed.get("content-type", "")).startswith("text/html"):
            passed.update(PAGE_HEADERS)

        async def body_pieces() -> AsyncGenerator[bytes, None]:
            try:
                async for piece in response.aiter_raw():
                    yield piece
            finally:
                await response.aclose()

        return response.status_code, passed, body_pieces()

    async def websocket(
        self,
        upstream: str,
        share_id: str,
        path: str,
        query: str,
        headers: dict[str, str],
        own_cookie: str,
    ) -> ClientConnection:
        forwarded = _headers(headers, own_cookie, upstream)
        origin = forwarded.pop("origin", None)
        protocols = [
            p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()
        ]
        return await connect(
            "ws" + _target(upstream, share_id, path, query)[4:],
            additional_headers=forwarded,
            origin=origin,  # type: ignore[arg-type]
            subprotocols=protocols or None,  # type: ignore[arg-type]
            max_size=MAX_WS_MESSAGE,
            compression=None,
            open_timeout=30,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
