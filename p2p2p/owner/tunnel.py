"""The owner's outbound tunnel: dial the relay, prove the share ids, answer requests.

``TunnelClient`` keeps one websocket to one relay for one share (so a load balancer in
front of a relay fleet can route it by share id), reconnecting by itself with capped
exponential backoff plus jitter and re-registering the same share ids, so links keep
working across relay restarts and network blips. Each connection is an
``OwnerTunnel``, the owner's end of ``aio.tunnel``: every stream the relay opens is one
request for the share's API (``owner.api``) or one dashboard WebSocket session.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from ..aio import spawn
from ..aio.tunnel import TunnelConnection, TunnelStream
from ..errors import (
    NoteRefused,
    P2P2PError,
    ProtocolError,
    RelayRefused,
    RemoteProtocolError,
    ShareOffline,
    StreamGone,
    TooManySessions,
)
from ..identity import unb64
from ..protocol import mailbox, registration
from ..protocol.tunnel import (
    MAX_REQUEST_BODY,
    DataReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WsMessageParser,
    encode_response_head,
    encode_ws_message,
)
from .api import Request, Response, ShareApi
from .api.http import error_response
from .shares import Share, ShareManager
from .viewers import REFRESH_S

__all__ = ["OwnerTunnel", "TunnelClient"]

log = logging.getLogger("p2p2p.owner")

BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 1.0  # reconnect within ~1 s of the relay coming back
REFUSED_RETRY_S = 30.0  # after the relay said no
# What may wait here for one viewer's websocket: a few exports' worth. The dashboard is
# read as fast as it writes (its own write buffers have no bound), so a viewer that
# stops reading would otherwise make the owner's machine hold everything sent to it.
MAX_PENDING_TO_VIEWER = 24 * 2**20
# A page talks to its kernel over one websocket; a second covers a reconnect whose old
# socket has not closed yet. Every socket on a kernel gets its own copy of everything
# the kernel says, so more would multiply what one page can make the owner send.
MAX_SOCKETS_PER_KERNEL = 2


class OwnerTunnel(TunnelConnection):
    """One connection to the relay (the relay opens the streams, we answer them)."""

    def __init__(self, client: TunnelClient, ws: ClientConnection) -> None:
        super().__init__(initiator=False, write=ws.send)
        self.client = client
        self.ws = ws

    def on_write_failed(self) -> None:
        pass  # the websocket closed: the read loop ends and the client reconnects

    def on_control(self, message: dict[str, Any]) -> None:
        self.client.on_control(self, message)

    def on_stream(self, stream: TunnelStream) -> None:
        if str(stream.head.get("share_id", "")) not in self.client.registered_ids:
            # Only what this relay was told about: another relay (or a probing one)
            # learns nothing of the owner's other shares, not even that they exist.
            stream.task = asyncio.ensure_future(_refuse(stream, UNREGISTERED))
            return
        serve = self.client.session if stream.head.get("websocket") else self.client.answer
        stream.task = asyncio.ensure_future(serve(stream))


class TunnelClient:
    def __init__(
        self,
        relay_url: str,
        manager: ShareManager,
        on_state: Callable[[str], None] | None = None,
        standby: bool = False,
        share_id: str = "",
    ) -> None:
        self.relay_url = relay_url.rstrip("/")
        self.manager = manager
        self.api = ShareApi(manager)
        self.on_state = on_state or (lambda state: None)
        self.state = "connecting"
        self.registered_ids: set[str] = set()  # what the relay last confirmed
        self.standby_ids: set[str] = set()  # confirmed, waiting for another process to stop
        # Ask to stand by rather than be refused when another live process serves a
        # share: with ``share --standby``, and after serving once on this relay (coming
        # back from a network blip, we must not push out a standby that took over).
        self.standby = standby
        self.share_id = share_id  # the one share this tunnel carries ("" : all of them)
        self._confirmed = asyncio.Event()  # set (and replaced) when the relay confirms
        self.tunnel: OwnerTunnel | None = None
        self.refusal = ""  # the relay's last reason for refusing, in its own words
        self.refused: dict[str, str] = {}  # share id -> the relay's reason for not taking it
        self.sockets: collections.Counter[tuple[str, str]] = collections.Counter()
        manager.listeners.append(self._on_share_change)

    @property
    def tunnel_url(self) -> str:
        scheme, _, rest = self.relay_url.partition("://")
        url = ("wss" if scheme == "https" else "ws") + "://" + rest + "/tunnel"
        # The share id in the address is for a load balancer in front of a relay fleet
        # (it routes by it); the relay itself believes only the signed registration.
        return f"{url}?share={self.share_id}" if self.share_id else url

    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_state(state)

    async def run(self) -> None:
        """Stay connected until cancelled."""
        delay = BACKOFF_FIRST_S
        while True:
            try:
                async with connect(
                    self.tunnel_url,
                    max_size=(1 << 20) + (64 << 10),
                    compression=None,
                    ping_interval=5,
                    ping_timeout=10,
                    open_timeout=10,
                ) as ws:
                    delay = BACKOFF_FIRST_S
                    await self._connected(ws)
            except RelayRefused as exc:
                # The relay's own words; it may change its mind (a restart, a stale route
                # expiring), so ask again, slowly, rather than never.
                self.refusal = exc.message
                log.warning("the relay refused the registration: %s", exc.message)
                self._set_state("refused")
                delay = REFUSED_RETRY_S
            except (OSError, WebSocketException, ProtocolError, TimeoutError) as exc:
                log.info("relay connection lost: %s", exc)
            finally:
                self.registered_ids = set()
                self.standby_ids = set()
            if self.state != "refused":
                self._set_state("reconnecting")
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(BACKOFF_CAP_S, delay * 2)

    async def _connected(self, ws: ClientConnection) -> None:
        tunnel = self.tunnel = OwnerTunnel(self, ws)
        try:
            async for message in ws:
                if isinstance(message, str):
                    raise RemoteProtocolError("the relay sent a text frame")
                tunnel.receive(message)
                await tunnel.flush()
        finally:
            self.tunnel = None
            tunnel.cut("offline", "the relay connection closed")

    def serves(self, share: Share) -> bool:
        if self.share_id and share.share_id != self.share_id:
            return False
        return share.relay in ("", self.relay_url) or self.relay_url in share.also

    def active_requests(self, share_id: str) -> int:
        tunnel = self.tunnel
        if tunnel is None:
            return 0
        return sum(1 for s in tunnel.streams.values() if s.head.get("share_id") == share_id)

    async def wait_registered(self, share_id: str, timeout_s: float) -> bool:
        """Until the relay confirms ``share_id`` (True) or the time is up (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while share_id not in self.registered_ids | self.standby_ids:
            if share_id in self.refused:
                return False
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._confirmed.wait(), left)
            except TimeoutError:
                return False
        return True

    def on_control(self, tunnel: OwnerTunnel, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "challenge":
            ads = [share.ad() for share in self.manager.shares.values() if self.serves(share)]
            signed = registration.answer(self.manager.identity, str(message.get("challenge")), ads)
            tunnel.conn.control(
                {**signed, "instance": self.manager.instance, "standby": self.standby}
            )
        elif kind == "registered":
            self.registered_ids = {str(s) for s in message.get("shares", [])}
            self.standby_ids = {str(s) for s in message.get("standby", [])} - self.registered_ids
            self._set_state(
                "standby" if self.standby_ids and not self.registered_ids else "connected"
            )
            if self.registered_ids:
                self.standby = True
            refused = message.get("refused")
            if isinstance(refused, dict):  # the relay's words, per share it would not take
                self.refused = {str(k): str(v)[:300] for k, v in refused.items()}
            confirmed, self._confirmed = self._confirmed, asyncio.Event()
            confirmed.set()
        elif kind == "promoted":  # the process that served these stopped: ours now
            ids = {str(s) for s in message.get("shares", [])} & self.standby_ids
            log.info("taking over %d share(s) from a process that stopped", len(ids))
            self.standby_ids -= ids
            self.registered_ids |= ids
            self.standby = True
            self._set_state("connected")
        elif kind == "queued":
            spawn(self._take_queued(tunnel, message))
        elif kind == "refused":
            raise RelayRefused(str(message.get("message", "registration refused")))

    async def _take_queued(self, tunnel: OwnerTunnel, message: dict[str, Any]) -> None:
        """Notes that waited at the relay while this share was offline: each opened with
        our key and checked as any note is; then the relay is told to forget them (the
        ones refused too: they would be refused again)."""
        share_id = str(message.get("share", ""))
        share = self.manager.shares.get(share_id)
        items = message.get("notes")
        if share is None or share.notes is None or share_id not in self.registered_ids:
            return
        if not isinstance(items, list):
            return
        taken, kept = [], 0
        for item in items[: mailbox.BATCH]:
            if not isinstance(item, dict):
                continue
            try:
                note, work = mailbox.open_sealed(
                    self.manager.identity, unb64(str(item.get("sealed", "")))
                )
                await asyncio.to_thread(share.notes.add, note, work=work, queued=True)
                kept += 1
            except NoteRefused as exc:
                log.info("a note that waited at the relay was refused: %s", exc.message)
            except (ValueError, TypeError):
                log.info("the relay handed over something that is not a sealed note")
            taken.append(str(item.get("id", ""))[:64])
        if kept:
            changed, share.notes_changed = share.notes_changed, None
            if changed is not None:
                changed.set()  # open notes panels show them now
        if self.tunnel is tunnel:
            tunnel.conn.control({"type": "delivered", "share": share_id, "ids": taken})
            await tunnel.flush()

    def _on_share_change(self, event: str, share: Share) -> None:
        """Tell the relay at once; on removal also cut the share's streams."""
        tunnel = self.tunnel
        if tunnel is None or not self.serves(share):
            return
        if event == "removed":
            tunnel.conn.control({"type": "unregister", "shares": [share.share_id]})
            for stream in list(tunnel.streams.values()):
                if stream.head.get("share_id") != share.share_id:
                    continue
                stream.reset("revoked", "the owner stopped sharing")
                if stream.task is not None:
                    stream.task.cancel()
        elif event == "added":
            self.refused.pop(share.share_id, None)  # a new try gets a new answer
            # A new share needs a fresh signature over the new list: ask for a challenge
            # on this connection, so the other shares' requests carry on.
            tunnel.conn.control({"type": "rechallenge"})
        tunnel.flush_soon()  # listeners are called on the event loop

    # -- one stream each -----------------------------------------------------------
    async def answer(self, stream: TunnelStream) -> None:
        """An HTTP request: read its body, ask the API, stream the response back."""
        response: Response | None = None
        try:
            body = await _request_body(stream)
            if body is None:
                return
            response = await self.api.handle(_request(stream.head, body))
            # The head travels with the first piece of the body, and each piece is sent
            # once the next one exists, so the last carries END_STREAM: a small answer is
            # one frame.
            pending: bytes | bytearray = encode_response_head(response.status, response.headers)
            head_only = True
            async for chunk in response.body:
                if head_only:
                    pending += chunk
                    head_only = False
                    continue
                await stream.send(pending)
                pending = chunk
            await stream.send(pending, end=True)
        except StreamGone:
            pass  # the relay reset the stream: nobody is reading any more
        except Exception as exc:  # never let one request take the tunnel down
            log.exception("request failed: %s", exc)
            stream.reset("internal", "the owner failed to answer")
        finally:
            stream.tunnel.streams.pop(stream.stream_id, None)
            if response is not None:  # now, not at garbage collection: it cancels the query
                await response.body.aclose()

    async def session(self, stream: TunnelStream) -> None:
        """A viewer's WebSocket: connect the share's upstream, then pump both ways."""
        request = _request(stream.head, b"")
        forward: asyncio.Task[None] | None = None
        watch: asyncio.Task[None] | None = None
        upstream: ClientConnection | None = None
        counted: Share | None = None
        kernel = (request.share_id, request.path)
        held = False
        try:
            opened = await self.api.open_websocket(request)
            if isinstance(opened, Response):  # refused: an HTTP answer, then the end
                await _send_whole(stream, opened)
                return
            upstream = opened
            if self.sockets[kernel] >= MAX_SOCKETS_PER_KERNEL:
                await _send_whole(stream, error_response(TooManySessions(
                    f"this page's kernel already has {MAX_SOCKETS_PER_KERNEL} live "
                    "connections; close another tab of it, or reload"
                )))  # fmt: skip
                return
            self.sockets[kernel] += 1
            held = True
            # A dashboard viewer is one kernel connection: count them for the cap.
            viewer = request.path.endswith("/channels")
            counted = self.manager.shares.get(request.share_id) if viewer else None
            if counted is not None:
                counted.sessions += 1
            accepted = (
                {"sec-websocket-protocol": upstream.subprotocol} if upstream.subprotocol else {}
            )
            await stream.send(encode_response_head(101, accepted))
            forward = asyncio.ensure_future(_to_upstream(stream, upstream))
            if request.viewer_session is not None:
                watch = asyncio.ensure_future(
                    _close_when_signed_out(self.manager, request, upstream)
                )
            await _to_viewer(upstream, stream)
            if stream.is_open:
                await stream.send(b"", end=True)
        except StreamGone:
            pass
        except Exception as exc:  # never let one session take the tunnel down
            log.info("websocket session failed: %s", exc)
            stream.reset("internal", "the dashboard session failed")
        finally:
            if forward is not None:
                forward.cancel()
            if watch is not None:
                watch.cancel()
            if upstream is not None:
                await upstream.close()
            if counted is not None:
                counted.sessions = max(0, counted.sessions - 1)
            if held:
                self.sockets[kernel] -= 1
                if self.sockets[kernel] <= 0:
                    del self.sockets[kernel]
            stream.tunnel.streams.pop(stream.stream_id, None)

    async def close(self) -> None:
        if self.tunnel is not None:
            await self.tunnel.ws.close()


async def _close_when_signed_out(
    manager: ShareManager, request: Request, upstream: ClientConnection
) -> None:
    """A signed-in viewer's dashboard session ends within ``REFRESH_S`` of the viewer
    being removed, expiring or signing out."""
    ticket = request.viewer_session.ticket
    while True:
        await asyncio.sleep(REFRESH_S)
        share = manager.shares.get(request.share_id)
        if share is None or share.signins is None or share.viewers is None:
            break
        if share.signins.by_ticket(ticket, share.viewers) is None:
            break
    await upstream.close()


UNREGISTERED = ShareOffline("this share is offline or has been revoked")


async def _refuse(stream: TunnelStream, error: P2P2PError) -> None:
    """Answer a stream with an error and nothing else (exactly as an unknown share)."""
    try:
        await _send_whole(stream, error_response(error))
    except StreamGone:
        pass
    finally:
        stream.tunnel.streams.pop(stream.stream_id, None)


async def _send_whole(stream: TunnelStream, response: Response) -> None:
    """A short response (a refusal) as one piece that ends the stream."""
    body = b"".join([piece async for piece in response.body])
    await stream.send(encode_response_head(response.status, response.headers) + body, end=True)


async def _request_body(stream: TunnelStream) -> bytes | None:
    """The request's body, returning credit as it arrives; None if it was refused."""
    body = bytearray()
    while True:
        event = await stream.events.get()
        if isinstance(event, StreamOpened | StreamEnded):
            return bytes(body)
        if isinstance(event, StreamReset):
            return None
        if isinstance(event, DataReceived):
            body += event.data
            stream.consumed(len(event.data))
            if len(body) > MAX_REQUEST_BODY:
                stream.reset("too_large", "request body too large")
                return None
            if event.ended:
                return bytes(body)


async def _to_viewer(upstream: ClientConnection, stream: TunnelStream) -> None:
    """The dashboard's messages to the viewer, read from the dashboard as they come and
    sent as the viewer's credit allows; a viewer more than ``MAX_PENDING_TO_VIEWER``
    behind is not reading, and its session is closed (its page reconnects if it is
    alive; the kernel and every other viewer go on)."""
    pending: collections.deque[bytes] = collections.deque()
    size = 0
    arrived = asyncio.Event()
    finished = False

    async def read() -> None:
        nonlocal size, finished
        try:
            async for message in upstream:
                frame = encode_ws_message(message)
                pending.append(frame)
                size += len(frame)
                arrived.set()
                if size > MAX_PENDING_TO_VIEWER:
                    log.info("a dashboard viewer fell %d bytes behind: session closed", size)
                    pending.clear()
                    stream.reset("too_slow", "the viewer was not reading")
                    break
        except ConnectionClosed:
            pass
        finally:
            finished = True
            arrived.set()

    reader = asyncio.ensure_future(read())
    try:
        while True:
            while pending:
                frame = pending.popleft()
                await stream.send(frame)
                size -= len(frame)
            if finished:
                break
            arrived.clear()
            await arrived.wait()
    finally:
        reader.cancel()


async def _to_upstream(stream: TunnelStream, upstream: ClientConnection) -> None:
    """The viewer's messages to the dashboard; credit returns once the upstream took them."""
    parser = WsMessageParser()
    try:
        while True:
            event = await stream.events.get()
            if isinstance(event, StreamEnded | StreamReset):
                break
            if not isinstance(event, DataReceived):
                continue
            try:
                messages = parser.feed(event.data)
            except RemoteProtocolError as exc:
                stream.reset("protocol", str(exc))
                break
            for message in messages:
                await upstream.send(message)
            stream.consumed(len(event.data))
            await stream.tunnel.flush()
            if event.ended:
                break
    except ConnectionClosed:
        pass
    await upstream.close()  # the viewer left: the session loop then ends


def _request(head: dict[str, Any], body: bytes) -> Request:
    return Request(
        share_id=str(head.get("share_id", "")),
        method=str(head.get("method", "GET")),
        path=str(head.get("path", "/")),
        query=str(head.get("query", "")),
        headers={str(k): str(v) for k, v in dict(head.get("headers") or {}).items()},
        body=body,
    )
