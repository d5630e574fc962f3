"""What one dashboard websocket may make the owner hold: the dashboard is read as fast as
it writes, and a viewer that stops reading is cut off once it is far enough behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from p2p2p.aio.tunnel import TunnelConnection
from p2p2p.errors import StreamGone
from p2p2p.owner import tunnel as owner_tunnel
from p2p2p.protocol.tunnel import DataReceived


class Dashboard:
    """Stands in for the upstream websocket: writes ``count`` messages at once."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size, self.sent = count, size, 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.sent += 1
            yield b"x" * self.size
            await asyncio.sleep(0)


def pair() -> tuple[TunnelConnection, TunnelConnection]:
    """Two ends of a tunnel in memory (the viewer's end is the relay's)."""
    ends: list[TunnelConnection] = []

    async def to_viewer(frame: bytes) -> None:
        ends[1].receive(frame)

    async def to_owner(frame: bytes) -> None:
        ends[0].receive(frame)

    ends += [TunnelConnection(False, to_viewer), TunnelConnection(True, to_owner)]
    return ends[0], ends[1]


async def _session(viewer_reads: bool, count: int) -> tuple[Dashboard, int, str]:
    owner, relay = pair()
    opened: list[object] = []
    owner.on_stream = opened.append  # type: ignore[method-assign]
    viewer = relay.open({"path": "/api/kernels/k/channels"}, session=True)
    await relay.flush()
    stream = opened[0]
    dashboard = Dashboard(count, 1 << 20)
    received = 0
    ended = ""

    async def read() -> None:
        nonlocal received, ended
        while True:
            event = await viewer.events.get()
            if isinstance(event, DataReceived):
                received += len(event.data)
                if viewer_reads:
                    viewer.consumed(len(event.data))
                    await relay.flush()
            else:
                ended = type(event).__name__
                return

    reader = asyncio.ensure_future(read())
    try:
        await asyncio.wait_for(owner_tunnel._to_viewer(dashboard, stream), 30)  # type: ignore[arg-type]
    except StreamGone:
        pass  # how the session learns the viewer was cut off
    await asyncio.sleep(0.05)
    reader.cancel()
    return dashboard, received, ended


def test_a_viewer_that_does_not_read_is_cut_off_and_the_dashboard_is_still_read() -> None:
    dashboard, received, ended = asyncio.run(_session(viewer_reads=False, count=80))
    assert dashboard.sent > owner_tunnel.MAX_PENDING_TO_VIEWER >> 20  # read on, past the cap
    assert dashboard.sent < 80  # then the session ended: the rest was never asked for
    assert ended == "StreamReset"
    assert received < 2 * owner_tunnel.MAX_PENDING_TO_VIEWER


def test_a_viewer_that_reads_gets_everything() -> None:
    dashboard, received, ended = asyncio.run(_session(viewer_reads=True, count=60))
    assert dashboard.sent == 60
    assert received >= 60 << 20  # every message, framed
    assert ended == ""
