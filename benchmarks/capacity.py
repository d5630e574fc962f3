"""How much one relay process holds: shares (owner tunnels) and viewers (websocket
sessions through it), measured as the relay's RSS and CPU while thousands are open.

The owners here are light stand-ins that speak the real tunnel protocol (a signed
registration, then a 101 and an echo for each session), all in this benchmark's
process, so what is measured is the relay alone; the relay is the real one, a process of
its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from .common import Processes, Section, rss


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _owners(url: str, count: int) -> tuple[list[Any], list[str]]:
    from websockets.asyncio.client import connect

    from p2p2p.aio.tunnel import TunnelConnection
    from p2p2p.identity import Identity
    from p2p2p.protocol import registration
    from p2p2p.protocol.registration import ShareAd
    from p2p2p.protocol.shareid import share_id
    from p2p2p.protocol.tunnel import encode_response_head

    identity = Identity.generate()
    sockets: list[Any] = []
    ids: list[str] = []
    pumps: list[asyncio.Task[None]] = []  # kept: a task nobody holds may be collected

    class Owner(TunnelConnection):
        def __init__(self, ws: Any, ad: ShareAd) -> None:
            super().__init__(initiator=False, write=ws.send)
            self.ad = ad
            self.registered = asyncio.Event()

        def on_control(self, message: dict[str, Any]) -> None:
            if message.get("type") == "challenge":
                signed = registration.answer(identity, str(message["challenge"]), [self.ad])
                self.conn.control({**signed, "instance": "bench"})
            elif message.get("type") == "registered":
                self.registered.set()

        def on_stream(self, stream: Any) -> None:
            async def echo() -> None:
                await stream.send(encode_response_head(101, {}))
                while True:
                    event = await stream.events.get()
                    data = getattr(event, "data", None)
                    if data is None:
                        return
                    stream.consumed(len(data))
                    await stream.send(data)

            stream.task = asyncio.ensure_future(echo())

    async def one(i: int) -> None:
        name = f"s{i}"
        sid = share_id(identity.public_key, name)
        ws = await connect(f"{url.replace('http', 'ws')}/tunnel?share={sid}", compression=None)
        owner = Owner(ws, ShareAd(sid, name))

        async def pump() -> None:
            async for message in ws:
                owner.receive(message)  # type: ignore[arg-type]
                await owner.flush()

        pumps.append(asyncio.ensure_future(pump()))
        await asyncio.wait_for(owner.registered.wait(), 30)
        sockets.append(ws)
        ids.append(sid)

    for start in range(0, count, 100):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))
    return sockets, ids


async def _measure(url: str, pid: int, shares: int, viewers: int) -> dict[str, float]:
    from websockets.asyncio.client import connect

    found: dict[str, float] = {"idle": rss(pid) / 2**20}
    owners, ids = await _owners(url, shares)
    await asyncio.sleep(1)
    found["shares"] = rss(pid) / 2**20
    sessions = []
    for start in range(0, viewers, 100):
        batch = [
            connect(f"{url.replace('http', 'ws')}/s/{ids[i % len(ids)]}/ws", compression=None)
            for i in range(start, min(viewers, start + 100))
        ]
        sessions += await asyncio.gather(*batch)
    await asyncio.sleep(1)
    found["viewers"] = rss(pid) / 2**20
    # Every viewer says something each second for 10 s: the relay's CPU for that traffic.
    message = b"x" * 200
    before, started = cpu_seconds(pid), time.monotonic()
    for _ in range(10):
        await asyncio.gather(*(s.send(message) for s in sessions))
        await asyncio.gather(*(s.recv() for s in sessions))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))
    found["cpu"] = (cpu_seconds(pid) - before) / (time.monotonic() - started)
    found["messages"] = 2 * len(sessions)  # per second: in and back out
    for s in sessions:
        await s.close()
    for ws in owners:
        await ws.close()
    return found


def run(rounds: int, quick: bool) -> Section:
    del rounds
    shares, viewers = (200, 200) if quick else (2000, 2000)
    with Processes() as procs:
        relay, url = procs.relay("--max-connections-per-client", "0", "--heartbeat", "5")
        got = asyncio.run(_measure(url, relay.pid, shares, viewers))
    per_share = (got["shares"] - got["idle"]) * 1024 / shares
    per_viewer = (got["viewers"] - got["shares"]) * 1024 / viewers
    cpu = got["cpu"]
    # A viewer at rest is one session plus a long-poll and a keep-alive (relay.md).
    rows = [
        "| figure | value |",
        "|---|---:|",
        f"| relay RSS idle | {got['idle']:.0f} MiB |",
        f"| with {shares:,} shares registered (one tunnel each) | {got['shares']:.0f} MiB "
        f"({per_share:.0f} KiB per share) |",
        f"| and {viewers:,} viewer sessions open through it | {got['viewers']:.0f} MiB "
        f"({per_viewer:.0f} KiB per session) |",
        f"| relay CPU with every session sending one 200-byte message a second (and getting "
        f"it back) | {cpu * 100:.0f}% of one core for {got['messages']:,.0f} messages/s |",
    ]
    markdown = "\n".join(
        [
            "One relay process on loopback. Shares are registered by stand-in owners that "
            "speak the real tunnel protocol (signed registration, one tunnel per share); "
            "viewers are websocket sessions through the relay to those owners, echoed.",
            "",
            *rows,
            "",
            "Memory is not what limits a relay: at these figures 1 GiB holds about "
            f"{1024 * 1024 / max(per_share, 1):,.0f} shares or "
            f"{1024 * 1024 / max(per_viewer, 1):,.0f} open sessions. One core is: results "
            "cross at about 240 MiB/s per core (relay.md), and small messages at the rate "
            "above. File descriptors come next (one per tunnel, about three per viewer: "
            "raise `LimitNOFILE`).",
        ]
    )
    return Section("Capacity of one relay process", markdown)
