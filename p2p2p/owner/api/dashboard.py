"""The share's dashboard: every path the API does not answer itself, forwarded.

A share may name an upstream web app on this machine's loopback (its Voila process,
``owner.voila``). Requests reach it only after the gate, and only on the paths the
share allows (``Share.upstream_paths``); the forwarding itself (headers stripped, our
cookie removed) is ``owner.upstream``.

The viewer cap is enforced where kernels are made, inside the Voila process
(``owner.voila_kernels``): past it Voila answers a page load with 503, and the viewer
gets a "busy" page that retries by itself. Counting sessions here instead would let a
client that never opens a websocket start kernels without bound, and one that opens many
lock everyone else out.
"""

from __future__ import annotations

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException

from ... import pages
from ...errors import DashboardFailed
from ..shares import Share
from ..signin import VIEWER_HEADER
from ..upstream import Upstream
from .gate import COOKIE
from .http import Request, Response, error_response, html_response
from .live import with_live_script

__all__ = ["forward", "forward_websocket"]


async def forward(upstream: Upstream, share: Share, request: Request) -> Response:
    try:
        status, headers, body = await upstream.request(
            share.upstream,
            share.share_id,
            request.method,
            request.path,
            request.query,
            request.headers,
            request.body,
            COOKIE,
            _for_kernel(request),
        )
    except httpx.HTTPError:
        return html_response(502, pages.NO_DASHBOARD)
    if status == 503 and request.path == "/":
        await body.aclose()  # Voila's own error page: not what a viewer should read
        return html_response(503, pages.BUSY, {"retry-after": "5"})
    if request.path == "/" and str(headers.get("content-type", "")).startswith("text/html"):
        body = with_live_script(share.share_id, body)
    return Response(status, headers, body)


def _for_kernel(request: Request) -> dict[str, str] | None:
    """A signed-in viewer's page: the ticket its kernel presents to query as that viewer
    (Voila hands the header to the kernel it starts for this page; owner.signin)."""
    session = request.viewer_session
    return {VIEWER_HEADER: session.ticket} if session is not None else None


async def forward_websocket(
    upstream: Upstream, share: Share, request: Request
) -> Response | ClientConnection:
    """The upstream session for a viewer's WebSocket, or the response refusing it."""
    try:
        return await upstream.websocket(
            share.upstream, share.share_id, request.path, request.query, request.headers, COOKIE
        )
    except (OSError, WebSocketException, TimeoutError) as exc:
        return error_response(DashboardFailed(f"the dashboard did not answer: {exc}"))
