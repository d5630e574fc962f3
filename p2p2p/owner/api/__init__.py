"""The share's HTTP API: everything under ``/s/<share id>/`` that reaches the owner.

Framework-neutral: a ``Request`` in, a ``Response`` out (``http``), whoever carries
them (the tunnel client today; tests call ``ShareApi`` directly). Every request passes
the one ``gate`` first, then goes to its endpoint, one module each:

==========================  ===========  ============================================
path                        module       what it does
==========================  ===========  ============================================
``POST /.p2p2p/e2e``        ``e2e``      a program's end-to-end encrypted request
``/api/query``              ``query``    SQL over plain HTTP (JSON or Arrow)
(e2e ``notes``/``post_note``) ``notes``  signed notes, long-polled
``/``, ``/api/info|schema`` ``about``    the landing page and what the share is
``/.p2p2p/live[.js]``       ``live``     every dashboard page's offline banner
anything else               ``dashboard`` the share's Voila app, if it has one
==========================  ===========  ============================================

Queries go through the share's executor (the store's single enforcement point) and are
written to its audit log (``results``).
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection

from ...errors import NotFound, P2P2PError
from ..shares import ShareManager
from ..upstream import Upstream
from . import about, dashboard, gate, live, signin
from .access import session_tables
from .e2e import e2e
from .http import Request, Response, error_response
from .query import plain_query

__all__ = ["Request", "Response", "ShareApi"]


class ShareApi:
    """The API of every share a ``ShareManager`` holds."""

    def __init__(self, manager: ShareManager, upstream: Upstream | None = None) -> None:
        self.manager = manager
        self.upstream = upstream or Upstream()

    async def handle(self, request: Request) -> Response:
        admitted = gate.admit(self.manager, request)
        if isinstance(admitted, Response):
            return admitted
        share = admitted
        try:
            if request.path == gate.E2E_PATH and request.method == "POST":
                return await e2e(self.manager, share, request)
            if request.path in gate.LIVE_PATHS:
                return live.serve(request)
            if request.path in gate.SIGNIN_PATHS:
                return await signin.serve(share, request)
            if share.upstream and request.path not in gate.OWN_PATHS:
                return await dashboard.forward(self.upstream, share, request)
            if request.path == "/" and request.wants_html:
                session = request.viewer_session
                tables = session_tables(share, session)
                return await about.landing(share, self.manager.identity.fingerprint, tables)
            if request.path == "/api/info":
                return about.info_response(share)
            if request.path == "/api/schema":
                return await about.schema_response(share)
            if request.path == "/api/query":
                return await plain_query(share, request)
            raise NotFound(f"no such endpoint {request.path}")
        except P2P2PError as exc:
            return error_response(exc)

    async def open_websocket(self, request: Request) -> Response | ClientConnection:
        """The dashboard session for a viewer's WebSocket, or the response refusing it."""
        admitted = gate.admit(self.manager, request, websocket=True)
        if isinstance(admitted, Response):
            return admitted
        return await dashboard.forward_websocket(self.upstream, admitted, request)

    async def close(self) -> None:
        await self.upstream.close()
