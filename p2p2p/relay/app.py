"""The relay: a stateless pipe between share links and owners' outbound tunnels.

Owners dial in over a websocket (``/tunnel``), prove their share ids (``registration``)
and answer requests for ``/s/<share_id>/...`` through the tunnel (``tunnel``). The relay
keeps only an in-memory routing table; it stores nothing on disk and can restart at any
time (owners reconnect by themselves).

Memory is bounded per stream by the tunnel's flow control: the owner may have at most
one window of response bytes in flight per request, and the relay returns credit only
after the client's connection has taken the bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import logging
import time
import urllib.parse
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.routing
import tornado.web
import tornado.websocket

from ..aio import pages, spawn
from ..identity import b64
from ..protocol import registration
from ..protocol.tunnel import (
    Connection,
    ControlReceived,
    DataReceived,
    ProtocolError,
    ResponseHeadParser,
    StreamEnded,
    StreamReset,
    WindowOpened,
    WsMessageParser,
    encode_ws_message,
)

log = logging.getLogger("p2p2p.relay")

MAX_REQUEST_BODY = 1 << 20
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
)
FORWARDED_RESPONSE_HEADERS = (
    "content-type",
    "cache-control",
    "set-cookie",
    "location",
    "content-disposition",
    "x-p2p2p-truncated",
    "content-security-policy",
    "referrer-policy",
    "x-content-type-options",
)


@dataclasses.dataclass
class RelayConfig:
    heartbeat_s: float = 5.0
    missed_beats: int = 3  # an owner silent this many beats is stale and disconnected
    response_timeout_s: float = 120.0  # until the owner sends the response head
    register_timeout_s: float = 10.0


class StreamGone(Exception):
    """The owner reset the stream or the tunnel closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProxiedStream:
    """The relay's view of one request on a tunnel: response events arrive in a queue."""

    def __init__(self, tunnel: Tunnel, stream_id: int) -> None:
        self.tunnel = tunnel
        self.stream_id = stream_id
        # Bounded by the tunnel window: the owner cannot send more than that unacknowledged.
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.window = asyncio.Event()


class Tunnel:
    def __init__(self, handler: TunnelHandler, relay: Relay) -> None:
        self.handler = handler
        self.relay = relay
        self.conn = Connection(initiator=True)
        self.challenge = registration.new_challenge()
        self.owner_key = b""
        self.shares: list[registration.ShareAd] = []
        self.streams: dict[int, ProxiedStream] = {}
        self.last_seen = time.monotonic()
        self.closed = False
        self.registered = asyncio.Event()

    async def flush(self) -> None:
        for frame in self.conn.data_to_send():
            try:
                await self.handler.write_message(frame, binary=True)
            except tornado.websocket.WebSocketClosedError:
                self.close("tunnel closed")
                return

    def on_message(self, message: bytes) -> None:
        self.last_seen = time.monotonic()
        events = self.conn.receive(message)
        for event in events:
            if isinstance(event, ControlReceived):
                self.on_control(event.message)
                continue
            stream = self.streams.get(getattr(event, "stream_id", -1))
            if stream is None:
                continue
            if isinstance(event, WindowOpened):
                stream.window.set()
            else:
                stream.events.put_nowait(event)
                if isinstance(event, StreamReset):
                    self.streams.pop(stream.stream_id, None)

    def on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "register" and self.challenge:
            challenge, self.challenge = self.challenge, ""  # each challenge answers once
            try:
                owner_key, shares = registration.check(message, challenge)
                if self.registered.is_set() and owner_key != self.owner_key:
                    raise registration.RegistrationRefused("a tunnel serves one owner key")
            except registration.RegistrationRefused as exc:
                self.conn.control({"type": "refused", "message": exc.message})
                spawn(self._refuse())
                return
            # A re-registration replaces the share list: what is no longer there is gone.
            dropped = {s.share_id for s in self.shares} - {s.share_id for s in shares}
            self.owner_key, self.shares = owner_key, shares
            self.relay.unregister(self, dropped)
            self.relay.register(self)
            self.registered.set()
            self.conn.control({"type": "registered", "shares": [s.share_id for s in self.shares]})
            spawn(self.flush())
        elif kind == "rechallenge" and self.registered.is_set():
            # The owner adds shares without reconnecting (which would cut the others'
            # requests): it gets a fresh challenge to sign the new list with.
            self.challenge = registration.new_challenge()
            self.conn.control({"type": "challenge", "challenge": self.challenge})
            spawn(self.flush())
        elif message.get("type") == "unregister":
            gone = {str(s) for s in message.get("shares", [])}
            self.shares = [s for s in self.shares if s.share_id not in gone]
            self.relay.unregister(self, gone)

    async def _refuse(self) -> None:
        await self.flush()  # the owner learns why before the socket closes
        self.handler.close(4003, "registration refused")

    async def open(self, head: dict[str, Any], body: bytes, session: bool = False) -> ProxiedStream:
        """A request (``body`` ends it) or, with ``session``, a WebSocket that stays open."""
        stream_id = self.conn.open_stream(head, end=not body and not session)
        stream = self.streams[stream_id] = ProxiedStream(self, stream_id)
        if body:
            taken = self.conn.send_data(stream_id, body, end=True)
            if taken < len(body):
                # Request bodies are capped far below the window, so this cannot happen.
                raise StreamGone("request body larger than the tunnel window")
        await self.flush()
        return stream

    async def send(self, stream: ProxiedStream, data: bytes, end: bool = False) -> None:
        """Send on a session, waiting for the owner's credit: a fast browser cannot make
        the relay buffer more than one window."""
        view = memoryview(data)
        while True:
            if stream.stream_id not in self.conn.open_streams:
                raise StreamGone("the session ended")
            stream.window.clear()
            taken = self.conn.send_data(stream.stream_id, view, end=end)
            await self.flush()
            view = view[taken:]
            if not view:
                return
            await stream.window.wait()

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.relay.unregister(self, {s.share_id for s in self.shares})
        for stream in self.streams.values():
            stream.events.put_nowait(StreamReset(stream.stream_id, "offline", reason))
            stream.window.set()
        self.streams.clear()
        self.handler.close()


class Relay:
    """The routing table: share id -> the tunnel of its owner. Memory only."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.routes: dict[str, tuple[Tunnel, registration.ShareAd]] = {}
        self.tunnels: set[Tunnel] = set()

    def register(self, tunnel: Tunnel) -> None:
        for share in tunnel.shares:
            previous = self.routes.get(share.share_id)
            if previous is not None and previous[0] is not tunnel:
                log.info("share %s moves to a new tunnel of the same owner", share.share_id)
            self.routes[share.share_id] = (tunnel, share)

    def unregister(self, tunnel: Tunnel, share_ids: set[str]) -> None:
        for share_id in share_ids:
            route = self.routes.get(share_id)
            if route is not None and route[0] is tunnel:
                del self.routes[share_id]

    def stale(self, tunnel: Tunnel) -> bool:
        return (
            time.monotonic() - tunnel.last_seen > self.config.heartbeat_s * self.config.missed_beats
        )

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            for tunnel in list(self.tunnels):
                if self.stale(tunnel):
                    log.info("closing a stale tunnel (%d shares)", len(tunnel.shares))
                    tunnel.close("the owner stopped answering")
                    self.tunnels.discard(tunnel)
                else:
                    tunnel.conn.ping(b"hb")
                    await tunnel.flush()


class TunnelHandler(tornado.websocket.WebSocketHandler):
    relay: Relay
    tunnel: Tunnel

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def check_origin(self, origin: str) -> bool:
        return True  # owners are programs, not pages; they prove themselves by signature

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.tunnel = Tunnel(self, self.relay)
        self.relay.tunnels.add(self.tunnel)
        self.set_nodelay(True)
        self.tunnel.conn.control({"type": "challenge", "challenge": self.tunnel.challenge})
        # Nothing is awaited here: tornado delivers no message until open() returns.
        spawn(self.tunnel.flush())
        spawn(self._expect_registration())

    async def _expect_registration(self) -> None:
        try:
            await asyncio.wait_for(
                self.tunnel.registered.wait(), self.relay.config.register_timeout_s
            )
        except TimeoutError:
            self.close(4008, "no registration in time")

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.close(4002, "binary frames only")
            return
        try:
            self.tunnel.on_message(message)
        except ProtocolError as exc:
            log.info("closing a tunnel that broke the protocol: %s", exc)
            self.close(4002, "protocol error")
            return
        spawn(self.tunnel.flush())

    def on_close(self) -> None:
        self.tunnel.close("tunnel closed")
        self.relay.tunnels.discard(self.tunnel)


def copy_headers(handler: tornado.web.RequestHandler, head: dict[str, Any]) -> None:
    """The owner's response headers that may reach the client (a list repeats one)."""
    for key, value in dict(head.get("headers") or {}).items():
        if str(key).lower() not in FORWARDED_RESPONSE_HEADERS:
            continue
        for one in value if isinstance(value, list) else [value]:
            handler.add_header(str(key), str(one))


def request_head(
    request: tornado.httputil.HTTPServerRequest, share_id: str, rest: str
) -> dict[str, Any]:
    return {
        "share_id": share_id,
        "method": request.method,
        "path": rest or "/",
        "query": request.query,
        "headers": {
            k.lower(): v
            for k, v in request.headers.items()
            if k.lower() in FORWARDED_REQUEST_HEADERS
        },
    }


def _json_error(handler: tornado.web.RequestHandler, status: int, code: str, message: str) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"error": code, "message": message}))


class ShareHandler(tornado.web.RequestHandler):
    """Everything under ``/s/<share_id>/``: forwarded to the owner through its tunnel."""

    relay: Relay

    def initialize(self, relay: Relay) -> None:
        self.relay = relay
        self.stream: ProxiedStream | None = None

    def check_xsrf_cookie(self) -> None:
        pass  # the owner authenticates every request itself

    async def get(self, share_id: str, rest: str) -> None:
        await self.forward(share_id, rest)

    async def post(self, share_id: str, rest: str) -> None:
        await self.forward(share_id, rest)

    async def forward(self, share_id: str, rest: str) -> None:
        route = self.relay.routes.get(share_id)
        if route is None and "text/html" in self.request.headers.get("Accept", ""):
            self.set_status(404)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
            self.finish(pages.OFFLINE)
            return
        if route is None:
            _json_error(
                self,
                404,
                "offline",
                "this share is offline or has been revoked (or the link is wrong)",
            )
            return
        tunnel, share = route
        if rest == "/.p2p2p/owner":
            # Answered by the relay: clients check this key against the share id themselves.
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps(
                    {"share_id": share_id, "name": share.name, "owner": b64(tunnel.owner_key)}
                )
            )
            return
        if len(self.request.body) > MAX_REQUEST_BODY:
            _json_error(
                self, 413, "too_large", f"request bodies are limited to {MAX_REQUEST_BODY} bytes"
            )
            return
        head = request_head(self.request, share_id, rest)
        try:
            self.stream = stream = await tunnel.open(head, self.request.body)
        except (ProtocolError, StreamGone) as exc:
            _json_error(self, 503, "offline", f"the owner cannot take requests right now ({exc})")
            return
        parser = ResponseHeadParser()
        started = False
        unflushed = 0
        try:
            while True:
                timeout = None if started else self.relay.config.response_timeout_s
                event = await asyncio.wait_for(stream.events.get(), timeout)
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
                        tunnel.conn.consumed(stream.stream_id, unflushed)
                        unflushed = 0
                        await tunnel.flush()
                if isinstance(event, StreamEnded) or (
                    isinstance(event, DataReceived) and event.ended
                ):
                    break
            if not started:
                raise StreamGone("the owner ended the response without a head")
            self.finish()
        except (StreamGone, ProtocolError, TimeoutError) as exc:
            if not started:
                _json_error(self, 502, "offline", f"the share went offline while answering ({exc})")
            else:
                # Headers are out: cut the connection so the client sees an incomplete body.
                self.request.connection.close()  # type: ignore[union-attr]
        finally:
            tunnel.streams.pop(stream.stream_id, None)
            if stream.stream_id in tunnel.conn.open_streams:
                tunnel.conn.reset_stream(stream.stream_id, "cancelled")
                await tunnel.flush()

    def on_connection_close(self) -> None:
        stream = self.stream
        if stream is not None and stream.stream_id in stream.tunnel.conn.open_streams:
            stream.tunnel.conn.reset_stream(stream.stream_id, "cancelled", "the client went away")
            stream.events.put_nowait(StreamReset(stream.stream_id, "cancelled", "client went away"))
            spawn(stream.tunnel.flush())


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
        self.session: ProxiedStream | None = None
        self.parser = WsMessageParser()
        self.chosen: str | None = None
        self.early = b""  # session bytes that came with the owner's 101
        self.pump: asyncio.Task[None] | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        share_id, rest = args[0], args[1]
        if not same_origin(self.request):
            # Before the owner hears of it: a page on another site gets nothing started.
            _json_error(self, 403, "forbidden", "cross-origin sessions are not allowed")
            return
        route = self.relay.routes.get(share_id)
        if route is None:
            _json_error(self, 404, "offline", "this share is offline or has been revoked")
            return
        tunnel = route[0]
        head = {**request_head(self.request, share_id, rest), "websocket": True}
        try:
            self.session = session = await tunnel.open(head, b"", session=True)
            answer, self.early = await self._owner_answer(session)
        except (ProtocolError, StreamGone, TimeoutError) as exc:
            self._forget()
            _json_error(self, 502, "offline", f"the share cannot take sessions now ({exc})")
            return
        if answer["status"] != 101:
            self.set_status(int(answer["status"]))
            copy_headers(self, answer)
            self.finish(self.early + await self._rest_of_refusal(session))
            self._forget()
            return
        self.chosen = dict(answer.get("headers") or {}).get("sec-websocket-protocol")
        await super().get(*args, **kwargs)

    async def _owner_answer(self, session: ProxiedStream) -> tuple[dict[str, Any], bytes]:
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
                session.tunnel.conn.consumed(session.stream_id, len(event.data) - len(rest))
                if parser.head is not None:
                    return parser.head, rest
        raise StreamGone("no answer")  # not reached: the loop returns or raises

    async def _rest_of_refusal(self, session: ProxiedStream) -> bytes:
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
                    session.tunnel.conn.consumed(session.stream_id, len(pending))
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
            await session.tunnel.send(session, encode_ws_message(message))
        except StreamGone:
            self.close()

    def on_close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        self._forget()

    def _forget(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        tunnel = session.tunnel
        tunnel.streams.pop(session.stream_id, None)
        if session.stream_id in tunnel.conn.open_streams:
            tunnel.conn.reset_stream(session.stream_id, "cancelled", "the viewer left")
            spawn(tunnel.flush())


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {"ok": True, "tunnels": len(self.relay.tunnels), "shares": len(self.relay.routes)}
            )
        )


class DirectoryHandler(tornado.web.RequestHandler):
    """Shares whose owners chose ``--listed``; nothing else is ever shown."""

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def get(self) -> None:
        listed = [
            {
                "share_id": sid,
                "name": share.name,
                "title": share.title,
                "online": not self.relay.stale(tunnel),
            }
            for sid, (tunnel, share) in sorted(self.relay.routes.items())
            if share.listed
        ]
        if "application/json" in self.request.headers.get("Accept", ""):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"shares": listed}))
            return
        rows = "".join(
            f"<li><b>{html.escape(str(s['title'] or s['name']))}</b> "
            f"<code>{html.escape(str(s['share_id']))}</code> {'online' if s['online'] else 'offline'}</li>"
            for s in listed
        )
        self.finish(
            "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            "<title>p2p2p relay</title><h1>p2p2p relay</h1>"
            f"<p>Listed shares (owners opt in; links carry their own access tokens):</p><ul>{rows or '<li>none</li>'}</ul>"
        )


def quiet_log(handler: tornado.web.RequestHandler) -> None:
    """Server errors only: a line per request would name share ids and client addresses
    (and, inside Jupyter, fill the server's log). Never the query string: it can hold a
    link's token (``?t=``) and a viewer's SQL."""
    if handler.get_status() >= 500:
        log.warning("%d %s %s", handler.get_status(), handler.request.method, handler.request.path)


def log_every_request(handler: tornado.web.RequestHandler) -> None:
    """``--access-log``: every request, by path, status, time and client; no query string."""
    request = handler.request
    log.info(
        "%d %s %s %s %.1f ms",
        handler.get_status(),
        request.method,
        request.path,
        request.remote_ip,
        1000 * request.request_time(),
    )


def make_app(
    config: RelayConfig | None = None, access_log: bool = False
) -> tuple[tornado.web.Application, Relay]:
    relay = Relay(config or RelayConfig())
    settings: dict[str, Any] = {"log_function": log_every_request if access_log else quiet_log}
    app = tornado.web.Application(
        [
            (r"/healthz", HealthHandler, {"relay": relay}),
            (r"/tunnel", TunnelHandler, {"relay": relay}),
            tornado.routing.Rule(UpgradeMatches(SHARE_PATH), ShareSocketHandler, {"relay": relay}),
            (SHARE_PATH, ShareHandler, {"relay": relay}),
            (r"/", DirectoryHandler, {"relay": relay}),
        ],
        websocket_max_message_size=(1 << 20) + (64 << 10),
        **settings,
    )
    return app, relay


def listen(
    app: tornado.web.Application, host: str, port: int
) -> tuple[tornado.httpserver.HTTPServer, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); returns the server and its port."""
    sockets = tornado.netutil.bind_sockets(port, address=host)
    server = tornado.httpserver.HTTPServer(
        app, max_body_size=MAX_REQUEST_BODY + 1024, idle_connection_timeout=300
    )
    server.add_sockets(sockets)
    return server, int(sockets[0].getsockname()[1])


async def serve(
    host: str,
    port: int,
    config: RelayConfig | None = None,
    ready: Any = None,
    access_log: bool = False,
) -> None:
    app, relay = make_app(config, access_log)
    server, _ = listen(app, host, port)
    heartbeat = asyncio.ensure_future(relay.heartbeat())
    if ready is not None:
        ready(server)
    try:
        await asyncio.Event().wait()
    finally:
        heartbeat.cancel()
        server.stop()
