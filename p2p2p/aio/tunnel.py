"""The one asyncio layer over the sans-I/O tunnel, used by both of its ends.

``TunnelConnection`` owns a ``protocol.tunnel.Connection`` and a coroutine that writes
one websocket frame; the relay (``relay.tunnels``, over a tornado websocket) and the
owner (``owner.tunnel``, over a websockets client) subclass it, as python-websockets'
client and server share one ``Connection``. What lives here is what both ends need and
must not do differently: routing each stream's events to its queue, waiting for credit
before sending (so neither side ever holds more than one window per stream), and
cutting every stream when the tunnel goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import StreamGone
from ..protocol.tunnel import (
    Connection,
    ControlReceived,
    Event,
    StreamOpened,
    StreamReset,
    WindowOpened,
)
from . import spawn

__all__ = ["TunnelConnection", "TunnelStream"]


class TunnelStream:
    """One request or WebSocket session on a tunnel, as one end sees it.

    ``events`` holds what arrived for it (data, end, reset): bounded by the window the
    peer may have in flight, since credit returns only through ``consumed``.
    """

    def __init__(self, tunnel: TunnelConnection, stream_id: int, head: dict[str, Any]) -> None:
        self.tunnel = tunnel
        self.stream_id = stream_id
        self.head = head
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.window = asyncio.Event()
        self.task: asyncio.Task[None] | None = None  # the work answering it, if any
        self.opened_for = ""  # who asked for it (the relay notes the client's address)

    @property
    def is_open(self) -> bool:
        return self.stream_id in self.tunnel.conn.open_streams

    async def send(self, data: bytes | bytearray | memoryview, end: bool = False) -> None:
        """Send all of ``data``, waiting for the peer's credit between pieces."""
        conn = self.tunnel.conn
        view = memoryview(data)
        while True:
            if not self.is_open:
                raise StreamGone("the stream ended")
            self.window.clear()
            taken = conn.send_data(self.stream_id, view, end=end)
            await self.tunnel.flush()
            view = view[taken:]
            if not view:
                return
            await self.window.wait()

    def consumed(self, amount: int) -> None:
        """The application took ``amount`` received bytes: the peer may send more."""
        self.tunnel.conn.consumed(self.stream_id, amount)

    def reset(self, code: str, reason: str = "") -> None:
        """Abandon the stream both ways (if it is still open) and forget it."""
        self.tunnel.streams.pop(self.stream_id, None)
        if self.is_open:
            self.tunnel.conn.reset_stream(self.stream_id, code, reason)
            self.tunnel.flush_soon()
        self.window.set()  # a send waiting for credit wakes and finds the stream gone


class TunnelConnection:
    """One end of a tunnel. Subclasses answer ``on_control`` and ``on_stream``."""

    def __init__(self, initiator: bool, write: Callable[[bytes], Awaitable[None]]) -> None:
        self.conn = Connection(initiator=initiator)
        self.streams: dict[int, TunnelStream] = {}
        self.closed = False
        self._write = write
        # One writer at a time: two flushes interleaving their awaits would reorder
        # frames, and a stream's DATA must never overtake its OPEN.
        self._writing = asyncio.Lock()

    # -- what subclasses decide ------------------------------------------------------
    def on_control(self, message: dict[str, Any]) -> None:
        """A control message from the peer (registration, heartbeats)."""

    def on_stream(self, stream: TunnelStream) -> None:
        """The peer opened a stream; its head is ``stream.head``."""
        stream.reset("refused", "this end does not take streams")

    def on_write_failed(self) -> None:
        """Writing to the websocket failed: it is gone."""

    # -- incoming --------------------------------------------------------------------
    def receive(self, message: bytes) -> None:
        """Feed one websocket frame. ``RemoteProtocolError`` means: close the tunnel."""
        for event in self.conn.receive(message):
            if isinstance(event, ControlReceived):
                self.on_control(event.message)
                continue
            if isinstance(event, StreamOpened):
                stream = self.streams[event.stream_id] = TunnelStream(
                    self, event.stream_id, event.head
                )
                if event.ended:
                    stream.events.put_nowait(event)
                self.on_stream(stream)
                continue
            stream_id = getattr(event, "stream_id", None)
            found = self.streams.get(stream_id) if stream_id is not None else None
            if found is None:
                continue
            if isinstance(event, WindowOpened):
                found.window.set()
                continue
            found.events.put_nowait(event)
            if isinstance(event, StreamReset):
                self.streams.pop(found.stream_id, None)
                found.window.set()
                if found.task is not None:
                    found.task.cancel()

    # -- outgoing --------------------------------------------------------------------
    def open(self, head: dict[str, Any], body: bytes = b"", session: bool = False) -> TunnelStream:
        """Open a stream carrying a request (``body`` ends it) or, with ``session``, a
        WebSocket session that stays open. ``LocalProtocolError`` when too many are."""
        stream_id = self.conn.open_stream(head, end=not body and not session)
        stream = self.streams[stream_id] = TunnelStream(self, stream_id, head)
        if body:
            taken = self.conn.send_data(stream_id, body, end=True)
            if taken < len(body):  # request bodies are capped far below one window
                stream.reset("too_large", "request body larger than the tunnel window")
                raise StreamGone("request body larger than the tunnel window")
        return stream

    async def flush(self) -> None:
        """Write every frame the protocol has queued, in order."""
        async with self._writing:
            for frame in self.conn.data_to_send():
                try:
                    await self._write(frame)
                except Exception:
                    self.on_write_failed()
                    return

    def flush_soon(self) -> None:
        """``flush`` from code that cannot await (callbacks, ``finally`` of a handler)."""
        spawn(self.flush())

    def cut(self, code: str, reason: str) -> None:
        """The tunnel is gone: every open stream ends with a reset, now."""
        if self.closed:
            return
        self.closed = True
        for stream in list(self.streams.values()):
            stream.events.put_nowait(StreamReset(stream.stream_id, code, reason))
            stream.window.set()
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
