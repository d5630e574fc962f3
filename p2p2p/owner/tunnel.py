"""The owner's outbound tunnel: dial the relay, prove the share ids, answer requests.

An asyncio adapter around the sans-I/O ``tunnel.Connection`` and ``registration``. It
reconnects by itself with capped exponential backoff plus jitter, and re-registers the
same share ids, so links keep working across relay restarts and network blips.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from ..aio import spawn
from ..protocol import registration
from ..protocol.tunnel import (
    Connection,
    ControlReceived,
    DataReceived,
    ProtocolError,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowOpened,
    WsMessageParser,
    encode_response_head,
    encode_ws_message,
)
from .api import Proxy, Request, Response
from .shares import Share, ShareManager

log = logging.getLogger("p2p2p.owner")

MAX_REQUEST_BODY = 1 << 20
BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 1.0  # reconnect within ~1 s of the relay coming back


class RelayRefused(Exception):
    """The relay refused the registration: retrying would not help."""


@dataclasses.dataclass
class _Incoming:
    head: dict[str, Any]
    body: bytearray = dataclasses.field(default_factory=bytearray)
    window: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # A WebSocket session: messages from the viewer, with the bytes they used (credit is
    # returned once the upstream took them), None when the viewer closed.
    ws: asyncio.Queue[tuple[list[bytes | str], int] | None] | None = None
    ws_parser: WsMessageParser | None = None


class TunnelClient:
    def __init__(
        self, relay_url: str, manager: ShareManager, on_state: Callable[[str], None] | None = None
    ) -> None:
        self.relay_url = relay_url.rstrip("/")
        self.manager = manager
        self.proxy = Proxy(manager)
        self.on_state = on_state or (lambda state: None)
        self.state = "connecting"
        self.registered = asyncio.Event()
        self.registered_ids: set[str] = set()  # what the relay last confirmed
        self._confirmed = asyncio.Condition()
        self._ws: ClientConnection | None = None
        self._conn: Connection | None = None
        self._incoming: dict[int, _Incoming] = {}
        manager.listeners.append(self._on_share_change)

    @property
    def tunnel_url(self) -> str:
        scheme, _, rest = self.relay_url.partition("://")
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/tunnel"

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
                    await self._session(ws)
            except RelayRefused:
                self._set_state("refused")
                raise
            except (OSError, WebSocketException, ProtocolError, TimeoutError) as exc:
                log.info("relay connection lost: %s", exc)
            finally:
                self.registered.clear()
                self.registered_ids = set()
                self._abandon_requests()
            self._set_state("reconnecting")
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(BACKOFF_CAP_S, delay * 2)

    async def _session(self, ws: ClientConnection) -> None:
        conn = Connection(initiator=False)
        self._ws, self._conn = ws, conn
        try:
            async for message in ws:
                if isinstance(message, str):
                    raise ProtocolError("the relay sent a text frame")
                for event in conn.receive(message):
                    await self._dispatch(conn, event)
                await self._flush()
        finally:
            self._ws = self._conn = None

    async def _flush(self) -> None:
        ws, conn = self._ws, self._conn
        if ws is None or conn is None:
            return
        try:
            for frame in conn.data_to_send():
                await ws.send(frame)
        except ConnectionClosed:
            pass  # the run loop notices and reconnects

    async def _dispatch(self, conn: Connection, event: Any) -> None:
        if isinstance(event, ControlReceived):
            await self._on_control(conn, event.message)
        elif isinstance(event, StreamOpened):
            incoming = self._incoming[event.stream_id] = _Incoming(event.head)
            if event.head.get("websocket"):
                incoming.ws, incoming.ws_parser = asyncio.Queue(), WsMessageParser()
                incoming.task = asyncio.ensure_future(
                    self._websocket(conn, event.stream_id, incoming)
                )
            elif event.ended:
                incoming.task = asyncio.ensure_future(self._answer(conn, event.stream_id, incoming))
        elif isinstance(event, DataReceived):
            receiving = self._incoming.get(event.stream_id)
            if receiving is None:
                return
            incoming = receiving
            if incoming.ws is not None and incoming.ws_parser is not None:
                try:
                    messages = incoming.ws_parser.feed(event.data)
                except ProtocolError as exc:
                    conn.reset_stream(event.stream_id, "protocol", str(exc))
                    self._drop(event.stream_id)
                    return
                incoming.ws.put_nowait((messages, len(event.data)))
                if event.ended:
                    incoming.ws.put_nowait(None)
                return
            incoming.body += event.data
            conn.consumed(event.stream_id, len(event.data))
            if len(incoming.body) > MAX_REQUEST_BODY:
                conn.reset_stream(event.stream_id, "too_large", "request body too large")
                self._incoming.pop(event.stream_id, None)
            elif event.ended:
                incoming.task = asyncio.ensure_future(self._answer(conn, event.stream_id, incoming))
        elif isinstance(event, StreamEnded):
            ending = self._incoming.get(event.stream_id)
            if ending is not None and ending.ws is not None:
                ending.ws.put_nowait(None)
        elif isinstance(event, WindowOpened):
            waiting = self._incoming.get(event.stream_id)
            if waiting is not None:
                waiting.window.set()
        elif isinstance(event, StreamReset):
            self._drop(event.stream_id)

    def serves(self, share: Share) -> bool:
        return share.relay in ("", self.relay_url)

    def active_requests(self, share_id: str) -> int:
        return sum(1 for i in self._incoming.values() if i.head.get("share_id") == share_id)

    async def wait_registered(self, share_id: str, timeout_s: float) -> bool:
        """Until the relay confirms ``share_id`` (True) or the time is up (False)."""

        async def confirmed() -> None:
            async with self._confirmed:
                await self._confirmed.wait_for(lambda: share_id in self.registered_ids)

        try:
            await asyncio.wait_for(confirmed(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def _on_control(self, conn: Connection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "challenge":
            ads = [share.ad() for share in self.manager.shares.values() if self.serves(share)]
            conn.control(
                registration.answer(self.manager.identity, str(message.get("challenge")), ads)
            )
        elif kind == "registered":
            self.registered.set()
            self._set_state("connected")
            async with self._confirmed:
                self.registered_ids = {str(s) for s in message.get("shares", [])}
                self._confirmed.notify_all()
        elif kind == "refused":
            raise RelayRefused(str(message.get("message", "registration refused")))

    def _on_share_change(self, event: str, share: Share) -> None:
        """Tell the relay at once; on removal also cut the share's streams."""
        conn = self._conn
        if conn is None or not self.serves(share):
            return
        if event in ("removed", "closing"):
            if event == "removed":
                conn.control({"type": "unregister", "shares": [share.share_id]})
            for stream_id, incoming in list(self._incoming.items()):
                if incoming.head.get("share_id") != share.share_id:
                    continue
                if event == "closing" and incoming.ws is not None:
                    continue  # dashboard sessions: cut on "removed", moments later
                conn.reset_stream(stream_id, "revoked", "the owner stopped sharing")
                self._drop(stream_id)
        elif event == "added":
            # A new share needs a fresh signature over the new list: ask for a challenge
            # on this connection, so the other shares' requests carry on.
            conn.control({"type": "rechallenge"})
        spawn(self._flush())  # listeners are called on the event loop

    async def _answer(self, conn: Connection, stream_id: int, incoming: _Incoming) -> None:
        request = _request(incoming)
        response: Response | None = None
        try:
            response = await self.proxy.handle(request)
            # The head travels with the first piece of the body, and each piece is sent
            # once the next one exists, so the last carries END_STREAM: a small answer is
            # one frame.
            pending = encode_response_head(response.status, response.headers)
            head_only = True
            async for chunk in response.body:
                if head_only:
                    pending += chunk
                    head_only = False
                    continue
                await self._send(conn, stream_id, incoming, pending)
                pending = chunk
            await self._send(conn, stream_id, incoming, pending, end=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one request take the tunnel down
            log.exception("request failed: %s", exc)
            if stream_id in conn.open_streams:
                conn.reset_stream(stream_id, "internal", "the owner failed to answer")
                await self._flush()
        finally:
            self._incoming.pop(stream_id, None)
            if response is not None:  # now, not at garbage collection: it cancels the query
                await response.body.aclose()

    async def _websocket(self, conn: Connection, stream_id: int, incoming: _Incoming) -> None:
        """A viewer's WebSocket: connect the share's upstream, then pump both ways."""
        request = _request(incoming)
        forward: asyncio.Task[None] | None = None
        upstream: ClientConnection | None = None
        counted: Share | None = None
        try:
            opened = await self.proxy.open_websocket(request)
            if isinstance(opened, Response):  # refused: an HTTP answer, then the end
                body = b"".join([piece async for piece in opened.body])
                head = encode_response_head(opened.status, opened.headers)
                await self._send(conn, stream_id, incoming, head + body, end=True)
                return
            upstream = opened
            # A dashboard viewer is one kernel connection: count them for the cap.
            viewer = request.path.endswith("/channels")
            counted = self.manager.shares.get(request.share_id) if viewer else None
            if counted is not None:
                counted.sessions += 1
            accepted = (
                {"sec-websocket-protocol": upstream.subprotocol} if upstream.subprotocol else {}
            )
            await self._send(conn, stream_id, incoming, encode_response_head(101, accepted))
            forward = asyncio.ensure_future(self._to_upstream(conn, stream_id, incoming, upstream))
            try:
                async for message in upstream:
                    await self._send(conn, stream_id, incoming, encode_ws_message(message))
            except ConnectionClosed:
                pass
            if stream_id in conn.open_streams:
                await self._send(conn, stream_id, incoming, b"", end=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let one session take the tunnel down
            log.info("websocket session failed: %s", exc)
            if stream_id in conn.open_streams:
                conn.reset_stream(stream_id, "internal", "the dashboard session failed")
                await self._flush()
        finally:
            if forward is not None:
                forward.cancel()
            if upstream is not None:
                await upstream.close()
            if counted is not None:
                counted.sessions = max(0, counted.sessions - 1)
            self._incoming.pop(stream_id, None)

    async def _to_upstream(
        self, conn: Connection, stream_id: int, incoming: _Incoming, upstream: ClientConnection
    ) -> None:
        assert incoming.ws is not None
        try:
            while (item := await incoming.ws.get()) is not None:
                messages, size = item
                for message in messages:
                    await upstream.send(message)
                conn.consumed(stream_id, size)  # credit only once the upstream took them
                await self._flush()
        except ConnectionClosed:
            pass
        await upstream.close()  # the viewer left: the session loop above then ends

    async def _send(
        self, conn: Connection, stream_id: int, incoming: _Incoming, data: bytes, end: bool = False
    ) -> None:
        view = memoryview(data)
        while True:
            if stream_id not in conn.open_streams:
                raise asyncio.CancelledError
            incoming.window.clear()
            taken = conn.send_data(stream_id, view, end=end)
            await self._flush()
            view = view[taken:]
            if not view:
                return
            await incoming.window.wait()

    def _drop(self, stream_id: int) -> None:
        """Forget a request and stop answering it."""
        incoming = self._incoming.pop(stream_id, None)
        if incoming is not None and incoming.task is not None:
            incoming.task.cancel()

    def _abandon_requests(self) -> None:
        for stream_id in list(self._incoming):
            self._drop(stream_id)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


def _request(incoming: _Incoming) -> Request:
    head = incoming.head
    return Request(
        share_id=str(head.get("share_id", "")),
        method=str(head.get("method", "GET")),
        path=str(head.get("path", "/")),
        query=str(head.get("query", "")),
        headers={str(k): str(v) for k, v in dict(head.get("headers") or {}).items()},
        body=bytes(incoming.body),
    )
