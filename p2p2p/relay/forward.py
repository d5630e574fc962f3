"""Viewers' requests under ``/s/<share id>/``, carried to the owner through its tunnel.

``ShareHandler`` forwards an HTTP request as one tunnel stream and streams the answer
back; ``ShareSocketHandler`` carries a viewer's WebSocket (a dashboard's kernel) as a
stream that stays open. Both keep the relay's memory bounded by the tunnel's credit:
credit goes back to the owner only once the viewer's connection has taken the bytes,
and a viewer's next message is read only once the previous one fitted the window.

The relay decides nothing about access: the owner checks every request. What it does
check is what only it can see: request size, and that a WebSocket comes from a page of
this relay (so a page elsewhere cannot open a session with a viewer's cookie). Nor does
it keep anything: the owner's validators, 304s and gzipped bodies pass as they are.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import tornado.httputil
import tornado.routing
import tornado.web
import tornado.websocket

from .. import pages
from ..aio import spawn
from ..aio.tunnel import TunnelStream
from ..errors import LocalProtocolError, ProtocolError, StreamGone
from ..identity import b64
from ..protocol.tunnel import (
    DEFAULT_MAX_STREAMS,
    LIVE_PATH,
    MAX_REQUEST_BODY,
    ORIGIN_HEADER,
    OWNER_PATH,
    SHARE_ORIGIN_HEADER,
    DataReceived,
    ResponseHeadParser,
    StreamEnded,
    StreamReset,
    WsMessageParser,
    encode_ws_message,
)
from .origins import share_of_host, share_origin
from .routes import Relay
from .tunnels import Tunnel

__all__ = ["SHARE_PATH", "ShareHandler", "ShareSocketHandler", "UpgradeMatches"]

SHARE_PATH = r"/s/([a-z2-7]{32})(/.*)?"
VIEWER_MAX_MESSAGE = 8 << 20
FORWARDED_REQUEST_HEADERS = (
    "content-type",
    "accept",
    "cookie",
    "authorization",
    "user-agent",
    "accept-encoding",
    "x-forwarded-proto",  # only decides the cookie's Secure flag
    "x-xsrftoken",
    "origin",
    "sec-websocket-protocol",
    # A browser's revalidation of what it kept: the owner's upstream answers it.
    "if-none-match",
    "if-modified-since",
)
FORWARDED_RESPONSE_HEADERS = (
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "content-encoding",  # the owner gzips Voila's files before the tunnel
    "vary",
    "set-cookie",
    "location",
    "content-disposition",
    "x-p2p2p-truncated",
    "content-security-policy",
    "referrer-policy",
    "x-content-type-options",
    "x-frame-options",
    "retry-after",
)


def copy_headers(handler: tornado.web.RequestHandler, head: dict[str, Any]) -> None:
    """The owner's response headers that may reach the client (a list repeats one)."""
    for key, value in dict(head.get("headers") or {}).items():
        if str(key).lower() not in FORWARDED_RESPONSE_HEADERS:
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            continue
        # The first replaces tornado's default (it sets Content-Type: text/html on every
        # answer, which would otherwise go out as a second Content-Type).
        handler.set_header(str(key), str(values[0]))
        for one in values[1:]:
            handler.add_header(str(key), str(one))


def request_head(
    request: tornado.httputil.HTTPServerRequest, share_id: str, rest: str, relay: Relay
) -> dict[str, Any]:
    headers = {
        k.lower(): v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS
    }
    # Written by the relay, never taken from the client (not in the allow-list above).
    if share_of_host(request.headers.get("Host", "")) == share_id:
        headers[ORIGIN_HEADER] = "share"
    else:
        headers[ORIGIN_HEADER] = "relay"
        origin = share_origin(request, share_id, relay.config.share_origins)
        if origin is not None:
            headers[SHARE_ORIGIN_HEADER] = origin
    return {
        "share_id": share_id,
        "method": request.method,
        "path": rest or "/",
        "query": request.query,
        "headers": headers,
    }


# An owner's tunnel carries at most DEFAULT_MAX_STREAMS streams for all its shares: no one
# share may take more than this part of them, and no one client address more than this
# many (long-polls and kernel websockets each hold a stream for as long as they last).
STREAMS_PER_SHARE = DEFAULT_MAX_STREAMS * 3 // 4
STREAMS_PER_CLIENT = 32


def client_of(relay: Relay, request: tornado.httputil.HTTPServerRequest) -> str:
    """The client's address (behind a known proxy, the one it forwards for)."""
    return relay.clients.of(request)


def over_stream_limits(tunnel: Tunnel, share_id: str, relay: Relay, client: str) -> str | None:
    """Why a new stream for this request would take more than its part, if it would."""
    streams = list(tunnel.streams.values())
    if sum(1 for s in streams if s.head.get("share_id") == share_id) >= STREAMS_PER_SHARE:
        return "this share has as many requests open as it may: try again in a moment"
    # A proxy that did not say whom it forwards for stands for many clients: the share's
    # limit above still holds for it.
    mine = sum(1 for s in streams if s.opened_for == client)
    if relay.clients.limited(client) and mine >= STREAMS_PER_CLIENT:
        return "too many requests open from your address: close some and try again"
    return None


def other_shares_origin(request: tornado.httputil.HTTPServerRequest, share_id: str) -> bool:
    """A request on one share's origin for another share's path: never forwarded (it
    would put that share's pages, and its cookie's reach, on the wrong origin)."""
    host_share = share_of_host(request.headers.get("Host", ""))
    return host_share is not None and host_share != share_id


def json_error(handler: tornado.web.RequestHandler, status: int, code: str, message: str) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"error": code, "message": message}))


class ShareHandler(tornado.web.RequestHandler):
    """Everything under ``/s/<share_id>/``: forwarded to the owner through its tunnel."""

    relay: Relay

    def initialize(self, relay: Relay) -> None:
        self.relay = relay
        self.stream: TunnelStream | None = None

    def check_xsrf_cookie(self) -> None:
        pass  # the owner authenticates every request itself

    def compute_etag(self) -> str | None:
        # A pipe: no validators of its own. Tornado would hash a body it holds whole and
        # answer a 304 itself, after the owner had sent it all through the tunnel anyway;
        # and its tag in If-None-Match would make the upstream ignore If-Modified-Since.
        return None

    async def get(self, share_id: str, rest: str) -> None:
        await self.forward(share_id, rest)

    async def post(self, share_id: str, rest: str) -> None:
        await self.forward(share_id, rest)

    async def forward(self, share_id: str, rest: str) -> None:
        if other_shares_origin(self.request, share_id):
            json_error(self, 404, "not_found", "this address belongs to another share")
            return
        route = self.relay.routes.get(share_id)
        if rest == LIVE_PATH:
            # Every open dashboard page asks this every few seconds (dashboards/live.js):
            # answered here from the routes, it costs the owner's machine nothing.
            self.set_header("Cache-Control", "no-store")
            if route is None:
                json_error(self, 404, "offline", "this share is offline or has been revoked")
            else:
                self.finish({"live": True})
            return
        if route is None and "text/html" in self.request.headers.get("Accept", ""):
            self.set_status(404)
            for key, value in pages.HEADERS.items():
                self.set_header(key, value)
            self.finish(pages.OFFLINE)
            return
        if route is None:
            json_error(
                self,
                404,
                "offline",
                "this share is offline or has been revoked (or the link is wrong)",
            )
            return
        tunnel, share = route
        if rest == OWNER_PATH:
            # Answered by the relay: clients check this key against the share id themselves.
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps(
                    {"share_id": share_id, "name": share.name, "owner": b64(tunnel.owner_key)}
                )
            )
            return
        if len(self.request.body) > MAX_REQUEST_BODY:
            json_error(
                self, 413, "too_large", f"request bodies are limited to {MAX_REQUEST_BODY} bytes"
            )
            return
        head = request_head(self.request, share_id, rest, self.relay)
        client = client_of(self.relay, self.request)
        crowded = over_stream_limits(tunnel, share_id, self.relay, client)
        if crowded is not None:
            self.set_header("Retry-After", "5")
            json_error(self, 503, "busy", crowded)
            return
        try:
            self.stream = stream = tunnel.open(head, self.request.body)
        except (LocalProtocolError, StreamGone) as exc:
            json_error(self, 503, "offline", f"the owner cannot take requests right now ({exc})")
            return
        stream.opened_for = client
        await tunnel.flush()
        parser = ResponseHeadParser()
        started = False
        unflushed = 0
        try:
            while True:
                if started or not stream.events.empty():
                    event = await stream.events.get()  # at once when one is queued
                else:  # asyncio.timeout, not wait_for: that one makes a task per call
                    async with asyncio.timeout(self.relay.config.response_timeout_s):
                        event = await stream.events.get()
                if isinstance(event, StreamReset):
                    raise StreamGone(event.reason or event.code)
                if isinstance(event, DataReceived):
                    body = parser.feed(event.data)
                    if parser.head is not None and not started:
                        started = True
                        self.set_status(int(parser.head["status"]))
                        copy_headers(self, parser.head)
                    if body:
                        self.write(body)
                    unflushed += len(event.data)
                    if event.ended:
                        break  # finish() sends the rest, with Content-Length if it is all
                    # Frames that already arrived go out in one write; credit returns only
                    # once the client's connection has taken the bytes.
                    if stream.events.empty():
                        await self.flush()
                        stream.consumed(unflushed)
                        unflushed = 0
                        await tunnel.flush()
                if isinstance(event, StreamEnded):
                    break
            if not started:
                raise StreamGone("the owner ended the response without a head")
            self.finish()
        except (StreamGone, ProtocolError, TimeoutError) as exc:
            if not started:
                json_error(self, 502, "offline", f"the share went offline while answering ({exc})")
            else:
                # Headers are out: cut the connection so the client sees an incomplete body.
                self.request.connection.close()  # type: ignore[union-attr]
        finally:
            stream.reset("cancelled")

    def on_connection_close(self) -> None:
        stream = self.stream
        if stream is not None and stream.is_open:
            stream.reset("cancelled", "the client went away")
            stream.events.put_nowait(StreamReset(stream.stream_id, "cancelled", "client went away"))


def same_origin(request: tornado.httputil.HTTPServerRequest) -> bool:
    """Whether a request comes from a page of this relay (or from a program, which sends
    no Origin). The dashboards' sessions are same-origin by construction."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return fetch_site is None
    if fetch_site is not None:
        return False
    return urllib.parse.urlsplit(origin).netloc.lower() == request.headers.get("Host", "").lower()


class UpgradeMatches(tornado.routing.PathMatches):
    """A share path requested as a WebSocket upgrade."""

    def match(self, request: tornado.httputil.HTTPServerRequest) -> dict[str, Any] | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        return super().match(request)


class ShareSocketHandler(tornado.websocket.WebSocketHandler):
    """A viewer's WebSocket under ``/s/<share_id>/``, carried as a tunnel session.

    The owner decides first (token, path, its dashboard's answer); only its 101 upgrades
    the browser. Tornado's own same-origin check stays on: a page elsewhere cannot open
    a session with the viewer's cookie.
    """

    relay: Relay

    def initialize(self, relay: Relay) -> None:
        self.relay = relay
        self.session: TunnelStream | None = None
        self.parser = WsMessageParser()
        self.chosen: str | None = None
        self.early = b""  # session bytes that came with the owner's 101
        self.pump: asyncio.Task[None] | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        share_id, rest = args[0], args[1]
        if not same_origin(self.request):
            # Before the owner hears of it: a page on another site gets nothing started.
            json_error(self, 403, "forbidden", "cross-origin sessions are not allowed")
            return
        if other_shares_origin(self.request, share_id):
            json_error(self, 404, "not_found", "this address belongs to another share")
            return
        route = self.relay.routes.get(share_id)
        if route is None:
            json_error(self, 404, "offline", "this share is offline or has been revoked")
            return
        tunnel = route[0]
        head = {**request_head(self.request, share_id, rest, self.relay), "websocket": True}
        client = client_of(self.relay, self.request)
        crowded = over_stream_limits(tunnel, share_id, self.relay, client)
        if crowded is not None:
            json_error(self, 503, "busy", crowded)
            return
        try:
            self.session = session = tunnel.open(head, b"", session=True)
            session.opened_for = client
            await tunnel.flush()
            answer, self.early = await self._owner_answer(session)
        except (ProtocolError, StreamGone, TimeoutError) as exc:
            self._forget()
            json_error(self, 502, "offline", f"the share cannot take sessions now ({exc})")
            return
        if answer["status"] != 101:
            self.set_status(int(answer["status"]))
            copy_headers(self, answer)
            self.finish(self.early + await self._rest_of_refusal(session))
            self._forget()
            return
        self.chosen = dict(answer.get("headers") or {}).get("sec-websocket-protocol")
        await super().get(*args, **kwargs)

    async def _owner_answer(self, session: TunnelStream) -> tuple[dict[str, Any], bytes]:
        parser = ResponseHeadParser()
        deadline = self.relay.config.response_timeout_s
        while parser.head is None:
            event = await asyncio.wait_for(session.events.get(), deadline)
            if isinstance(event, StreamReset):
                raise StreamGone(event.reason or event.code)
            if isinstance(event, StreamEnded):
                raise StreamGone("the owner ended the session before answering")
            if isinstance(event, DataReceived):
                rest = parser.feed(event.data)
                # Credit for the head now; for what follows it once the viewer has it.
                session.consumed(len(event.data) - len(rest))
                if parser.head is not None:
                    return parser.head, rest
        raise StreamGone("no answer")  # not reached: the loop returns or raises

    async def _rest_of_refusal(self, session: TunnelStream) -> bytes:
        body = b""
        while len(body) < MAX_REQUEST_BODY:
            event = await asyncio.wait_for(session.events.get(), 30)
            if isinstance(event, DataReceived):
                body += event.data
            if isinstance(event, StreamReset | StreamEnded) or (
                isinstance(event, DataReceived) and event.ended
            ):
                break
        return body

    @property
    def max_message_size(self) -> int:
        # Kernel messages can carry widget state or images: larger than tunnel frames
        # (they are split across DATA frames), yet bounded per viewer.
        return VIEWER_MAX_MESSAGE

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self.chosen if self.chosen in subprotocols else None

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.pump = spawn(self._to_viewer())

    async def _to_viewer(self) -> None:
        session = self.session
        assert session is not None
        try:
            pending = self.early
            while True:
                for message in self.parser.feed(pending):
                    await self.write_message(message, binary=isinstance(message, bytes))
                if pending:
                    session.consumed(len(pending))
                    await session.tunnel.flush()
                event = await session.events.get()
                if isinstance(event, DataReceived):
                    pending = event.data
                    if event.ended:
                        for message in self.parser.feed(pending):
                            await self.write_message(message, binary=isinstance(message, bytes))
                        break
                elif isinstance(event, StreamReset | StreamEnded):
                    break
                else:
                    pending = b""
        except (tornado.websocket.WebSocketClosedError, ProtocolError):
            pass
        self.close()

    async def on_message(self, message: str | bytes) -> None:
        # Tornado reads the viewer's next message only when this returns: backpressure.
        session = self.session
        if session is None:
            return
        try:
            await session.send(encode_ws_message(message))
        except StreamGone:
            self.close()

    def on_close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        self._forget()

    def _forget(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.reset("cancelled", "the viewer left")
