"""Forwarding to a share's local web app (its dashboard): the HTTP and WebSocket client.

A share may name an *upstream*, a web server on this machine's loopback (its Voila
process, ``owner.voila``, or one given with ``--upstream``). Viewers reach it only
through the share's path, after the gate (``owner.api.gate``); the upstream sees the
full path (``/s/<id>/…``), so it can be configured with that base URL and its links work
through the relay unchanged.

Our access cookie and the viewer's Authorization header never reach the upstream.
Browsers' Origin headers are rewritten to the upstream's own origin: the viewer was
already authenticated here, and the upstream's same-origin check cannot know the relay.

What a browser may keep is decided here, on the way out (``cache_policy``): Voila's
versioned files for a year, its other files only after asking again (a 304 when they did
not change), everything else never. The relay keeps nothing; it passes the validators
and the 304s through. Voila's text files are gzipped here, before the tunnel, which is
the narrow link (``compressible``).
"""

from __future__ import annotations

import re
import urllib.parse
import zlib
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from ..errors import BadTarget

# The validators go both ways, so a browser's revalidation reaches the upstream and its
# 304 comes back. No content-length goes back: the body may be gzipped here, and the relay
# counts what it sends (or chunks it).
REQUEST_HEADERS = (
    "content-type",
    "accept",
    "cookie",
    "user-agent",
    "x-xsrftoken",
    "if-none-match",
    "if-modified-since",
)
RESPONSE_HEADERS = (
    "content-type",
    "cache-control",
    "set-cookie",
    "location",
    "etag",
    "last-modified",
    "content-encoding",
    "vary",
)
# Voila's own files, the same for every viewer of every share: its scripts, its
# templates' styles, the JupyterLab extensions it loads. Not voila/files (the owner's
# images next to the notebook) and none of its API.
STATIC_PATH = re.compile(r"/voila/(static|templates|labextensions)/[^?#]+")
# Voila names a file's content in its address (``?v=<hash>``) for its templates' files
# and the extensions: a new version is a new address, so the old one can be kept a year.
IMMUTABLE = "public, max-age=31536000, immutable"
# Its scripts under voila/static (``voila.js``, ``8925.voila.js``) keep their address
# across Voila versions, so they are not kept for good: for ten minutes without asking
# (a viewer back within them makes ~80 fewer round trips through the tunnel, which cost
# more than the bytes), then each is asked about again and mostly gets a 304. After the
# owner upgrades Voila, a page may run its old scripts for those ten minutes at most.
REVALIDATE = "private, max-age=600"
# Never: pages, kernels and whatever else an upstream answers without a word about it.
UNCACHEABLE = "no-store"
COMPRESSIBLE = (
    "text/javascript",
    "application/javascript",
    "text/css",
    "application/json",
    "image/svg+xml",
)
GZIP_LEVEL = 6  # Voila's ~5 MB of scripts and styles: ~0.2 s of one core, 3.4x smaller
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


def versioned(path: str, query: str) -> bool:
    """An address that names its content: a static file of Voila's with ``?v=``, and no
    token (an address with the token in it is never kept anywhere)."""
    fields = urllib.parse.parse_qs(query, keep_blank_values=True)
    return (
        STATIC_PATH.fullmatch(path) is not None and any(fields.get("v", [])) and "t" not in fields
    )


def cache_policy(path: str, query: str, status: int, passed: dict[str, Any]) -> None:
    """What the browser may keep of this answer, and for how long (``passed`` in place)."""
    static = STATIC_PATH.fullmatch(path) is not None
    if static:
        _validators_for_gzip(passed)
    if "t" in urllib.parse.parse_qs(query, keep_blank_values=True):
        passed["cache-control"] = UNCACHEABLE  # the token's address is kept nowhere
    elif not static:
        passed.setdefault("cache-control", UNCACHEABLE)
    elif status in (200, 304) and versioned(path, query):
        # Only a good answer, or the 304 that renews one (a 304's headers replace the
        # kept ones: without this, a copy kept before would stay "ask again" for good).
        # An error kept for a year would break the dashboard after the file comes back.
        passed["cache-control"] = IMMUTABLE
        # "public" lets any cache keep it: never with a viewer's cookie in it (Jupyter
        # sets its anonymous user cookie on some of these answers).
        passed.pop("set-cookie", None)
    elif status in (200, 304):
        passed["cache-control"] = REVALIDATE
    else:
        passed.setdefault("cache-control", UNCACHEABLE)


def _validators_for_gzip(passed: dict[str, Any]) -> None:
    """A static file's headers as they must be when its body may be gzipped here."""
    etag = passed.get("etag")
    if isinstance(etag, str) and not etag.startswith("W/"):
        # The gzipped body is another representation of the same content: a strong tag
        # would claim the bytes are the same. If-None-Match compares weakly anyway.
        passed["etag"] = f"W/{etag}"
    # Whether it is gzipped depends on the request's Accept-Encoding, for the 304 too.
    vary = str(passed.get("vary", ""))
    if "accept-encoding" not in vary.lower():
        passed["vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether the browser takes gzip (``gzip`` or ``*``, without ``q=0``)."""
    wanted: dict[str, bool] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        q = params.strip()
        try:
            wanted[coding.strip()] = float(q[2:]) > 0 if q.startswith("q=") else True
        except ValueError:
            wanted[coding.strip()] = False  # a q we cannot read: not a yes
    return wanted.get("gzip", wanted.get("*", False))


def compressible(path: str, status: int, passed: dict[str, Any], accept_encoding: str) -> bool:
    """Whether to gzip this answer here, before the tunnel.

    Only Voila's static text files, which hold no secret. Never a page or an API answer
    (dynamic HTML, kernels, queries): those can hold a secret (a kernel id, an XSRF
    token, a store value) next to input someone else chose (an address, a SQL box), and
    the compressed length would then tell that someone the secret bit by bit (BREACH).
    """
    kind = str(passed.get("content-type", "")).partition(";")[0].strip().lower()
    return (
        status == 200
        and STATIC_PATH.fullmatch(path) is not None
        and "content-encoding" not in passed  # the upstream's own encoding stays as it is
        and kind in COMPRESSIBLE
        and accepts_gzip(accept_encoding)
    )


async def gzipped(body: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """``body`` gzipped as it streams (wbits 31: the gzip format, not bare zlib)."""
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    try:
        async for piece in body:
            packed = packer.compress(piece)
            if packed:
                yield packed
        yield packer.flush()
    finally:
        await body.aclose()


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
            # Plain bytes on loopback (httpx would ask for gzip): what is compressed, and
            # for whom, is decided below.
            headers={
                **_headers(headers, own_cookie, upstream),
                "accept-encoding": "identity",
                **(added or {}),
            },
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
        status = response.status_code
        cache_policy(path, query, status, passed)

        async def body_pieces() -> AsyncGenerator[bytes, None]:
            try:
                async for piece in response.aiter_raw():
                    yield piece
            finally:
                await response.aclose()

        pieces = body_pieces()
        if compressible(path, status, passed, headers.get("accept-encoding", "")):
            passed["content-encoding"] = "gzip"
            pieces = gzipped(pieces)
        return status, passed, pieces

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
